#!/bin/bash
# api_http_parsing.sh — request heads that HTTP/1.1 does not allow get
# exactly one 400 problem reply and change nothing: a Content-Length of
# -1, "abc" or 2^64, a NUL byte in the path (encoded and raw, for GET,
# DELETE and PATCH), HTTP/1.1 without Host, and repeated Content-Length.
# Sent over raw sockets, since curl would not send most of them.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "v1", "size": "1M"}'
expect_status 201
volume_names >"$T/before"

python3 - "$VD_PORT" <<'PY' || fail "bad request heads were not refused once each"
import json, re, socket, sys, time
port = int(sys.argv[1])

def exchange(req):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
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
    except socket.timeout:
        pass
    except ConnectionResetError:
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
    # Bodies that would create a volume if the head were accepted.
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
    ("raw NUL PATCH", b"PATCH /volumes/v1\x00x HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 14\r\n\r\n{\"size\": \"2M\"}"),
    ("raw NUL in a header", b"GET /volumes HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("space before colon", b"GET /volumes HTTP/1.1\r\nHost : x\r\n\r\n"),
]
bad = 0
for name, req in cases:
    r = exchange(req)
    n = len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", r))
    head, _, body = r.partition(b"\r\n\r\n")
    ok = n == 1 and head.startswith(b"HTTP/1.1 400 ") and b"application/problem+json" in head
    if ok:
        try:
            p = json.loads(body)
            ok = p["status"] == 400 and p["detail"]
        except Exception:
            ok = False
    print("%-30s %s %r" % (name, "ok  " if ok else "FAIL", r[:160]))
    bad += not ok
sys.exit(1 if bad else 0)
PY

volume_names >"$T/after"
diff -u "$T/before" "$T/after" || fail "a refused request changed the volumes"
api GET /volumes/v1
expect_status 200
[ "$(json_get size)" = 1048576 ] || fail "v1 was resized"
# A good request still works, and HTTP/1.0 without Host is fine.
python3 - "$VD_PORT" <<'PY' || fail "HTTP/1.0 without Host refused"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
r = s.recv(4096)
assert r.startswith(b"HTTP/1.1 200 ") or r.startswith(b"HTTP/1.0 200 "), r
PY
echo "api_http_parsing: ok"
