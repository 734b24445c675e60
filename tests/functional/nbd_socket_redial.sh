#!/bin/bash
# nbd_socket_redial.sh — the NBD socket directory confines every dial, not
# only the create: while a volume's server is down, its socket is replaced
# by a symlink to a server outside --nbd-socket-dir. The redials must not
# reach that server (its log shows no connection, the volume's I/O keeps
# failing with EIO), and once the real server is back on the real socket
# the volume works again.
. "$(dirname "$0")/../functions.sh"

export VD_NBD_TIMEOUT_MS=2000 VD_NBD_RECONNECT_MAX_MS=300
mkdir -p "$T/socks" "$T/outside"

# start_nbd SOCKET NBDKIT-ARGS... — nbdkit serving on SOCKET; sets NBD_PID.
start_nbd() {
    local sock=$1
    shift
    rm -f "$sock"
    nbdkit --exit-with-parent -f -U "$sock" "$@" &
    NBD_PID=$!
    on_exit "kill -9 $NBD_PID"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && return 0
        sleep 0.05
    done
    fail "nbdkit did not create $sock"
}

start_nbd "$T/socks/a.sock" memory 64M
A_PID=$NBD_PID
start_nbd "$T/outside/o.sock" --filter=log memory 64M logfile="$T/outside.log"
: >>"$T/outside.log"
start_daemon --nbd-socket-dir "$T/socks"

api POST /volumes "{\"name\":\"a\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$T/socks/a.sock\"}}"
expect_status 201
qio "$VD_MNT/a" 'write -P 0x11 0 1M' >/dev/null || fail "writing a"

# A symlink that leads outside is refused at create, as before.
ln -s "$T/outside/o.sock" "$T/socks/evil.sock"
api POST /volumes "{\"name\":\"e\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$T/socks/evil.sock\"}}"
expect_status 403

# The server goes down; its socket becomes a symlink to the outside one.
kill -9 "$A_PID"
wait "$A_PID" 2>/dev/null
rm -f "$T/socks/a.sock"
ln -s "$T/outside/o.sock" "$T/socks/a.sock"

# Reads ask for a connection again and again (backoff is capped at 300 ms).
for ((i = 0; i < 8; i++)); do
    if qio_ro "$VD_MNT/a" 'read 0 64k' >"$T/out" 2>&1 &&
        ! grep -q "error" "$T/out"; then
        fail "a read succeeded through a socket outside the allowed dir"
    fi
    sleep 0.3
done
grep -q "Input/output error" "$T/out" || fail "read during the swap: $(cat "$T/out")"
if grep -qi "connect" "$T/outside.log"; then
    fail "the daemon reached the outside server: $(head -5 "$T/outside.log")"
fi
api GET /volumes/a
expect_status 200
echo "volume a while its socket leads outside: $API_BODY"
echo "$API_BODY" | grep -q "not in a directory allowed" ||
    fail "the volume does not say why it cannot connect: $API_BODY"

# The real server returns on the real socket: I/O works again (its data
# is new, so zeros).
rm -f "$T/socks/a.sock"
start_nbd "$T/socks/a.sock" memory 64M
ok=
for ((i = 0; i < 50; i++)); do
    if qio_ro "$VD_MNT/a" 'read -P 0 0 64k' >"$T/out" 2>&1 &&
        ! grep -q "error\|Pattern verification failed" "$T/out"; then
        ok=1
        break
    fi
    sleep 0.2
done
[ -n "$ok" ] || fail "a did not reconnect to its own server: $(cat "$T/out")"
grep -qi "connect" "$T/outside.log" && fail "the outside server was reached"

stop_daemon
echo "nbd_socket_redial: ok"
