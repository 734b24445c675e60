#!/bin/bash
# api_fd_limit.sh — at the descriptor limit the daemon never spins: it
# raises its soft RLIMIT_NOFILE to the hard limit at start; with every
# descriptor taken by volumes, connections that cannot be accepted
# (EMFILE) cost almost no CPU, and /health answers again once they are
# gone and a descriptor is free.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

REAL=$VDISKD
printf '#!/bin/sh\nexec prlimit --nofile=64:128 "%s" "$@"\n' "$REAL" >"$T/vdiskd-limited"
chmod +x "$T/vdiskd-limited"
VDISKD=$T/vdiskd-limited
start_daemon --format raw
soft=$(awk '/Max open files/ {print $4}' "/proc/$VD_PID/limits")
[ "$soft" = 128 ] || fail "soft RLIMIT_NOFILE is $soft, want the hard limit 128"

# Fill the descriptor table with volumes.
n=0
for ((i = 1; i <= 300; i++)); do
    s=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "{\"name\": \"v$i\", \"size\": \"1M\"}" "$VD_URL/volumes")
    [ "$s" = 201 ] || break
    n=$i
done
echo "created $n volumes before the descriptors ran out; $(ls "/proc/$VD_PID/fd" | wc -l) open"
[ "$n" -lt 300 ] || fail "never ran out of descriptors"

# Five clients that cannot be accepted. The daemon must not spin.
python3 - "$VD_PORT" "$VD_PID" <<'PY' || fail "the daemon spun at the descriptor limit"
import os, socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz
socks = []
for _ in range(5):
    s = socket.socket()
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
time.sleep(0.5)
c0, t0 = cpu(), time.monotonic()
time.sleep(4)
share = (cpu() - c0) / (time.monotonic() - t0)
print("daemon CPU with 5 connections at the descriptor limit: %.1f%%" % (share * 100))
for s in socks:
    s.close()
sys.exit(0 if share < 0.25 else 1)
PY

# Once they are gone (and a descriptor is free), /health answers.
api DELETE /volumes/v1 -m 5 || true
ok=
for ((i = 0; i < 30; i++)); do
    if curl -fsS -m 2 "$VD_URL/health" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.2
done
[ -n "$ok" ] || fail "/health does not answer after the connections closed"
grep -q "cannot accept connections" "$VD_LOG" || fail "the limit was not logged"
stop_daemon
echo "api_fd_limit: ok"
