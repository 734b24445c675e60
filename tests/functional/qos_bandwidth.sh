#!/bin/bash
# qos_bandwidth.sh — bandwidth limits hold for large sequential I/O: 1 MiB
# writes at queue depth 4 (requests the FUSE export serves on blocking
# workers) through a volume limited to write_bps 16 MiB/s run at 16 MiB/s,
# while reads of the same volume are not held by the write limit; then
# a total bps limit holds for reads too.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

MIB=1048576
start_daemon
api POST /volumes "{\"name\":\"w\",\"size\":\"256M\",\"format\":\"raw\",
                    \"qos\":{\"write_bps\":$((16 * MIB))}}"
expect_status 201

fio_run seqw "$VD_MNT/w" write 1M 4 6
bw=$(fio_get seqw write bw_bytes)
echo "write: $((bw / 1024)) KiB/s under 16 MiB/s"
within "$bw" $((16 * MIB)) 6 || fail "1M writes ran at $bw B/s under a 16 MiB/s limit"

fio_run seqr "$VD_MNT/w" read 1M 4 3
rbw=$(fio_get seqr read bw_bytes)
echo "read under a write limit: $((rbw / 1024)) KiB/s"
[ "$rbw" -gt $((32 * MIB)) ] || fail "reads were held by the write limit: $rbw B/s"

api PATCH /volumes/w "{\"qos\":{\"write_bps\":null,\"bps\":$((24 * MIB))}}"
expect_status 200
fio_run seqr2 "$VD_MNT/w" read 1M 4 5
rbw=$(fio_get seqr2 read bw_bytes)
echo "read: $((rbw / 1024)) KiB/s under 24 MiB/s"
within "$rbw" $((24 * MIB)) 6 || fail "1M reads ran at $rbw B/s under a 24 MiB/s limit"
stop_daemon
