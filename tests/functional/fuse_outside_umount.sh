#!/bin/bash
# fuse_outside_umount.sh — an admin unmounts the volume directory under a
# running daemon (umount -l, fusermount3 -u): the FUSE loop ends (ENODEV)
# without spinning, the daemon logs it, keeps answering its API, says on
# /health (503 with the reason) that volume files are not served, refuses
# creates with 503 instead of answering 201 with a path that does not
# exist, and still stops cleanly; a restart mounts again and all is well.
# A lazy unmount while a file is still open leaves the loop running on a
# connection no path reaches: that is reported the same way.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../api_functions.sh" || exit 1

# CPU time (user + system, clock ticks) of a process so far.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# The mount is gone: /health and creates say so with 503.
expect_unserved() {
    api GET /health
    expect_problem 503 "$VD_MNT"
    echo "$API_BODY" | grep -q "restart vdiskd" || fail "/health does not say what to do: $API_BODY"
    api POST /volumes "{\"name\":\"$1\",\"size\":16777216,\"format\":\"raw\"}"
    expect_problem 503 "cannot be created"
    api GET "/volumes/$1"
    expect_status 404
    # Reads keep working: the catalog is still there.
    api GET /volumes/v1
    expect_status 200
}

start_daemon
api GET /health
expect_status 200
api POST /volumes '{"name":"v1","size":16777216,"format":"raw"}'
expect_status 201
qio "$VD_MNT/v1" 'write -P 0x42 0 64k' >/dev/null || fail "I/O before umount"

# 1. Lazy unmount while a client holds v1 open: the connection lives on.
exec {held}<"$VD_MNT/v1"
umount -l "$VD_MNT" || fail "umount -l failed"
grep -q " $VD_MNT " /proc/mounts && fail "still mounted after umount -l"
expect_unserved v2
exec {held}<&-

# The last file closed: the connection dies and the loop ends.
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
expect_unserved v3
stop_daemon

# 2. The operator's way back: restart vdiskd; it mounts again.
start_daemon
api GET /health
expect_status 200
[ "$(json_get status)" = ok ] || fail "/health after restart: $API_BODY"
qio "$VD_MNT/v1" 'read -P 0x42 0 64k' >/dev/null || fail "v1 after restart"

# 3. fusermount3 -u (nothing open): the session ends.
fusermount3 -u "$VD_MNT" || fail "fusermount3 -u failed"
for ((i = 0; i < 50; i++)); do
    api GET /health
    [ "$API_STATUS" = 503 ] && break
    sleep 0.1
done
expect_unserved v4
stop_daemon

start_daemon
api POST /volumes '{"name":"v5","size":16777216,"format":"raw"}'
expect_status 201
[ -e "$(json_get path)" ] || fail "created volume's path does not exist: $API_BODY"
[ "$(volume_names | tr '\n' ' ')" = "v1 v5 " ] || fail "volumes: $(volume_names)"
stop_daemon
echo "fuse_outside_umount: ok"
