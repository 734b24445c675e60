#!/bin/bash
# api_conn_limit.sh — the total connection limit (API_MAX_CONNECTIONS,
# capped at half of RLIMIT_NOFILE): under nofile=128 it is 64. More idle
# connections than that, from ten loopback addresses (under the
# per-address limit of 32): those over the limit are closed at once, the
# daemon does not spin, the unix socket listener beside the TCP one still
# answers /health, a fresh TCP client is answered within 1 s by pushing
# out the oldest idle connection, and once the idle connections are gone
# a fresh TCP client is answered within 1 s. Then the same over TLS,
# where the connections reach libmicrohttpd unscreened. The figures are
# printed.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

REAL=$VDISKD
printf '#!/bin/sh\nexec prlimit --nofile=128:128 "%s" "$@"\n' "$REAL" >"$T/vdiskd-limited"
chmod +x "$T/vdiskd-limited"
VDISKD=$T/vdiskd-limited
SOCK=$T/api.sock
start_daemon --format raw --listen "unix:$SOCK"
grep -q "64 connections per listener" "$VD_LOG" ||
    fail "the connection limit is not 64: $(grep 'connections per listener' "$VD_LOG")"

python3 - "$VD_PORT" "$VD_PID" "$SOCK" <<'PY' || fail "the connection limit does not hold up"
import os, socket, sys, time
port, pid, sock_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
LIMIT, N = 64, 100
hz = os.sysconf("SC_CLK_TCK")

def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def closed(s, wait):
    """True if the server closed s (EOF, reset, or a reply) within wait s."""
    s.settimeout(wait)
    try:
        d = s.recv(4096)
        return d == b"" or d.startswith(b"HTTP/")
    except socket.timeout:
        return False
    except OSError:
        return True

def health(family, addr, timeout=1.0):
    t0 = time.monotonic()
    try:
        s = socket.socket(family)
        s.settimeout(timeout)
        s.connect(addr)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        r = b""
        while b"\r\n\r\n" not in r:
            d = s.recv(4096)
            if not d:
                break
            r += d
        s.close()
        return r.startswith(b"HTTP/1.1 200 "), time.monotonic() - t0
    except OSError:
        return False, time.monotonic() - t0

ok = True
c0 = ticks()
idle, t_open = [], []
for i in range(N):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i % 10), 0))
    s.settimeout(3)
    t = time.monotonic()
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        print("connect %d failed: %r" % (i, e))
        s.close()
        continue
    idle.append(s)
    t_open.append(t)
# Which ones the server closed, and how soon after their connect.
import selectors
sel = selectors.DefaultSelector()
for s, t in zip(idle, t_open):
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, t)
refuse_s = []
end = time.monotonic() + 1.0
while time.monotonic() < end:
    for key, _ in sel.select(max(0.01, end - time.monotonic())):
        refuse_s.append(time.monotonic() - key.data)
        sel.unregister(key.fileobj)
late = 0
time.sleep(1.0)
for key in list(sel.get_map().values()):
    try:
        key.fileobj.recv(1)  # EOF or a reply: closed by the server
        late += 1
    except BlockingIOError:
        pass
    except OSError:
        late += 1
accepted = len(idle) - len(refuse_s) - late
print("idle: %d connected, %d kept open, %d closed at once (slowest %.3f s "
      "after its connect), %d closed later"
      % (len(idle), accepted, len(refuse_s), max(refuse_s or [0]), late))
ok = ok and accepted <= LIMIT and len(refuse_s) >= N - LIMIT and late == 0

# While they are held: the CPU the daemon burns, the unix socket, TCP.
ca, ta = ticks(), time.monotonic()
time.sleep(3.0)
spin = (ticks() - ca) / hz / (time.monotonic() - ta)
u_ok, u_s = health(socket.AF_UNIX, sock_path, 2.0)
t_ok, t_s = health(socket.AF_INET, ("127.0.0.1", port), 1.0)
print("held: daemon CPU %.1f%% over 3 s (%d ticks of %d/s); unix /health %s in "
      "%.3f s; TCP /health %s in %.3f s"
      % (spin * 100, ticks() - ca, hz, "ok" if u_ok else "FAILED", u_s,
         "ok" if t_ok else "refused", t_s))
ok = ok and spin < 0.25 and u_ok and t_ok and t_s < 1.0
# The TCP client got in by pushing out the oldest idle connection.
evicted = 0
for key in list(sel.get_map().values()):
    try:
        key.fileobj.recv(1)
        evicted += 1
    except BlockingIOError:
        pass
    except OSError:
        evicted += 1
print("held: %d idle connection(s) closed to let the TCP client in" % evicted)
ok = ok and 1 <= evicted <= 2

# Close them: a fresh TCP client is answered within 1 s.
for s in idle:
    s.close()
t0 = time.monotonic()
first = None
while time.monotonic() - t0 < 5:
    h_ok, _ = health(socket.AF_INET, ("127.0.0.1", port), 1.0)
    if h_ok:
        first = time.monotonic() - t0
        break
    time.sleep(0.05)
print("after closing: TCP /health answered after %s s; daemon CPU ticks in "
      "all %d" % ("%.3f" % first if first is not None else "never", ticks() - c0))
ok = ok and first is not None and first < 1.0
sys.exit(0 if ok else 1)
PY
api GET /health
expect_status 200
stop_daemon

# Over TLS nothing is screened first: the connections go to libmicrohttpd
# as they come. While the idle ones are held, a new client takes the place
# of the oldest; once they are gone, a client must be answered
# (going over libmicrohttpd's own limit used to hang its threads for
# good), and SIGTERM must still stop the daemon.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$T/tls.key" -out "$T/tls.pem" \
    >/dev/null 2>&1 || fail "openssl self-signed certificate"
chmod 0600 "$T/tls.key"
PORT=$(free_port)
mkdir -p "$T/d2" "$T/m2"
"$VDISKD" --data-dir "$T/d2" --mount "$T/m2" --listen "127.0.0.1:$PORT" --format raw \
    --tls-cert "$T/tls.pem" --tls-key "$T/tls.key" >"$T/tls.log" 2>&1 &
PID=$!
VD_LOG=$T/tls.log
on_exit "kill -9 $PID; umount -l '$T/m2'"
for ((i = 0; i < 100; i++)); do
    curl -fsS --cacert "$T/tls.pem" "https://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 $PID 2>/dev/null || fail "TLS daemon exited: $(cat "$T/tls.log")"
    sleep 0.1
done
python3 - "$PORT" "$PID" "$T/tls.pem" <<'PY' || fail "the connection limit does not hold up over TLS"
import os, socket, ssl, sys, time
port, pid, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
LIMIT, N = 64, 100
hz = os.sysconf("SC_CLK_TCK")
ctx = ssl.create_default_context(cafile=ca)

def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def health():
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=1.0)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False

idle = []
for i in range(N):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i % 10), 0))
    s.settimeout(3)
    s.connect(("127.0.0.1", port))
    idle.append(s)
time.sleep(1.0)
kept = 0
for s in idle:
    s.settimeout(0.01)
    try:
        kept += s.recv(1) != b""
    except socket.timeout:
        kept += 1
    except OSError:
        pass
c0, t0 = ticks(), time.monotonic()
time.sleep(2.0)
spin = (ticks() - c0) / hz / (time.monotonic() - t0)
t1 = time.monotonic()
held_ok = health()
held_s = time.monotonic() - t1
print("TLS: while held, /health %s in %.3f s" % ("ok" if held_ok else "FAILED", held_s))
for s in idle:
    s.close()
t0 = time.monotonic()
first = None
while time.monotonic() - t0 < 5:
    if health():
        first = time.monotonic() - t0
        break
    time.sleep(0.05)
print("TLS: %d idle connections, %d kept open; daemon CPU %.1f%% while held; "
      "after closing them /health answered after %s s"
      % (N, kept, spin * 100, "%.3f" % first if first is not None else "never"))
sys.exit(0 if kept <= LIMIT and spin < 0.25 and held_ok and held_s < 1.0 and
         first is not None and first < 1.0 else 1)
PY
kill -TERM $PID
rc=0
timeout 20 tail --pid=$PID -f /dev/null || rc=$?
[ "$rc" -eq 0 ] || fail "the TLS daemon did not stop on SIGTERM"
echo "api_conn_limit: ok"
