#!/bin/bash
# fault_injection.sh — a host I/O error inside the daemon reaches the FUSE
# client as EIO and nothing worse. VDISKD_FAULT (formats/fault.h) makes the
# second guest data write of the daemon fail: an overwrite of an allocated
# qcow2 cluster, which takes the asynchronous (io_uring) path where the
# kernel offers it. That write fails with EIO, the daemon stays up and
# counts the error, other writes read back, and after the daemon stops
# qemu-img check finds the image clean.
. "$(dirname "$0")/../functions.sh" || exit 1

VDISKD_FAULT="data-write:2:EIO" start_daemon
api POST /volumes '{"name":"v1","size":16777216,"format":"qcow2"}'
expect_status 201
F=$VD_MNT/v1

qio "$F" 'write -P 0x31 0 64k' >"$T/w1.out" 2>&1 ||
    fail "first write failed: $(cat "$T/w1.out")"
qio "$F" 'write -P 0x32 0 64k' >"$T/w2.out" 2>&1 &&
    fail "the write armed to fail succeeded: $(cat "$T/w2.out")"
grep -q "Input/output error" "$T/w2.out" ||
    fail "the failed write did not report EIO: $(cat "$T/w2.out")"
kill -0 "$VD_PID" 2>/dev/null || fail "daemon died on an injected EIO"

qio "$F" 'write -P 0x33 2M 64k' 'read -P 0x33 2M 64k' >"$T/qio.out" 2>&1 ||
    fail "I/O after the fault: $(cat "$T/qio.out")"
# The failed overwrite leaves old or new data, nothing else.
qio "$F" 'read -P 0x31 0 64k' >"$T/r.out" 2>&1 ||
    qio "$F" 'read -P 0x32 0 64k' >"$T/r.out" 2>&1 ||
    fail "a failed overwrite left other data: $(cat "$T/r.out")"
api GET /volumes/v1
expect_status 200
errors=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["errors"])' "$T/body")
[ "$errors" -ge 1 ] || fail "volume counted $errors errors"
stop_daemon

img=$(find "$VD_DATA/images" -name '*.qcow2' | head -1)
[ -f "$img" ] || fail "no image file under $VD_DATA/images"
qemu-img check -q "$img" || fail "qemu-img check after the fault: exit $?"
qemu-io -r -f qcow2 -c 'read -P 0x33 2M 64k' "$img" >"$T/final.out" 2>&1 ||
    fail "data after the daemon stopped: $(cat "$T/final.out")"
echo "fault_injection: ok"
