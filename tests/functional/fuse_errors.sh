#!/bin/bash
# fuse_errors.sh — an error from the image reaches the client as its errno
# and nothing worse: the volume's host file system fills up (a small tmpfs
# under a larger sparse volume), writes fail with ENOSPC through the FUSE
# file, the daemon keeps serving and counts the errors, data already
# written stays readable, and freeing space (discard) lets writes succeed.
. "$(dirname "$0")/../functions.sh" || exit 1

VD_DATA=$T/data
mkdir -p "$VD_DATA"
mount -t tmpfs -o size=24m vdtest "$VD_DATA" || fail "cannot mount a tmpfs"
on_exit "umount -l '$VD_DATA'"
# Faults are injected in the driver: the daemon must serve the I/O.
start_daemon --passthrough off
api POST /volumes '{"name":"v1","size":67108864,"format":"raw"}'
expect_status 201
F=$VD_MNT/v1

qio "$F" 'write -P 0x31 0 4M' 'read -P 0x31 0 4M' >"$T/qio.out" 2>&1 ||
    fail "I/O with space left: $(cat "$T/qio.out")"

# Fill the file system: some of these writes must fail, with ENOSPC.
cmds=()
for ((mb = 8; mb < 64; mb++)); do cmds+=("write -P 0x32 ${mb}M 1M"); done
qio "$F" "${cmds[@]}" >"$T/full.out" 2>&1 && fail "64 MiB fit in a 24 MiB file system?"
grep -q "No space left on device" "$T/full.out" ||
    fail "writes on a full file system did not fail with ENOSPC: $(tail -5 "$T/full.out")"

kill -0 "$VD_PID" 2>/dev/null || fail "daemon died on ENOSPC"
api GET /volumes/v1
expect_status 200
errors=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["errors"])' "$T/body")
[ "$errors" -ge 1 ] || fail "volume counted $errors errors"
qio "$F" 'read -P 0x31 0 4M' 'read -P 0x32 8M 1M' >"$T/qio.out" 2>&1 ||
    fail "data written before the disk filled is unreadable: $(cat "$T/qio.out")"

# Free space by discarding, and writing works again.
qio "$F" 'discard 8M 32M' 'write -P 0x33 60M 1M' 'read -P 0x33 60M 1M' \
    'read -P 0 8M 1M' >"$T/qio.out" 2>&1 ||
    fail "no recovery after discard: $(cat "$T/qio.out")"
stop_daemon
echo "fuse_errors: ok"
