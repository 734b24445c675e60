#!/bin/bash
# fuse_fio_verify.sh — fio through io_uring with O_DIRECT at queue depth 16,
# random writes of 4 KiB and 64 KiB verified with crc32c, a mixed two-job
# load, and four synchronous writers at once: many requests in flight must
# each land where they were aimed, whole.
. "$(dirname "$0")/../functions.sh" || exit 1

cd "$T" || exit 1   # fio leaves verify state files in the working directory
# The daemon's own data path (passthrough: fuse_passthrough.sh).
start_daemon --passthrough off
api POST /volumes '{"name":"v1","size":67108864,"format":"raw"}'
expect_status 201
F=$VD_MNT/v1

for bs in 4k 64k; do
    fio --name="verify-$bs" --filename="$F" --ioengine=io_uring --direct=1 \
        --rw=randwrite --bs="$bs" --iodepth=16 --size=16M --offset=0 \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --runtime=30 \
        --output="$T/fio-$bs.out" || fail "fio bs=$bs: $(cat "$T/fio-$bs.out")"
    grep -q "err= 0" "$T/fio-$bs.out" || fail "fio bs=$bs: $(cat "$T/fio-$bs.out")"
    grep -E "^ +(write|read):" "$T/fio-$bs.out" | sed "s/^ */bs=$bs /"
done

# Mixed reads and writes from two jobs with verification while writing.
fio --name=mixed --filename="$F" --ioengine=io_uring --direct=1 \
    --rw=randrw --bsrange=4k-128k --iodepth=16 --numjobs=2 \
    --size=8M --offset_increment=16M --offset=32M --verify=crc32c \
    --verify_backlog=64 --verify_fatal=1 --runtime=30 \
    --output="$T/fio-mixed.out" || fail "fio mixed: $(cat "$T/fio-mixed.out")"

# Synchronous writers in parallel (QEMU's aio=threads): four jobs with
# their own regions, verified.
fio --name=psync --filename="$F" --ioengine=psync --direct=1 --numjobs=4 \
    --rw=randwrite --bs=4k --size=4M --offset=8M --offset_increment=4M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --runtime=30 \
    --group_reporting --output="$T/fio-psync.out" ||
    fail "fio psync: $(cat "$T/fio-psync.out")"
grep -E "^ +write:" "$T/fio-psync.out" | sed "s/^ */psync x4 /"

# The I/O went through the volume, as the API counts it.
api GET /volumes/v1
expect_status 200
written=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["bytes_written"])' "$T/body")
[ "$written" -ge $((32 << 20)) ] || fail "volume counted only $written bytes written"
stop_daemon
echo "fuse_fio_verify: ok"
