#!/bin/bash
# qcow2_fio_verify.sh — fio with verification through a qcow2 volume, with
# guest data on host O_DIRECT (--cache direct) and on the page cache
# (--cache host): allocating 4 KiB writes into a fresh image (no
# copy-on-write of zeroes), 64 KiB whole clusters, 512-byte writes, and
# overwrites. The image must then pass qemu-img check and read back the same
# through qemu-img as through the daemon.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qcow2-functions.sh" || exit 1

cd "$T" || exit 1
for mode in direct host; do
    VD_DATA=$T/data-$mode VD_MNT=$T/mnt-$mode
    start_daemon --cache "$mode"
    api POST /volumes '{"name":"q","size":67108864,"format":"qcow2"}'
    expect_status 201
    F=$VD_MNT/q
    for bs in 4k 64k 512 4k; do
        fio --name="verify-$bs" --filename="$F" --ioengine=io_uring --direct=1 \
            --rw=randwrite --bs="$bs" --iodepth=16 --size=16M --offset=0 \
            --verify=crc32c --do_verify=1 --verify_fatal=1 \
            --output="$T/fio-$mode-$bs.out" ||
            fail "fio $mode bs=$bs: $(cat "$T/fio-$mode-$bs.out")"
        grep -q "err= 0" "$T/fio-$mode-$bs.out" ||
            fail "fio $mode bs=$bs: $(cat "$T/fio-$mode-$bs.out")"
    done
    # Partial writes spread over fresh clusters, four jobs at once.
    fio --name=spread --filename="$F" --ioengine=io_uring --direct=1 \
        --rw=randwrite --bs=4k --iodepth=32 --numjobs=4 --size=8M \
        --offset=24M --offset_increment=8M --verify=crc32c --do_verify=1 \
        --verify_fatal=1 --group_reporting --output="$T/fio-$mode-spread.out" ||
        fail "fio $mode spread: $(cat "$T/fio-$mode-spread.out")"
    dd if="$F" of="$T/via-daemon-$mode.raw" bs=1M iflag=direct status=none ||
        fail "read back through the daemon"
    stop_daemon
    img=$(ls "$VD_DATA"/*q*.qcow2 2>/dev/null | head -1)
    [ -n "$img" ] || img=$(find "$VD_DATA" -name '*.qcow2' | head -1)
    [ -n "$img" ] || fail "no qcow2 image under $VD_DATA"
    qcheck "$img"
    qemu-img compare -q -f raw -F qcow2 "$T/via-daemon-$mode.raw" "$img" ||
        fail "$mode: qemu-img reads other data than the daemon served"
    unset VD_DATA VD_MNT
done
