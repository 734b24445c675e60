#!/bin/bash
# nbd_volume.sh — an NBD-backed volume over the REST API: created without
# a size (the server's is used), fio with io_uring, O_DIRECT and crc32c
# verification through the FUSE file (taking the asynchronous path), data
# visible on the server and the server's data visible in the file; bad,
# unreachable and missing-export URIs are 4xx and leave nothing behind,
# as are unix sockets outside --nbd-socket-dir (403, whether the path
# exists or not), and every unix socket for a daemon started without it.
. "$(dirname "$0")/../functions.sh"

# start_nbd SOCKET ARGS... — a server on a unix socket, killed on exit.
start_nbd() {
    local sock=$1
    shift
    rm -f "$sock"
    "$@" &
    local pid=$!
    on_exit "kill -9 $pid"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$sock" ] && return 0
        kill -0 "$pid" 2>/dev/null || fail "$1 exited during start-up"
        sleep 0.05
    done
    fail "$1 did not create $sock"
}

mkdir "$T/socks" "$T/elsewhere"
SOCK=$T/socks/nbd.sock
URI="nbd+unix:///?socket=$SOCK"
start_nbd "$SOCK" nbdkit --exit-with-parent -f -U "$SOCK" memory 256M
QSOCK=$T/socks/qemu.sock
truncate -s 16M "$T/q.raw"
start_nbd "$QSOCK" qemu-nbd -k "$QSOCK" -f raw -x exp -e 4 -t "$T/q.raw"

start_daemon --nbd-socket-dir "$T/socks"

api POST /volumes "{\"name\":\"n1\",\"backend\":{\"type\":\"nbd\",\"uri\":\"$URI\"}}"
expect_status 201
[ "$(json_get size)" = 268435456 ] || fail "size is not the server's: $API_BODY"
api GET /volumes/n1
expect_status 200
python3 - "$T/body" "$URI" <<'PY' || fail "backend not shown: $API_BODY"
import json, sys
b = json.load(open(sys.argv[1]))["backend"]
assert b["type"] == "nbd" and b["uri"] == sys.argv[2], b
assert b["state"] == "connected", b
assert b["server"]["size"] == 256 << 20 and b["connected"] >= 1, b
PY
F=$VD_MNT/n1
[ "$(stat -c %s "$F")" = 268435456 ] || fail "file size $(stat -c %s "$F")"

# Deep queue, direct I/O, verified: the driver keeps requests in flight.
fio --name=nbd --filename="$F" --ioengine=io_uring --direct=1 --iodepth=32 \
    --rw=randwrite --bs=4k --size=32M --verify=crc32c --do_verify=1 \
    --verify_fatal=1 --verify_state_save=0 --output="$T/fio.out" >/dev/null 2>&1 ||
    fail "fio failed: $(tail -n 20 "$T/fio.out")"
grep -q "err= 0" "$T/fio.out" || fail "fio reported errors: $(cat "$T/fio.out")"
# ... and asynchronously: no FUSE worker sleeps per NBD request.
api GET /volumes/n1
python3 - "$T/body" <<'PY' || fail "fio did not take the asynchronous path: $API_BODY"
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
assert s["errors"] == 0, s
assert s["async_requests"] >= s["writes"] // 2 > 0, s
print("nbd_volume: fio stats", s)
PY

# What the file wrote is on the server, and the other way round.
qio "$F" "write -P 0xab 64M 1M" >/dev/null || fail "write through FUSE"
qemu-io -f raw -r "$URI" -c "read -P 0xab 64M 1M" >"$T/out" 2>&1 ||
    fail "qemu-io on the server: $(cat "$T/out")"
grep -q "Pattern verification failed" "$T/out" && fail "server lacks the data"
qemu-io -f raw "$URI" -c "write -P 0xcd 80M 1M" >/dev/null 2>&1 ||
    fail "qemu-io write to the server"
qio "$F" "read -P 0xcd 80M 1M" >"$T/out" 2>&1 || fail "read through FUSE"
grep -q "Pattern verification failed" "$T/out" && fail "file lacks server data"

# A punched hole and a zeroed range read as zeroes on the server.
qio "$F" "write -P 0xee 96M 2M" >/dev/null || fail "write before fallocate"
fallocate -p -o 96M -l 1M "$F" || fail "punch hole through FUSE"
fallocate -z -o 97M -l 512K "$F" || fail "zero range through FUSE"
qemu-io -f raw -r "$URI" -c "read -P 0 96M 1536K" -c "read -P 0xee 99840K 512K" \
    >"$T/out" 2>&1 || fail "qemu-io after fallocate: $(cat "$T/out")"
grep -q "Pattern verification failed" "$T/out" && fail "fallocate: $(cat "$T/out")"

# Refused: 4xx, a problem body naming the cause, and no volume left.
bad_volume() {
    local status=$1 uri=$2 pattern=$3
    api POST /volumes "{\"name\":\"bad\",\"backend\":{\"type\":\"nbd\",\"uri\":\"$uri\"}}"
    expect_status "$status"
    grep -q -- "$pattern" "$T/body" || fail "$uri: $API_BODY"
    [ -n "${NBD_TEST_VERBOSE:-}" ] && echo "$uri -> $API_STATUS $API_BODY"
}
bad_volume 400 "nbds://127.0.0.1/" "not supported"
bad_volume 400 "nbd+vsock://1" "not supported"
bad_volume 400 "file:///etc/passwd" "URI"
bad_volume 400 "nbd://127.0.0.1:99999/" "port"
bad_volume 400 "nbd://127.0.0.1/?tls-psk-file=/etc/shadow" "parameters"
bad_volume 422 "nbd://127.0.0.1:$(free_port)/" "refused"
bad_volume 422 "nbd+unix:///?socket=$T/socks/none.sock" "No such file"
bad_volume 422 "nbd+unix:///nope?socket=$QSOCK" "nope"

# Sockets outside --nbd-socket-dir: 403 with the same answer whether the
# path exists (a live server), does not, or is reached through "..", a
# symlinked directory or a symlinked socket.
OSOCK=$T/elsewhere/out.sock
start_nbd "$OSOCK" nbdkit --exit-with-parent -f -U "$OSOCK" memory 16M
ln -s "$T/elsewhere" "$T/socks/dirlink"
ln -s "$OSOCK" "$T/socks/socklink.sock"
for path in "$OSOCK" "$T/elsewhere/none.sock" "/nonexistent/x.sock" \
        "$T/socks/../elsewhere/out.sock" "$T/socks/dirlink/out.sock" \
        "$T/socks/socklink.sock"; do
    bad_volume 403 "nbd+unix:///?socket=$path" \
        "socket '$path' is not in a directory allowed for NBD sockets"
    python3 - "$T/body" "$path" <<'PY' || fail "403 for $path: $API_BODY"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["status"] == 403 and p["title"] == "Forbidden", p
assert p["detail"] == "socket '%s' is not in a directory allowed for NBD sockets" % sys.argv[2], p
PY
done
bad_volume 400 "nbd+unix:///?socket=$T/socks/%2E%2E/elsewhere/out.sock" "percent"
api GET /volumes
expect_status 200
python3 -c 'import json,sys; n=[v["name"] for v in json.load(open(sys.argv[1]))["volumes"]]; sys.exit(n != ["n1"])' \
    "$T/body" || fail "volumes after refusals: $API_BODY"
[ -e "$VD_MNT/bad" ] && fail "a refused volume has a file"

# qemu-nbd without multi-conn works on one connection.
api POST /volumes "{\"name\":\"q1\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd+unix:///exp?socket=$QSOCK\"}}"
expect_status 201
qio "$VD_MNT/q1" "write -P 0x5a 1M 1M" "read -P 0x5a 1M 1M" >"$T/out" 2>&1 ||
    fail "q1 I/O: $(cat "$T/out")"
grep -q "Pattern verification failed" "$T/out" && fail "q1 pattern"

api DELETE /volumes/q1
expect_status 204
api DELETE /volumes/n1
expect_status 204
stop_daemon

# Without --nbd-socket-dir no unix socket is allowed; TCP still is.
start_daemon
bad_volume 403 "$URI" "not allowed"
bad_volume 422 "nbd://127.0.0.1:$(free_port)/" "refused"
api GET /volumes
python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["volumes"] != [])' \
    "$T/body" || fail "volumes after refusals without the flag: $API_BODY"
stop_daemon
# Deleting an NBD volume leaves the server's data alone.
qemu-io -f raw -r "$URI" -c "read -P 0xab 64M 1M" >"$T/out" 2>&1 ||
    fail "server gone after delete"
grep -q "Pattern verification failed" "$T/out" && fail "server data changed by delete"
echo "nbd_volume: ok"
