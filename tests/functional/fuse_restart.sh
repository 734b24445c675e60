#!/bin/bash
# fuse_restart.sh — the mount across daemon lifetimes: data written through
# the file is there after a clean stop (SIGTERM, exit 0, unmounted) and a
# start on the same directories; a daemon killed with SIGKILL leaves a dead
# mount that the next start cleans up before serving again; and a second
# daemon refuses a mount point a live one is serving.
. "$(dirname "$0")/../functions.sh" || exit 1

qcheck() {
    qio "$@" >"$T/qio.out" 2>&1 || fail "qemu-io $*: $(cat "$T/qio.out")"
}

start_daemon
api POST /volumes '{"name":"v1","size":67108864,"format":"raw"}'
expect_status 201
F=$VD_MNT/v1
qcheck "$F" 'write -P 0x5c 0 1M' 'write -P 0x5d 32M 64k' 'write -P 0x5e 67043328 64k'

# --- clean stop and start
stop_daemon     # checks exit status 0 and that the mount is gone
[ ! -e "$F" ] || fail "v1 still visible after stop"
start_daemon
qcheck "$F" 'read -P 0x5c 0 1M' 'read -P 0x5d 32M 64k' 'read -P 0x5e 67043328 64k'
[ "$(stat -c %s "$F")" = 67108864 ] || fail "size after restart: $(stat -c %s "$F")"

# --- a second daemon on a served mount point is refused; the first serves on
rc=0
"$VDISKD" --data-dir "$T/data2" --mount "$VD_MNT" \
    --listen "127.0.0.1:$(free_port)" >"$T/second.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a second daemon started on a served mount point"
grep -q "already served" "$T/second.log" || fail "second daemon said: $(cat "$T/second.log")"
qcheck "$F" 'read -P 0x5c 0 1M'

# --- SIGKILL leaves a dead mount; the next start cleans it and serves
qcheck "$F" 'write -P 0x6a 16M 1M' 'flush'
kill -9 "$VD_PID"
wait "$VD_PID" 2>/dev/null || true
grep -q " $VD_MNT fuse.vdiskd " /proc/mounts || fail "no mount left behind by SIGKILL?"
stat "$F" >/dev/null 2>&1 && fail "a killed daemon's mount still answers"
start_daemon
grep -q "cleaned up a dead FUSE mount at $VD_MNT" "$VD_LOG" ||
    fail "start did not report cleaning the dead mount"
[ "$(grep -c " $VD_MNT " /proc/mounts)" = 1 ] ||
    fail "mounts at $VD_MNT: $(grep " $VD_MNT " /proc/mounts)"
qcheck "$F" 'read -P 0x5c 0 1M' 'read -P 0x6a 16M 1M' 'write -P 0x6b 0 4k' 'read -P 0x6b 0 4k'
stop_daemon
echo "fuse_restart: ok"
