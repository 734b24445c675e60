#!/bin/bash
# nbd_create_blackhole.sh — creating an NBD volume on a server that never
# answers (a listening socket nobody serves: the TCP connection is made,
# the NBD greeting never comes) takes the whole connect timeout, and
# meanwhile the rest of the API answers at once: list, show, and other
# creates and deletes. The create ends in 422 and leaves nothing behind;
# a second create of the same name waits for nothing.
. "$(dirname "$0")/../functions.sh"

export VD_NBD_CONNECT_TIMEOUT_MS=4000

# A blackhole: the kernel completes the TCP handshake (backlog), nobody
# ever accepts or speaks.
HOLE_PORT=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
open(sys.argv[2], "w").close()
time.sleep(600)
' "$HOLE_PORT" "$T/hole.ready" &
HOLE_PID=$!
on_exit "kill -9 $HOLE_PID"
for ((i = 0; i < 100; i++)); do
    [ -e "$T/hole.ready" ] && break
    sleep 0.05
done
[ -e "$T/hole.ready" ] || fail "blackhole listener did not start"

start_daemon --format raw
api POST /volumes '{"name": "v1", "size": "1M"}'
expect_status 201

# ms — wall clock milliseconds.
ms() { date +%s%3N; }

t0=$(ms)
curl -sS -o "$T/hole.body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "{\"name\":\"h1\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd://127.0.0.1:$HOLE_PORT/\"}}" \
    "$VD_URL/volumes" >"$T/hole.status" &
HOLE_CURL=$!
sleep 0.5

# quick METHOD PATH [BODY] — the call must answer within a second.
quick() {
    local t=$(ms)
    api "$@"
    local took=$(($(ms) - t))
    [ "$took" -lt 1000 ] || fail "$1 $2 took $took ms while a create dials a blackhole"
    echo "$1 $2 -> $API_STATUS in $took ms"
}
quick GET /volumes
expect_status 200
quick GET /volumes/v1
expect_status 200
quick POST /volumes '{"name": "v2", "size": "1M"}'
expect_status 201
quick DELETE /volumes/v2
expect_status 204
quick PATCH /volumes/v1 '{"size": "2M"}'
expect_status 200
# The name being dialled for is not taken yet; a duplicate of a taken
# name is refused without dialling.
quick POST /volumes "{\"name\":\"v1\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd://127.0.0.1:$HOLE_PORT/\"}}"
expect_status 409

wait "$HOLE_CURL"
took=$(($(ms) - t0))
status=$(cat "$T/hole.status")
[ "$status" = 422 ] || fail "blackhole create answered $status: $(cat "$T/hole.body")"
[ "$took" -ge 3500 ] || fail "blackhole create answered after only $took ms"
grep -q "no answer within" "$T/hole.body" || fail "blackhole create: $(cat "$T/hole.body")"
echo "blackhole create -> $status after $took ms"

api GET /volumes
expect_status 200
python3 -c 'import json,sys; n=[v["name"] for v in json.load(open(sys.argv[1]))["volumes"]]; sys.exit(n != ["v1"])' \
    "$T/body" || fail "volumes after the blackhole: $API_BODY"
[ -e "$VD_MNT/h1" ] && fail "the refused volume has a file"
stop_daemon
echo "nbd_create_blackhole: ok"
