#!/bin/bash
# fuse_stop_busy.sh — stopping the daemon while a client still holds a file
# open (and while the mount was detached under it) ends promptly with exit 0
# and no mount left; the client's next request fails instead of hanging.
. "$(dirname "$0")/../functions.sh" || exit 1

# holder FILE READY-FILE: open FILE, report, then after the daemon stopped
# (READY-FILE.go exists) try one read and write what happened to READY-FILE.out.
holder() {
    python3 - "$1" "$2" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.pread(fd, 4096, 0)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[2] + ".go"):
    time.sleep(0.05)
try:
    os.pread(fd, 4096, 0)
    r = "read ok"
except OSError as e:
    r = "errno %d" % e.errno
open(sys.argv[2] + ".out", "w").write(r)
PY
    HOLDER=$!
    on_exit "kill $HOLDER"
    local i
    for ((i = 0; i < 100; i++)); do [ -e "$2" ] && return 0; sleep 0.05; done
    fail "holder did not open $1"
}

# timed_stop: stop_daemon well within the daemon's 3 s fallback timeouts
# (a normal stop takes milliseconds).
timed_stop() {
    local start ms
    start=$(date +%s%N)
    stop_daemon
    ms=$((($(date +%s%N) - start) / 1000000))
    [ "$ms" -le 2000 ] || fail "stop took $ms ms"
}

check_holder() {
    touch "$1.go"
    wait "$HOLDER" || fail "holder failed"
    grep -Eq "^errno (107|5|19|103)$" "$1.out" ||
        fail "holder after stop: $(cat "$1.out")"
}

# 1. The mount is in place and a file is open. Served by the daemon: a
# file the kernel serves by passthrough keeps its image (README).
start_daemon --passthrough off
api POST /volumes '{"name":"v1","size":16777216,"format":"raw"}'
expect_status 201
holder "$VD_MNT/v1" "$T/h1"
timed_stop
check_holder "$T/h1"

# 2. An admin detached the mount while the file was open.
start_daemon --passthrough off
holder "$VD_MNT/v1" "$T/h2"
umount -l "$VD_MNT" || fail "umount -l failed"
timed_stop
check_holder "$T/h2"
echo "fuse_stop_busy: ok"
