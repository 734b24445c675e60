#!/bin/bash
# fuse_outside_umount.sh — an admin lazily unmounts the volume directory
# under a running daemon: the FUSE loop ends (ENODEV) without spinning, the
# daemon logs it, keeps answering its API, and still stops cleanly.
. "$(dirname "$0")/../functions.sh" || exit 1

# CPU time (user + system, clock ticks) of a process so far.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

start_daemon
api POST /volumes '{"name":"v1","size":16777216,"format":"raw"}'
expect_status 201
qio "$VD_MNT/v1" 'write -P 0x42 0 64k' >/dev/null || fail "I/O before umount"

umount -l "$VD_MNT" || fail "umount -l failed"
for ((i = 0; i < 50; i++)); do
    grep -q "FUSE mount at $VD_MNT went away" "$VD_LOG" && break
    sleep 0.1
done
grep -q "FUSE mount at $VD_MNT went away" "$VD_LOG" || fail "daemon did not notice the unmount"

before=$(cpu_ticks "$VD_PID")
sleep 2
after=$(cpu_ticks "$VD_PID")
# A spinning loop would burn ~200 ticks in 2 s; allow a little for the API.
[ $((after - before)) -le 20 ] || fail "daemon used $((after - before)) ticks in 2 s after the unmount"

kill -0 "$VD_PID" 2>/dev/null || fail "daemon died after the unmount"
api GET /health
expect_status 200
api POST /volumes '{"name":"v2","size":16777216,"format":"raw"}'
expect_status 201
stop_daemon
echo "fuse_outside_umount: ok"
