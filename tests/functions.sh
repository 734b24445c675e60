# tests/functions.sh — shared helpers for functional tests. Source it:
#   . "$(dirname "$0")/../functions.sh"
# Gives: a private temp dir ($T), a cleanup trap stack (on_exit), start_daemon /
# stop_daemon (free port, waits for /health, checks SIGTERM exit and unmount),
# api (curl wrapper that stores status and body), fail, and expect_status.

set -u
VDISKD=${VDISKD:-$VD_BUILDDIR/vdiskd}
T=$(mktemp -d /tmp/vdtest.XXXXXX)
_cleanups=()

on_exit() { _cleanups+=("$*"); }

_run_cleanups() {
    local rc=$?
    local i
    for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_cleanups[i]}" >/dev/null 2>&1 || true
    done
    # Nothing may stay mounted below $T, whatever happened.
    grep -o " $T[^ ]*" /proc/mounts 2>/dev/null | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$T"
    exit $rc
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL: $*" >&2
    if [ -n "${VD_LOG:-}" ] && [ -f "$VD_LOG" ]; then
        echo "---- daemon log (last 40 lines) ----" >&2
        tail -n 40 "$VD_LOG" >&2
    fi
    exit 1
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_daemon [extra vdiskd flags...]
# Sets VD_DATA, VD_MNT, VD_PORT, VD_URL, VD_PID, VD_LOG. Reuses VD_DATA/VD_MNT
# if already set (to restart on the same state).
start_daemon() {
    VD_DATA=${VD_DATA:-$T/data}
    VD_MNT=${VD_MNT:-$T/mnt}
    VD_PORT=$(free_port)
    VD_URL=http://127.0.0.1:$VD_PORT
    VD_LOG=$T/daemon.log
    mkdir -p "$VD_DATA" "$VD_MNT"
    "$VDISKD" --data-dir "$VD_DATA" --mount "$VD_MNT" \
        --listen "127.0.0.1:$VD_PORT" "$@" >>"$VD_LOG" 2>&1 &
    VD_PID=$!
    on_exit "kill -9 $VD_PID; umount -l '$VD_MNT'"
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fsS "$VD_URL/health" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$VD_PID" 2>/dev/null || fail "daemon exited during start-up"
        sleep 0.1
    done
    fail "daemon did not become healthy within 10 s"
}

# stop_daemon: SIGTERM, expect exit 0 and the mount gone.
stop_daemon() {
    kill -TERM "$VD_PID"
    local rc=0
    wait "$VD_PID" || rc=$?
    [ "$rc" -eq 0 ] || fail "daemon exited with $rc on SIGTERM"
    if grep -q " $VD_MNT " /proc/mounts; then
        fail "mount $VD_MNT still present after daemon stop"
    fi
}

# api METHOD PATH [JSON-BODY] [extra curl args...]
# Sets API_STATUS, API_BODY (file $T/body) and API_HEADERS (file $T/headers).
api() {
    local method=$1 path=$2
    shift 2
    local args=(-sS -X "$method" -o "$T/body" -D "$T/headers" -w '%{http_code}')
    if [ $# -gt 0 ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$1")
        shift
    fi
    API_STATUS=$(curl "${args[@]}" "$@" "$VD_URL$path") || fail "curl $method $path failed"
    API_BODY=$(cat "$T/body")
}

# expect_status CODE — after api; fails with the body on mismatch.
expect_status() {
    [ "$API_STATUS" = "$1" ] || fail "expected HTTP $1, got $API_STATUS: $API_BODY"
}

# json_get FIELD — a top-level field of the last response (via python3).
json_get() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$T/body" "$1"
}

# qio FILE qemu-io-commands... — qemu-io through io_uring with O_DIRECT,
# the way QEMU opens a volume file. qio_ro: the same, opened read-only.
qio() { _qio "" "$@"; }
qio_ro() { _qio -r "$@"; }

_qio() {
    local ro=$1 f=$2
    shift 2
    local args=()
    local c
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io ${ro:+"$ro"} --image-opts \
        "driver=raw,file.driver=file,file.filename=$f,file.aio=io_uring,cache.direct=on" \
        "${args[@]}"
}
