#!/bin/bash
# api_startup_race.sh — clients that connect while the daemon is still
# starting its API (their connections wait in the listen backlog) are
# served, and never take the daemon down: each of several starts is
# hammered by six clients that connect in a tight loop from before the
# daemon runs until /health answers.
. "$(dirname "$0")/../functions.sh"

ROUNDS=${VD_STARTUP_ROUNDS:-8}
mkdir -p "$T/data" "$T/mnt"
for ((r = 1; r <= ROUNDS; r++)); do
    port=$(free_port)
    python3 - "$port" >"$T/hammer.out" 2>&1 <<'PY' &
import socket, sys, threading, time
port = int(sys.argv[1])
end = time.monotonic() + 20
served = threading.Event()

def hammer():
    while time.monotonic() < end and not served.is_set():
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                served.set()
        except OSError:
            pass
        finally:
            s.close()

threads = [threading.Thread(target=hammer) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if served.is_set():
    print("served")
PY
    hammer=$!
    "$VDISKD" --data-dir "$T/data" --mount "$T/mnt" --listen "127.0.0.1:$port" \
        >>"$T/daemon.log" 2>&1 &
    pid=$!
    on_exit "kill -9 $pid"
    wait "$hammer"
    grep -q served "$T/hammer.out" || {
        kill -0 "$pid" 2>/dev/null || fail "round $r: the daemon died while starting ($(tail -3 "$T/daemon.log"))"
        fail "round $r: a client connecting during start-up was never served"
    }
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "round $r: daemon exited with $rc on SIGTERM"
done
echo "api_startup_race: $ROUNDS starts, each served a client that connected during start-up"
