#!/bin/bash
# api_abuse.sh — the API stays up under abuse: (1) 200 connections that
# send their request one byte a second for 30 s (and one that trickles
# its body), (2) 1000 idle connections; throughout, a fresh client's
# GET /health must answer within 1 s (the worst latency is printed).
# Also: the whole-request deadline closes trickling connections (not
# only idle ones), the per-address limit holds, and a 4 GiB chunked body
# is refused after a bounded read instead of being read in full.
# Abusers connect from 127.0.0.2 and up (all loopback on Linux); the
# probing client is 127.0.0.1, a different address, as a real client
# would be.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

SLOW_SECONDS=${VD_ABUSE_SECONDS:-30}
start_daemon --format raw

python3 - "$VD_PORT" "$SLOW_SECONDS" <<'PY' || fail "the API did not hold up"
import socket, sys, threading, time
port, slow_s = int(sys.argv[1]), int(sys.argv[2])
DEADLINE = 15          # API_REQUEST_DEADLINE in api/server.c
worst = [0.0]
failures = []
stop = threading.Event()

def probe_loop(tag):
    n = 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
            s.settimeout(max(0.01, 1.0 - (time.monotonic() - t0)))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            r = b""
            while b"\r\n\r\n" not in r:
                d = s.recv(4096)
                if not d:
                    break
                r += d
            s.close()
            dt = time.monotonic() - t0
            if not r.startswith(b"HTTP/1.1 200 "):
                failures.append((tag, "reply %r" % r[:40]))
        except Exception as e:
            dt = time.monotonic() - t0
            failures.append((tag, repr(e)))
        worst[0] = max(worst[0], dt)
        n += 1
        time.sleep(0.2)
    return n

def connect_from(ip):
    s = socket.socket()
    s.bind((ip, 0))
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s

def closed(s):
    try:
        d = s.recv(4096)
        return d == b"" or d.startswith(b"HTTP/")
    except BlockingIOError:
        return False
    except OSError:
        return True

# ---- 1. slow headers ---------------------------------------------------------
REQ = b"GET /volumes HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
prober = threading.Thread(target=probe_loop, args=("slow",))
prober.start()
conns = []      # [sock, opened, pos]
lifetimes = []
for i in range(200):
    conns.append([connect_from("127.0.0.%d" % (2 + i % 10)), time.monotonic(), 0])
body = connect_from("127.0.0.20")   # complete head, then a trickled body
body.sendall(b"POST /volumes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n{")
body_open, body_closed = time.monotonic(), None
t_end = time.monotonic() + slow_s
reopened = 0
while time.monotonic() < t_end:
    for c in conns:
        if closed(c[0]):
            lifetimes.append(time.monotonic() - c[1])
            c[0].close()
            c[0] = connect_from(c[0].getsockname()[0] if False else "127.0.0.%d" % (2 + reopened % 10))
            c[1], c[2] = time.monotonic(), 0
            reopened += 1
            continue
        try:
            c[0].send(REQ[c[2] % len(REQ):c[2] % len(REQ) + 1])
            c[2] += 1
        except OSError:
            pass
    if body_closed is None:
        if closed(body):
            body_closed = time.monotonic() - body_open
        else:
            try:
                body.send(b" ")
            except OSError:
                body_closed = time.monotonic() - body_open
    time.sleep(1.0)
stop.set()
prober.join()
for c in conns:
    c[0].close()
body.close()
print("slow headers: %d connections for %d s, %d closed by the deadline "
      "(longest lived %.1f s), trickled body closed after %s s; "
      "worst /health latency %.3f s, %d failures"
      % (len(conns), slow_s, len(lifetimes), max(lifetimes or [0]),
         "%.1f" % body_closed if body_closed else "never", worst[0], len(failures)))
ok = not failures and worst[0] < 1.0
if slow_s > DEADLINE + 3:
    ok = ok and lifetimes and max(lifetimes) < DEADLINE + 3
    ok = ok and body_closed is not None and body_closed < DEADLINE + 3
slow_worst = worst[0]

# ---- 2. 1000 idle connections ----------------------------------------------
worst[0] = 0.0
stop.clear()
idle = []
prober = threading.Thread(target=probe_loop, args=("idle",))
prober.start()
for i in range(1000):
    try:
        idle.append(connect_from("127.0.0.%d" % (30 + i % 40)))
    except OSError as e:
        failures.append(("idle-connect", repr(e)))
        break
time.sleep(8)
open_now = sum(1 for s in idle if not closed(s))
stop.set()
prober.join()
for s in idle:
    s.close()
print("idle: %d connections opened, %d still open after 8 s; worst /health "
      "latency %.3f s, %d failures" % (len(idle), open_now, worst[0], len(failures)))
ok = ok and not failures and worst[0] < 1.0 and open_now >= 900

# ---- 3. per-address limit --------------------------------------------------
same = [connect_from("127.0.0.99") for _ in range(60)]
time.sleep(1.0)
refused = sum(1 for s in same if closed(s))
for s in same:
    s.close()
print("per-address: %d of 60 connections from one address refused" % refused)
ok = ok and refused >= 60 - 32

# ---- 4. a 4 GiB chunked body -----------------------------------------------
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"POST /volumes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n100000000\r\n")
chunk = b"x" * 65536
sent, reply = 0, b""
t0 = time.monotonic()
try:
    while sent < (4 << 30) and time.monotonic() - t0 < 30:
        s.sendall(chunk)
        sent += len(chunk)
except OSError:
    pass
try:
    s.settimeout(2)
    reply = s.recv(4096)
except OSError:
    pass
print("chunked 4 GiB: the server stopped reading after %.1f MiB (%.1f s), "
      "reply %r" % (sent / 1048576.0, time.monotonic() - t0, reply[:30]))
ok = ok and sent < (16 << 20)
sys.exit(0 if ok else 1)
PY
api GET /health
expect_status 200
echo "api_abuse: ok"
