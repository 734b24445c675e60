#!/bin/bash
# nbd_outage.sh — an NBD server dies under a volume: its I/O fails with
# EIO within the timeout (VD_NBD_TIMEOUT_MS=2000), the daemon and a volume
# on another server carry on, I/O works again once the server is back,
# and a daemon restart reopens the volume from its stored URI.
. "$(dirname "$0")/../functions.sh"

export VD_NBD_TIMEOUT_MS=2000 VD_NBD_RECONNECT_MAX_MS=300
export VDISKD_NBD_SOCKET_DIR=$T   # the environment's way to allow sockets

# start_nbd SOCKET — nbdkit memory 64M on SOCKET; sets NBD_PID.
start_nbd() {
    local sock=$1
    rm -f "$sock"
    nbdkit --exit-with-parent -f -U "$sock" memory 64M &
    NBD_PID=$!
    on_exit "kill -9 $NBD_PID"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && return 0
        sleep 0.05
    done
    fail "nbdkit did not create $sock"
}

# ms — monotonic-enough milliseconds.
ms() { date +%s%3N; }

start_nbd "$T/a.sock"
A_PID=$NBD_PID
start_nbd "$T/b.sock"
start_daemon
for v in a b; do
    api POST /volumes "{\"name\":\"$v\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$T/$v.sock\"}}"
    expect_status 201
    qio "$VD_MNT/$v" "write -P 0x11 0 1M" >/dev/null || fail "write to $v"
done

kill -9 "$A_PID"
wait "$A_PID" 2>/dev/null
t0=$(ms)
qio "$VD_MNT/a" "read 0 64k" >"$T/out" 2>&1
took=$(($(ms) - t0))
grep -q "Input/output error" "$T/out" || fail "read during outage: $(cat "$T/out")"
[ "$took" -lt 4000 ] || fail "outage read took $took ms"
echo "outage read failed after $took ms"
qio "$VD_MNT/b" "read -P 0x11 0 1M" >"$T/out" 2>&1 || fail "b during outage"
grep -q "Pattern verification failed" "$T/out" && fail "b data during outage"
curl -fsS "$VD_URL/health" >/dev/null || fail "daemon unhealthy during outage"
api GET /volumes/a
expect_status 200
backend_state() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backend"]["state"])' "$T/body"
}
[ "$(backend_state)" != connected ] || fail "a reports connected during the outage: $API_BODY"
api GET /volumes/b
[ "$(backend_state)" = connected ] || fail "b's backend state: $API_BODY"

start_nbd "$T/a.sock"
ok=
for ((i = 0; i < 50; i++)); do
    if qio "$VD_MNT/a" "write -P 0x22 0 1M" 2>&1 | grep -q "^wrote"; then
        ok=1
        break
    fi
    sleep 0.1
done
[ -n "$ok" ] || fail "volume a did not come back after the server did"
qio "$VD_MNT/a" "read -P 0x22 0 1M" >"$T/out" 2>&1 || fail "read a after outage"
grep -q "Pattern verification failed" "$T/out" && fail "a data after outage"

# A restarted daemon dials the stored URI again.
stop_daemon
start_daemon
api GET /volumes/a
expect_status 200
[ "$(json_get state)" = ready ] || fail "a after restart: $API_BODY"
qio "$VD_MNT/a" "read -P 0x22 0 1M" >"$T/out" 2>&1 || fail "read a after restart"
grep -q "Pattern verification failed" "$T/out" && fail "a data after restart"

# A daemon started while the server is down still serves the volume (its
# I/O fails until the server is back) instead of dropping it as missing.
stop_daemon
kill -9 "$NBD_PID"
wait "$NBD_PID" 2>/dev/null
start_daemon
api GET /volumes/a
[ "$(json_get state)" = ready ] || fail "a with its server down at start: $API_BODY"
[ "$(json_get size)" = 67108864 ] || fail "a's size with its server down: $API_BODY"
[ -e "$VD_MNT/a" ] || fail "a is not on the mount while its server is down"
qio "$VD_MNT/a" "read 0 64k" 2>&1 | grep -q "Input/output error" ||
    fail "read from a with no server did not fail with EIO"
start_nbd "$T/a.sock"
ok=
for ((i = 0; i < 50; i++)); do
    if qio "$VD_MNT/a" "write -P 0x33 0 64k" 2>&1 | grep -q "^wrote"; then
        ok=1
        break
    fi
    sleep 0.1
done
[ -n "$ok" ] || fail "a did not connect once its server came up"
api GET /volumes/a
[ "$(backend_state)" = connected ] || fail "a's state after connecting: $API_BODY"

# Deleting a volume whose server hangs: the delete's closing flush waits
# for the timeout, but other control calls do not wait behind it.
qio "$VD_MNT/a" "write -P 0x44 0 64k" >/dev/null || fail "write before the hang"
kill -STOP "$NBD_PID"
t0=$(ms)
curl -sS -X DELETE -o /dev/null -w '%{http_code}' "$VD_URL/volumes/a" >"$T/del" &
del=$!
sleep 0.3
t1=$(ms)
api POST /volumes '{"name":"f1","size":"1M"}'
expect_status 201
took=$(($(ms) - t1))
wait "$del"
deleted=$(($(ms) - t0))
kill -CONT "$NBD_PID"
[ "$(cat "$T/del")" = 204 ] || fail "delete of a volume on a hung server: $(cat "$T/del")"
echo "delete on a hung server took $deleted ms; a create meanwhile $took ms"
[ "$took" -lt 1000 ] || fail "a create waited $took ms behind that delete"
api GET /volumes/a
expect_status 404
[ -e "$VD_MNT/a" ] && fail "a is still on the mount after its delete"
stop_daemon
echo "nbd_outage: ok"
