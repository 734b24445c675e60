#!/bin/bash
# fuse_async.sh — the asynchronous data path under load. On a fully written
# qcow2 volume and on a raw volume, with guest data on host O_DIRECT and on
# the page cache: four fio jobs of mixed 4k–128k writes at queue depth 32
# verify their data while a loop punches holes, rewrites them and fsyncs
# in a region of its own (allocation, discard and flush
# racing the fast path). The volume JSON must show that most requests took
# the asynchronous path; afterwards the qcow2 image must pass qemu-img check
# and read the same through qemu-img as through the daemon.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qcow2-functions.sh" || exit 1

stat_of() {   # stat_of VOLUME KEY
    api GET "/volumes/$1"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"][sys.argv[2]])' \
        "$T/body" "$2"
}

cd "$T" || exit 1
for fmt in qcow2 raw; do
    for mode in direct host; do
        VD_DATA=$T/data-$fmt-$mode VD_MNT=$T/mnt-$fmt-$mode
        start_daemon --cache "$mode" --passthrough off
        api POST /volumes "{\"name\":\"a\",\"size\":\"96M\",\"format\":\"$fmt\"}"
        expect_status 201
        F=$VD_MNT/a
        dd if=/dev/urandom of="$F" bs=1M count=96 oflag=direct conv=notrunc status=none ||
            fail "$fmt $mode: filling the volume"
        before=$(stat_of a async_requests)

        (
            end=$((SECONDS + 5))
            while [ $SECONDS -lt $end ]; do
                c=$((1024 + RANDOM % 512))   # a 64k chunk in 64M..96M
                fallocate -p -o $((c * 65536)) -l 65536 "$F" || exit 1
                dd if=/dev/urandom of="$F" bs=64k count=1 seek=$c \
                    oflag=direct conv=notrunc status=none || exit 1
                if [ $((RANDOM % 8)) = 0 ]; then sync "$F" || exit 1; fi
            done
        ) 2>"$T/churn-$fmt-$mode.out" &
        churn=$!
        fio --name=mixed --filename="$F" --ioengine=io_uring --direct=1 \
            --rw=randwrite --bsrange=4k-128k --bs_unaligned=0 --iodepth=32 \
            --numjobs=4 --size=16M --offset=0 --offset_increment=16M \
            --verify=crc32c --do_verify=1 --verify_fatal=1 --group_reporting \
            --output="$T/mixed-$fmt-$mode.out" ||
            fail "$fmt $mode: fio verify: $(cat "$T/mixed-$fmt-$mode.out")"
        grep -q "err= 0" "$T/mixed-$fmt-$mode.out" ||
            fail "$fmt $mode: fio: $(cat "$T/mixed-$fmt-$mode.out")"
        wait $churn || fail "$fmt $mode: churn job: $(cat "$T/churn-$fmt-$mode.out")"

        after=$(stat_of a async_requests)
        reqs=$(( $(stat_of a reads) + $(stat_of a writes) ))
        [ "$(stat_of a errors)" = 0 ] || fail "$fmt $mode: errors counted"
        # Over half of all requests since the fill went asynchronously
        # (the fill's allocating writes and the churn's do not).
        [ $((after - before)) -gt $((reqs / 2)) ] ||
            fail "$fmt $mode: only $((after - before)) of $reqs requests async"
        dd if="$F" of="$T/via-daemon.raw" bs=1M iflag=direct status=none ||
            fail "$fmt $mode: read back through the daemon"
        stop_daemon
        img=$(find "$VD_DATA" -name "*.$fmt" | head -1)
        [ -n "$img" ] || img=$(find "$VD_DATA/images" -type f | head -1)
        [ -n "$img" ] || fail "no image under $VD_DATA"
        if [ "$fmt" = qcow2 ]; then
            qcheck "$img"
        fi
        qemu-img compare -q -f raw -F "$fmt" "$T/via-daemon.raw" "$img" ||
            fail "$fmt $mode: the image holds other data than the daemon served"
        rm -f "$T/via-daemon.raw"
        unset VD_DATA VD_MNT
    done
done
