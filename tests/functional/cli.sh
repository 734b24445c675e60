#!/bin/bash
# cli.sh — the command line: --help, --version, bad flags and settings are
# refused with exit status 2 or 1 and a message, never a half-started daemon.
. "$(dirname "$0")/../functions.sh"

"$VDISKD" --help >"$T/out" || fail "--help exited non-zero"
grep -q -- "--data-dir" "$T/out" || fail "--help does not describe --data-dir"
"$VDISKD" --version >"$T/out" || fail "--version exited non-zero"
grep -Eq '^vdiskd [0-9]+\.[0-9]+\.[0-9]+$' "$T/out" || fail "--version printed: $(cat "$T/out")"

expect_exit() {
    local want=$1 pattern=$2
    shift 2
    local rc=0
    "$VDISKD" "$@" >"$T/out" 2>&1 || rc=$?
    [ "$rc" -eq "$want" ] || fail "vdiskd $* exited $rc, want $want: $(cat "$T/out")"
    grep -q -- "$pattern" "$T/out" || fail "vdiskd $* said: $(cat "$T/out")"
}
expect_exit 2 "unrecognized option" --bogus
expect_exit 2 "HOST:PORT" --listen nonsense --data-dir "$T/d" --mount "$T/m"
expect_exit 2 "HOST:PORT" --listen 127.0.0.1:99999 --data-dir "$T/d" --mount "$T/m"
expect_exit 2 "threads" --threads 0
expect_exit 2 "file-mode" --file-mode 9999
expect_exit 2 "cache" --cache sometimes
expect_exit 2 "owner" --owner no-such-user-here
expect_exit 2 "unexpected argument" stray
expect_exit 1 "import-dir" --import-dir /no/such/dir --data-dir "$T/d" --mount "$T/m"
expect_exit 1 "unknown default format" --format vmdk --data-dir "$T/d" \
    --mount "$T/m" --listen 127.0.0.1:0
if grep -q " $T/m " /proc/mounts; then
    fail "a refused start left a mount behind"
fi
echo "cli: ok"
