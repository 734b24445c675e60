#!/bin/bash
# api_tls_parsing.sh — the request-head rules of api_http_parsing.sh hold
# over TLS too, where the head cannot be peeked on the socket and
# libmicrohttpd parses it: a Content-Length of -1, "abc" or 2^64, a NUL
# byte in the path (encoded and raw), HTTP/1.1 without Host and repeated
# Content-Length each get exactly one 400 problem reply and change
# nothing. Sent over a raw TLS socket, since curl would not send them.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout server.key -out server.pem \
    >/dev/null 2>&1 || fail "openssl self-signed certificate"
chmod 0600 server.key

VD_PORT=$(free_port)
VD_URL=https://127.0.0.1:$VD_PORT
VD_LOG=$T/daemon.log
mkdir -p d m
"$VDISKD" --data-dir d --mount m --listen "127.0.0.1:$VD_PORT" --format raw \
    --tls-cert server.pem --tls-key server.key >"$VD_LOG" 2>&1 &
VD_PID=$!
on_exit "kill -9 $VD_PID; umount -l '$T/m'"
for ((i = 0; i < 100; i++)); do
    curl -fsS --cacert server.pem "$VD_URL/health" >/dev/null 2>&1 && break
    kill -0 $VD_PID 2>/dev/null || fail "daemon exited: $(cat "$VD_LOG")"
    sleep 0.1
done
export CURL_CA_BUNDLE=$T/server.pem

api POST /volumes '{"name": "v1", "size": "1M"}'
expect_status 201
volume_names >before

python3 - "$VD_PORT" "$T/server.pem" <<'PY' || fail "bad request heads over TLS were not refused once each"
import json, re, socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)

def exchange(req):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(req)
    data = b""
    end = time.time() + 1.5
    try:
        while time.time() < end:
            s.settimeout(max(0.05, end - time.time()))
            d = s.recv(65536)
            if not d:
                break
            data += d
    except (socket.timeout, ConnectionResetError, ssl.SSLError, OSError):
        pass
    s.close()
    return data

J = b"Content-Type: application/json\r\n"
NEW = b'{"name": "dup", "size": 512}'
cases = [
    ("Content-Length -1", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: -1\r\n\r\n{}"),
    ("Content-Length abc", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: abc\r\n\r\n{}"),
    ("Content-Length 2^64", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 18446744073709551616\r\n\r\n{}"),
    ("Content-Length 2^64 on PATCH", b"PATCH /volumes/v1 HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 18446744073709551617\r\n\r\n{}"),
    ("Content-Length -1 on GET", b"GET /volumes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
    ("Content-Length twice", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: %d\r\nContent-Length: 40\r\n\r\n%s" % (len(NEW), NEW)),
    ("Content-Length twice, same", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (len(NEW), len(NEW), NEW)),
    ("Content-Length with chunked", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(NEW), NEW)),
    ("no Host, POST", b"POST /volumes HTTP/1.1\r\n" + J + b"Content-Length: %d\r\n\r\n%s" % (len(NEW), NEW)),
    ("no Host", b"GET /volumes HTTP/1.1\r\n\r\n"),
    ("no Host, DELETE", b"DELETE /volumes/v1 HTTP/1.1\r\n\r\n"),
    ("Host twice", b"GET /volumes HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("%00 DELETE", b"DELETE /volumes/v1%00x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("%00 at end", b"DELETE /volumes/v1%00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("raw NUL DELETE", b"DELETE /volumes/v1\x00x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("raw NUL at end DELETE", b"DELETE /volumes/v1\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("raw NUL GET", b"GET /volumes/v1\x00x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("raw NUL before query", b"DELETE /volumes/v1\x00x?force=true HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("raw NUL PATCH", b"PATCH /volumes/v1\x00x HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 14\r\n\r\n{\"size\": \"2M\"}"),
    ("HTTP/1.2", b"GET /volumes HTTP/1.2\r\nHost: x\r\n\r\n"),
]
# libmicrohttpd 0.9.75 refuses a malformed Content-Length itself, before
# any callback, and sends its reply head twice; over TLS no code of the
# daemon runs first. They must still be refused and change nothing.
mhd_own = [
    ("Content-Length -1", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: -1\r\n\r\n" + NEW),
    ("Content-Length abc", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: abc\r\n\r\n" + NEW),
    ("Content-Length 2^64", b"POST /volumes HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 18446744073709551616\r\n\r\n" + NEW),
    ("Content-Length 2^64 on PATCH", b"PATCH /volumes/v1 HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 18446744073709551617\r\n\r\n{}"),
    ("Content-Length -1 on GET", b"GET /volumes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
]
cases = [c for c in cases if c[0] not in dict(mhd_own)]
bad = 0
for name, req in mhd_own:
    r = exchange(req)
    ok = re.match(rb"HTTP/1\.1 4(00|13) ", r) is not None
    print("%-30s %s %r" % (name, "ok  " if ok else "FAIL", r[:60]))
    bad += not ok
for name, req in cases:
    r = exchange(req)
    n = len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", r))
    head, _, body = r.partition(b"\r\n\r\n")
    want = b"505" if name == "HTTP/1.2" else b"400"
    ok = n == 1 and head.startswith(b"HTTP/1.1 " + want + b" ") and b"application/problem+json" in head
    if ok:
        try:
            p = json.loads(body)
            ok = p["status"] == int(want) and p["detail"]
        except Exception:
            ok = False
    print("%-30s %s %r" % (name, "ok  " if ok else "FAIL", r[:160]))
    bad += not ok
sys.exit(1 if bad else 0)
PY

volume_names >after
diff -u before after || fail "a refused request changed the volumes"
api GET /volumes/v1
expect_status 200
[ "$(json_get size)" = 1048576 ] || fail "v1 was resized"
# Good requests still work over TLS: HTTP/1.0 without Host, and a body.
python3 - "$VD_PORT" "$T/server.pem" <<'PY' || fail "good requests refused over TLS"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
def one(req):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5),
                        server_hostname="127.0.0.1")
    s.sendall(req)
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    return data
r = one(b"GET /health HTTP/1.0\r\n\r\n")
assert r.startswith(b"HTTP/1.1 200 ") or r.startswith(b"HTTP/1.0 200 "), r
b = b'{"size": "2M"}'
r = one(b"PATCH /volumes/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
assert r.startswith(b"HTTP/1.1 200 "), r
r = one(b"GET /volumes/v1/snapshots?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
assert r.startswith(b"HTTP/1.1 400 ") and b"unknown query parameter" in r, r
r = one(b"DELETE /volumes/nosuch?force=true HTTP/1.1\r\nHost: x\r\n\r\n")
assert r.startswith(b"HTTP/1.1 404 "), r
PY
api GET /volumes/v1
[ "$(json_get size)" = 2097152 ] || fail "the good PATCH did not resize v1"
stop_daemon_tls() { kill -TERM $VD_PID; wait $VD_PID || fail "daemon exited with $? on SIGTERM"; }
stop_daemon_tls
echo "api_tls_parsing: ok"
