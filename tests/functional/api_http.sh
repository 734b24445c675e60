#!/bin/bash
# api_http.sh — the HTTP envelope: 413 for oversized bodies (by
# Content-Length, before the body is read, and chunked), 415 for other
# media types, 404 for unknown paths, 405 with Allow, names in paths
# checked, query parameters checked; none of it changes the volumes.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "keep", "size": "1M"}'
expect_status 201
volume_names >"$T/before"

# Body limit is 64 KiB (daemon/main.c).
python3 -c 'import json; print(json.dumps({"name": "big", "size": 512, "pad": "x" * 70000}))' >"$T/big.json"
http POST /volumes -H 'Content-Type: application/json' --data-binary @"$T/big.json"
expect_problem 413 "65536"
http POST /volumes -H 'Content-Type: application/json' -H 'Expect:' --data-binary @"$T/big.json"
expect_problem 413
http POST /volumes -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
    --data-binary @"$T/big.json"
expect_problem 413
http PATCH /volumes/keep -H 'Content-Type: application/json' --data-binary @"$T/big.json"
expect_problem 413
# Refused from the header alone: the daemon answers although the client
# never sends the 5 MB it announced.
python3 - "$VD_PORT" >"$T/early" <<'PY' || fail "no early 413: $(cat "$T/early")"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /volumes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Content-Length: 5000000\r\n\r\n{")
reply = s.recv(4096).decode()
print(reply)
assert reply.startswith("HTTP/1.1 413 "), reply
PY
# A body just under the limit is read and judged on its content.
python3 -c 'import json; print(json.dumps({"name": "big", "size": 512, "pad": "x" * 60000}))' >"$T/fits.json"
http POST /volumes -H 'Content-Type: application/json' --data-binary @"$T/fits.json"
expect_problem 400 "'pad'"

# Media type.
http POST /volumes --data-binary '{"name": "a", "size": 512}'
expect_problem 415 "application/json"
http POST /volumes -H 'Content-Type: text/plain' --data-binary '{"name": "a", "size": 512}'
expect_problem 415 "text/plain"
http POST /volumes -H 'Content-Type: application/jsonx' --data-binary '{"name": "a", "size": 512}'
expect_problem 415
http POST /volumes -H 'Content-Type:' --data-binary '{"name": "a", "size": 512}'
expect_problem 415
http PATCH /volumes/keep -H 'Content-Type: text/plain' --data-binary '{"size": "2M"}'
expect_problem 415
# Parameters on the media type are fine.
http POST /volumes -H 'Content-Type: application/json; charset=utf-8' \
    --data-binary '{"name": "cs", "size": 512}'
expect_status 201
api DELETE /volumes/cs
expect_status 204

# Unknown paths.
for p in / /nope /volume /volumes/ /volumes/keep/ /volumes/keep/extra \
         /health/ /metricsx /VOLUMES //volumes; do
    http GET "$p"
    expect_problem 404
done

# Wrong methods: 405 with the Allow header.
allow_is() {
    [ "$(header Allow)" = "$1" ] || fail "Allow is '$(header Allow)', want '$1'"
}
http PUT /volumes
expect_problem 405 PUT
allow_is "GET, HEAD, POST"
http DELETE /volumes
expect_problem 405
allow_is "GET, HEAD, POST"
http POST /volumes/keep -H 'Content-Type: application/json' --data-binary '{}'
expect_problem 405
allow_is "GET, HEAD, PATCH, DELETE"
http PUT /volumes/keep
expect_problem 405
http POST /health
expect_problem 405
allow_is "GET, HEAD"
http DELETE /metrics
expect_problem 405
http OPTIONS /openapi.json
expect_problem 405

# Names in paths are checked before anything else sees them.
for p in %2e%2e %2E. . .. ..%2fkeep keep%2f a%00b %00 keep%00 %2fetc%2fpasswd \
         Keep %ff %zz a%2 "$(printf 'a%.0s' {1..65})"; do
    for m in GET DELETE; do
        http "$m" "/volumes/$p" --path-as-is
        case "$API_STATUS" in
        400 | 404) expect_problem "$API_STATUS" ;;
        *) fail "$m /volumes/$p answered $API_STATUS: $API_BODY" ;;
        esac
    done
    http PATCH "/volumes/$p" --path-as-is -H 'Content-Type: application/json' \
        --data-binary '{"size": "2M"}'
    case "$API_STATUS" in
    400 | 404) expect_problem "$API_STATUS" ;;
    *) fail "PATCH /volumes/$p answered $API_STATUS: $API_BODY" ;;
    esac
done
http GET /volumes/%2e%2e --path-as-is
expect_problem 400 "'..'"
http GET /volumes/keep%2fx --path-as-is
expect_problem 400
# A percent-encoded valid name is the same name.
http GET /volumes/%6beep
expect_status 200
[ "$(json_get name)" = keep ] || fail "%6beep is $(json_get name)"

# Query parameters.
http DELETE '/volumes/keep?force=maybe'
expect_problem 400 "force"
http DELETE '/volumes/keep?recursive=true'
expect_problem 400 "'recursive'"
http GET '/volumes?x=1'
expect_problem 400 "'x'"

# HEAD answers like GET, without a body.
http HEAD /health -I
expect_status 200
http HEAD /volumes/keep -I
expect_status 200
http HEAD /volumes/nope -I
expect_status 404

volume_names >"$T/after"
diff -u "$T/before" "$T/after" || fail "refused requests changed the volumes"

# Many connections at once, some cut off mid-request: still healthy.
python3 - "$VD_PORT" <<'PY' || fail "abrupt clients"
import socket, sys, threading
port = int(sys.argv[1])
reqs = [b"POST /volumes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
        b"GET /volumes/ke", b"GARBAGE\r\n\r\n", b"\x00\xff\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
def poke(r):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(r)
    s.close()
ts = [threading.Thread(target=poke, args=(reqs[i % len(reqs)],)) for i in range(50)]
[t.start() for t in ts]
[t.join() for t in ts]
PY
api GET /health
expect_status 200
[ "$(json_get status)" = ok ] || fail "health: $API_BODY"
volume_names >"$T/after"
diff -u "$T/before" "$T/after" || fail "abrupt clients changed the volumes"
stop_daemon
echo "api_http: ok"
