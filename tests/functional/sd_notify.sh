#!/bin/bash
# sd_notify.sh — the daemon speaks the Type=notify protocol the way
# deploy/vdiskd.service runs it: configured only through the unit's
# VDISKD_* environment, it sends READY=1 from its main PID once the API
# answers and the mount is up, keeps serving across SIGHUP (ExecReload),
# and sends STOPPING=1 on SIGTERM before a clean exit. A listener on a unix
# datagram socket plays systemd; both a path and an abstract socket.
. "$(dirname "$0")/../functions.sh"

[ -x "$VDISKD" ] || fail "no daemon binary at $VDISKD"

# listen SOCKET PORT MOUNT OUT — one line per datagram in OUT: the sender's
# PID (SCM_CREDENTIALS), the message, and for READY=1 whether the API
# answered and the mount was there at that moment.
cat >"$T/listen.py" <<'EOF'
import os, socket, struct, sys, urllib.request
path, port, mnt, out = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + path[1:] if path.startswith("@") else path)
with open(out, "a") as f:
    print("LISTENING", file=f, flush=True)
    while True:
        data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, val in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", val[:12])[0]
        msg = data.decode(errors="replace").strip().replace("\n", " ")
        extra = ""
        if "READY=1" in msg.split():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                health = "ok"
            except Exception:
                health = "down"
            extra = f" health={health} mounted={os.path.ismount(mnt)}"
        print(f"pid={pid} {msg}{extra}", file=f, flush=True)
EOF

wait_for_line() {   # FILE REGEX SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

run_once() {
    local sock=$1 tag=$2
    local port out pid lpid rc=0
    port=$(free_port)
    out=$T/notify-$tag.log
    VD_LOG=$T/daemon-$tag.log
    VD_MNT=$T/mnt-$tag
    python3 "$T/listen.py" "$sock" "$port" "$VD_MNT" "$out" &
    lpid=$!
    on_exit "kill $lpid"
    wait_for_line "$out" '^LISTENING' 5 || fail "notify listener did not start"

    # The unit's way: no flags, only the VDISKD_* environment.
    NOTIFY_SOCKET=$sock VDISKD_DATA_DIR=$T/data-$tag VDISKD_MOUNT=$VD_MNT \
        VDISKD_LISTEN=127.0.0.1:$port "$VDISKD" >"$VD_LOG" 2>&1 &
    pid=$!
    on_exit "kill -9 $pid; umount -l '$VD_MNT'"
    wait_for_line "$out" 'READY=1' 15 || fail "no READY=1 on $sock within 15 s: $(cat "$out")"
    grep -q "^pid=$pid READY=1 health=ok mounted=True$" "$out" ||
        fail "READY=1 not from the main PID $pid with the API up and the mount there: $(cat "$out")"
    grep -q 'STOPPING=1' "$out" && fail "STOPPING=1 before any stop: $(cat "$out")"

    kill -HUP "$pid"
    sleep 0.5
    kill -0 "$pid" 2>/dev/null || fail "daemon died on SIGHUP"
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null || fail "API down after SIGHUP"

    kill -TERM "$pid"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "daemon exited with $rc on SIGTERM"
    wait_for_line "$out" 'STOPPING=1' 5 || fail "no STOPPING=1 on SIGTERM: $(cat "$out")"
    grep -q "^pid=$pid STOPPING=1" "$out" || fail "STOPPING=1 not from the main PID: $(cat "$out")"
    [ "$(grep -c 'READY=1' "$out")" -eq 1 ] || fail "READY=1 sent more than once: $(cat "$out")"
    awk -v m="$VD_MNT" '$2 == m { exit 1 }' /proc/mounts || fail "mount left after SIGTERM"
    echo "sd_notify: $tag socket: READY=1 (API up, mounted), SIGHUP, STOPPING=1, exit 0"
}

run_once "$T/notify.sock" path
run_once "@vdiskd-test-notify-$$" abstract
echo "sd_notify: ok"
