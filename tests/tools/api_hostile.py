#!/usr/bin/env python3
"""api_hostile.py PORT IMPORT_DIR DATA_DIR SOCK_DIR — throw hostile HTTP at
a running vdiskd and judge every answer.

Each input is one request on its own connection, sent as raw bytes so
that nothing between the test and the daemon tidies it up. An answer is
wrong when it is a 5xx, when it does not come within the time limit,
when it is not one well-formed HTTP response (a second response, or
bytes after the body), or when the daemon stops answering /health.

The inputs cover the request line (methods, paths, versions), every
header the daemon reads or might trip over, JSON bodies for every field
of every mutating route, and import and backing sources of every file
type. Prints the number of inputs tried and the status codes seen."""
import json
import os
import socket
import sys
import time

PORT = int(sys.argv[1])
IMPORTS, DATA, SOCKS = sys.argv[2], sys.argv[3], sys.argv[4]
TIMEOUT = float(os.environ.get("VD_HOSTILE_TIMEOUT", "20"))
tried = 0
codes = {}
silent = 0
bad = []


def exchange(raw, timeout=None):
    """Send raw bytes, read until the server closes; (status, text) or
    (None, reason)."""
    timeout = timeout or TIMEOUT
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer early and close; read what it said
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        buf = b""
        while True:
            if time.monotonic() - t0 > timeout:
                return None, "no end of answer within %.0f s" % timeout
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                return None, "no answer within %.0f s" % timeout
            if not d:
                break
            buf += d
    finally:
        s.close()
    return parse(buf, raw.startswith(b"HEAD "))


def parse(buf, head_request=False):
    if buf == b"":
        return 0, "closed without an answer"
    while buf.startswith(b"HTTP/1.1 100 "):  # interim answer to Expect
        buf = buf.partition(b"\r\n\r\n")[2]
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, "unterminated response head: %r" % buf[:200]
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return None, "bad status line %r" % lines[0][:120]
    status = int(parts[1])
    clen = None
    chunked = False
    for h in lines[1:]:
        k, _, v = h.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            clen = int(v.strip())
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if head_request:
        clen = 0
    if clen is not None and not chunked:
        if len(rest) < clen:
            return None, "body shorter than Content-Length (%d < %d)" % (len(rest), clen)
        if len(rest) > clen:
            return None, "bytes after the response (two answers?): %r" % rest[clen:clen + 80]
    elif b"HTTP/1." in rest:
        return None, "a second response follows the first"
    return status, rest[: clen or 300].decode("utf-8", "replace")


deferred = []


def judge(label, raw, allow_silent=False, incomplete=False, version=False,
          refuse=False):
    """Send one input and judge its answer. allow_silent: closing without
    an answer is acceptable (the input is not HTTP). incomplete: the input
    stops short, so the answer may be a close at the idle timeout or the
    request deadline; such inputs run together at the end. version: 505
    is the right answer. refuse: the request must not succeed (2xx)."""
    if incomplete:
        deferred.append((label, raw))
        return None
    if os.environ.get("VD_HOSTILE_TRACE"):
        print("..", label[:100], flush=True)
    status = verdict(label, exchange(raw), allow_silent, version)
    if refuse and status is not None and 200 <= status < 300:
        bad.append("%s: accepted (HTTP %d), must be refused" % (label, status))
    return status


def verdict(label, answer, allow_silent, version=False):
    global tried, silent
    tried += 1
    status, text = answer
    if os.environ.get("VD_HOSTILE_TRACE"):
        print("   -> %s" % (status if status else text), flush=True)
    if status is None:
        bad.append("%s: %s" % (label, text))
        return None
    if status == 0:
        silent += 1
        if not allow_silent:
            bad.append("%s: %s" % (label, text))
        return 0
    codes[status] = codes.get(status, 0) + 1
    if status >= 500 and not (version and status == 505):
        bad.append("%s: HTTP %d %s" % (label, status, text[:200]))
    return status


def req(method, path, headers=None, body=None, version=b"HTTP/1.1"):
    if isinstance(method, str):
        method = method.encode()
    if isinstance(path, str):
        path = path.encode("utf-8", "surrogateescape")
    h = [b"Host: localhost"] if headers is None else list(headers)
    if body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
        if not any(x.lower().startswith(b"content-length") or
                   x.lower().startswith(b"transfer-encoding") for x in h):
            h.append(b"Content-Length: %d" % len(body))
        if not any(x.lower().startswith(b"content-type") for x in h):
            h.append(b"Content-Type: application/json")
    out = method + b" " + path + b" " + version + b"\r\n"
    out += b"".join(x + b"\r\n" for x in h) + b"\r\n"
    return out + (body or b"")


def health_ok():
    st, _ = exchange(req("GET", "/health"))
    return st == 200


# ---- 1. request lines ------------------------------------------------------
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
           "TRACE", "CONNECT", "PROPFIND", "get", "Get", "A" * 300, "GET\x00"]
PATHS = ["/", "/volumes", "/volumes/", "//volumes", "/volumes//base",
         "/volumes/base", "/volumes/base/", "/volumes/base/snapshots",
         "/volumes/base/snapshots/s1", "/volumes/base/snapshots/s1/revert",
         "/volumes/base/snapshots/s1/changes",
         "/volumes/base/snapshots/s1/changes?since=nosuch",
         "/volumes/base/snapshots/s1/changes?since=%00",
         "/volumes/base/snapshots/..", "/jobs", "/jobs/0", "/jobs/-1",
         "/jobs/99999999999999999999", "/jobs/..", "/jobs/%2e%2e",
         "/volumes/%2e%2e", "/volumes/..%2f..%2fetc", "/volumes/base%00x",
         "/volumes/base%2fsnapshots", "/volumes/" + "a" * 300,
         "/volumes/\xff\xfe", "/volumes/%ff", "/volumes/%", "/volumes/%zz",
         "/volumes/.snapshots", "/volumes/-rf", "/volumes/%20a",
         "/volumes/\u00e9t\u00e9", "*", "http://evil.example/volumes",
         "/volumes?" + "a=b&" * 400, "/volumes/base?force=true&force=false",
         "/volumes/nosuch?purge=maybe", "/volumes/nosuch?force=",
         "/volumes/nosuch?force", "/volumes/nosuch?%00=1", "/metrics?x=1",
         "/health/../volumes", "/openapi.json/x", "/health?" + "x" * 20000,
         "volumes", ""]
BODIES_FOR = {"POST", "PUT", "PATCH", "A" * 300}
for m in METHODS:
    for p in PATHS:
        # DELETE only on names that must not go away: base has clones
        # (409), everything else here is absent or malformed.
        body = "{}" if m in BODIES_FOR else None
        judge("%s %r" % (m[:10], p[:60]), req(m, p, body=body),
              allow_silent=(m in ("GET\x00", "A" * 300) or p in ("", "*")))

for line in [b"GET /health HTTP/1.0\r\n\r\n", b"GET /health\r\n\r\n",
             b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
             b"GET /health http/1.1\r\nHost: x\r\n\r\n",
             b"GET /health HTTP/1.10\r\nHost: x\r\n\r\n",
             b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
             b"GET  /health  HTTP/1.1\r\nHost: x\r\n\r\n",
             b"GET\t/health\tHTTP/1.1\r\nHost: x\r\n\r\n",
             b"GET /health HTTP/1.1\nHost: x\n\n",
             b"GET /health HTTP/1.1\rHost: x\r\r",
             b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
             b"GET /" + b"v" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
             b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64),
             b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", os.urandom(512), b"\x00" * 64,
             b"", b"GET", b"GET /health HTTP/1.1\r\nHost: x\r\n"]:
    judge("request line %r" % line[:40], line, allow_silent=True,
          incomplete=b"\r\n\r\n" not in line, version=True)

# ---- 2. headers ------------------------------------------------------------
CREATE_BAD = '{"name":"hdr","size":-1}'
HEADER_SETS = [
    [b"Host: x", b"Content-Length: -1"],
    [b"Host: x", b"Content-Length: abc"],
    [b"Host: x", b"Content-Length: 18446744073709551616"],
    [b"Host: x", b"Content-Length: 1e3"],
    [b"Host: x", b"Content-Length:  24"],
    [b"Host: x", b"Content-Length: 24, 24"],
    [b"Host: x", b"Content-Length: 24", b"Content-Length: 24"],
    [b"Host: x", b"Content-Length: 24", b"Content-Length: 5"],
    [b"Host: x", b"Content-Length: 24", b"Transfer-Encoding: chunked"],
    [b"Host: x", b"Transfer-Encoding: gzip"],
    [b"Host: x", b"Transfer-Encoding: chunked, chunked"],
    [b"Host: x", b"Transfer-Encoding: identity"],
    [b"Host: x", b"Content-Length: 24", b"Expect: 100-continue"],
    [b"Host: x", b"Content-Length: 24", b"Expect: teapot"],
    [b"Content-Length: 24"],
    [b"Host:", b"Content-Length: 24"],
    [b"Host: x", b"Host: y", b"Content-Length: 24"],
    [b"Host: x", b"NoColonHere", b"Content-Length: 24"],
    [b"Host: x", b"Bad Name: v", b"Content-Length: 24"],
    [b"Host: x", b"X-Fold: a", b" continued", b"Content-Length: 24"],
    [b"Host: x", b"X-Nul: a\x00b", b"Content-Length: 24"],
    [b"Host: x", b"X-Big: " + b"b" * 8192, b"Content-Length: 24"],
    [b"Host: x", b"X-Huge: " + b"h" * 200000, b"Content-Length: 24"],
    [b"Host: x"] + [b"X-H%d: v" % i for i in range(2000)] + [b"Content-Length: 24"],
    [b"Host: x", b"Authorization: Bearer", b"Content-Length: 24"],
    [b"Host: x", b"Authorization: Bearer " + b"t" * 9000, b"Content-Length: 24"],
    [b"Host: x", b"Authorization: Basic YWRtaW46YWRtaW4=", b"Content-Length: 24"],
    [b"Host: x", b"Authorization: Bearer a b c", b"Content-Length: 24"],
    [b"Host: x", b"Connection: keep-alive", b"Content-Length: 24"],
    [b"Host: x", b"Connection: Upgrade", b"Upgrade: h2c", b"Content-Length: 24"],
    [b"Host: x", b"Content-Type: text/plain", b"Content-Length: 24"],
    [b"Host: x", b"Content-Type: application/json; charset=utf-16",
     b"Content-Length: 24"],
    [b"Host: x", b"Content-Type: multipart/form-data; boundary=x",
     b"Content-Length: 24"],
    [b"Host: x", b"Content-Type: application/x-www-form-urlencoded",
     b"Content-Length: 24"],
    [b"Host: x", b"Content-Type: application/json", b"Content-Type: text/plain",
     b"Content-Length: 24"],
    [b"Host: x", b"Content-Type: " + b"a" * 5000, b"Content-Length: 24"],
    [b"Host: x", b"Content-Encoding: gzip", b"Content-Length: 24"],
    [b"Host: x", b"Content-Length: 24", b"Range: bytes=0-"],
]
for hs in HEADER_SETS:
    hs = hs + ([] if any(h.lower().startswith(b"content-type") for h in hs)
               else [b"Content-Type: application/json"])
    raw = req("POST", "/volumes", hs, None) + CREATE_BAD.encode()
    judge("headers %r" % [h[:30] for h in hs[:4]], raw, allow_silent=True)
    get = [h for h in hs if not h.lower().startswith(b"content")]
    judge("GET headers %r" % [h[:30] for h in hs[:4]], req("GET", "/volumes", get),
          allow_silent=True,
          incomplete=any(h.lower().startswith(b"transfer-encoding") for h in get))

CHUNKED = [b"5\r\n{\"nam\r\n0\r\n\r\n", b"zz\r\nabc\r\n0\r\n\r\n",
           b"-1\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffffff\r\nabc\r\n",
           b"1;ext=1\r\n{\r\n1\r\n}\r\n0\r\n\r\n",
           b"2\r\n{}\r\n0\r\nTrailer: x\r\n\r\n", b"0\r\n\r\n",
           b"100000\r\n" + b"x" * 70000, b"2\r\n{}"]
for body in CHUNKED:
    raw = req("POST", "/volumes", [b"Host: x", b"Content-Type: application/json",
                                   b"Transfer-Encoding: chunked"]) + body
    judge("chunked %r" % body[:20], raw, allow_silent=True,
          incomplete=not body.endswith(b"\r\n\r\n"))

# ---- 3. JSON bodies --------------------------------------------------------
n = [0]


def fresh():
    n[0] += 1
    return "h%d" % n[0]


SIZES = [-1, 0, 1, 511, 512, 1000, 2**31, 2**53 + 1, 2**63, 2**64, 2**70,
         1e300, -0.0, 1.5, "1P", "1E", "16E", "9999999999999999999T", "-5G",
         "1.5G", "0x10", " 10G", "10GiB", "10 G", "1K", "", "G", "1Q", True,
         None, [], {}, "NaN", "1e3"]
NAMES = ["", ".", "..", ".snapshots", "a/b", "a\u0000b", "a" * 300, "-x",
         "\u00e9", "a b", "a\nb", "CON", "a" * 64, "a" * 65, "base", 5, None,
         ["x"], "a%2fb", "a\\b", "\udcff"]
FORMATS = ["vmdk", "", "../raw", None, 5, "RAW", "qcow2\u0000", "qcow"]
CLUSTERS = [0, 511, 513, 4096, 2**21, 2**22, -4096, "64K", 1e9, 65536.5, None]
URIS = ["nbd://127.0.0.1:1/x", "nbd+unix:///x?socket=/etc/passwd",
        "nbd+unix:///x?socket=%s/../../etc/passwd" % SOCKS,
        "nbd+unix:///x?socket=%s/none.sock" % SOCKS, "http://x/",
        "", "nbd://[::1", "nbd://host:99999/", "nbd://127.0.0.1:1/" + "e" * 5000,
        "nbds://127.0.0.1:1/x", "nbd://user@127.0.0.1:1/x?tls-certificates=/",
        "file:///etc/passwd", "rbd://nosuch/pool/img", 7, None]


def post(path, obj, label, method="POST", refuse=False):
    body = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
    return judge("%s %s %s" % (method, path, label[:100]),
                 req(method, path, body=body), refuse=refuse)


for raw in ["{", "[]", '"x"', "1", "null", '{"name":}', '{"name":"a",}',
            "\ufeff{}", '{"name":"x"}' * 2, "[" * 10000 + "]" * 10000,
            '{"a":' * 5000 + "1" + "}" * 5000, '{"name":"\\ud800"}',
            '{"name":"x","name":"y","size":"1M"}', b'{"name":"\xff"}',
            '{"name":"x","size":1}\x00', '{"name":"x", "size": 1e999}']:
    post("/volumes", raw, "raw %r" % raw[:30])

for s in SIZES:
    post("/volumes", {"name": fresh(), "size": s}, "size %r" % (s,))
    post("/volumes", {"name": fresh(), "size": s, "format": "raw"},
         "raw size %r" % (s,))
    post("/volumes/r1", {"size": s}, "patch size %r" % (s,), "PATCH")
for nm in NAMES:
    post("/volumes", {"name": nm, "size": "1M"}, "name %r" % (nm,))
    post("/volumes/base/snapshots", {"name": nm}, "snap name %r" % (nm,))
    post("/volumes/c1/snapshots", {"name": nm}, "snap name %r" % (nm,))
for f in FORMATS:
    post("/volumes", {"name": fresh(), "size": "1M", "format": f}, "format %r" % (f,))
for c in CLUSTERS:
    post("/volumes", {"name": fresh(), "size": "1M", "cluster_size": c},
         "cluster %r" % (c,))
    post("/volumes", {"name": fresh(), "size": "1M", "format": "raw",
                      "cluster_size": c}, "raw cluster %r" % (c,), refuse=True)
for u in URIS:
    post("/volumes", {"name": fresh(), "backend": {"type": "nbd", "uri": u}},
         "nbd %r" % (u,))
for b in [{"type": "rbd", "cluster": "nosuch", "pool": "p", "image": "i"},
          {"type": "rbd", "cluster": "", "pool": "", "image": ""},
          {"type": "file"}, {"type": "ceph"}, {"type": 7}, {}, [], "nbd",
          {"type": "nbd"}, {"type": "nbd", "uri": "nbd://x/y", "extra": 1}]:
    post("/volumes", {"name": fresh(), "backend": b}, "backend %r" % (b,))
for src in [{"volume": "base", "snapshot": "nosuch"}, {"volume": "nosuch"},
            {"volume": ""}, {"snapshot": "s1"}, {"volume": "base", "snapshot": 1},
            {"volume": "base", "extra": 1}, "base", None, []]:
    post("/volumes", {"name": fresh(), "source": src}, "source %r" % (src,))
for base in ["nosuch", "", "..", 5, None, "c1"]:
    post("/volumes", {"name": fresh(), "base": base}, "base %r" % (base,))
post("/volumes", {"name": "selfref", "base": "selfref"}, "base itself")
for extra in [{"unknown": 1}, {"size": "1M", "import": {"path": "/x"}},
              {"size": "1M", "base": "base"}, {"size": "1M", "source": {"volume": "base"}},
              {"base": "base", "import": {"path": "/x"}}, {"import": {}},
              {"import": {"path": 5}}, {"import": {"path": "/x", "y": 1}},
              {"import": "x"}]:
    body = dict(extra)
    body["name"] = fresh()
    post("/volumes", body, "combo %r" % (extra,))

# PATCH and snapshot routes on the linked-clone base, which is read-only.
post("/volumes/base", {"size": "64M"}, "grow a base", "PATCH")
post("/volumes/base/snapshots", {"name": "s9"}, "snapshot a base")
judge("DELETE base snapshot", req("DELETE", "/volumes/base/snapshots/s1"))
judge("revert base", req("POST", "/volumes/base/snapshots/s1/revert", body="{}"))
for body in ['{"force":true}', '{"x":1}', "[]", '"s1"']:
    post("/volumes/c1/snapshots/nosuch/revert", body, "revert body %s" % body)
for body in ['{}', '{"size":"8M"}', '{"size":"1M"}', '{"size":"64M","x":1}',
             '{"name":"other"}', '[]', 'null']:
    post("/volumes/r1", body, "patch %s" % body, "PATCH")

# ---- 4. import and backing sources of every file type ----------------------
sources = sorted(os.listdir(IMPORTS))
outside = ["/etc/shadow", "/etc/passwd", "/proc/self/mem", "/dev/zero",
           "/dev/null", "/", "relative/path", "", "/" + "p" * 5000,
           os.path.join(DATA, "catalog.db"), os.path.join(DATA, "images"),
           IMPORTS + "/../../etc/passwd", IMPORTS + "/./nosuch"]
for name in sorted(os.listdir(os.path.join(DATA, "images"))):
    outside.append(os.path.join(DATA, "images", name))
# Only these may be taken in: good images, and damaged fields that the
# format ignores (a backing name length without a backing file, a
# snapshot table offset with no snapshots); up to 16 backing files.
ACCEPTABLE = {"good.qcow2", "raw-1m", "raw-16t", "bad-backing-size-huge.qcow2",
              "bad-snapshots-off-eof.qcow2"} | {"chain-%d.qcow2" % i for i in range(17)}
for p in [os.path.join(IMPORTS, s) for s in sources] + outside:
    base = os.path.basename(p)
    ok = os.path.dirname(p) == IMPORTS and base in ACCEPTABLE
    post("/volumes", {"name": fresh(), "import": {"path": p}},
         "import %s" % (base[:40] or p[:40]), refuse=not ok)
    post("/volumes", {"name": fresh(), "format": "raw", "import": {"path": p}},
         "import raw %s" % (base[:40] or p[:40]),
         refuse=not (ok and base.startswith("raw-")))

# Inputs that stop short: all at once, each must end by the request
# deadline (15 s) or the idle timeout (10 s) plus slack.
if deferred:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(16, len(deferred))) as ex:
        answers = list(ex.map(lambda d: exchange(d[1], 25.0), deferred))
    for (label, _), answer in zip(deferred, answers):
        verdict(label, answer, True)

if not health_ok():
    bad.append("/health does not answer 200 after the inputs")

print("hostile inputs tried: %d; answers by status: %s; closed without an "
      "answer: %d" % (tried, dict(sorted(codes.items())), silent))
for b in bad:
    print("WRONG: " + b)
sys.exit(1 if bad else 0)
