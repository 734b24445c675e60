#!/bin/bash
# fuse_image_unlinked.sh — an image file deleted behind the daemon's back.
# The daemon's open descriptor keeps the deleted file writable, so without
# a check writes and fsyncs succeed and are all lost at the next restart.
# Once the file has no links left, fsync must fail with EIO (and so must
# every later request, within about a second of writing), and
# GET /volumes/{name} must say the volume is missing and why. A volume
# whose file is in place is not affected; after a restart the volume is
# missing, as its file is. The daemon serves the raw volume itself here
# (--passthrough off): with kernel passthrough only fsync and new opens
# reach it (README, performance).
. "$(dirname "$0")/../functions.sh" || exit 1

start_daemon --passthrough off
for f in raw qcow2; do
    api POST /volumes "{\"name\":\"$f\",\"size\":16777216,\"format\":\"$f\"}"
    expect_status 201
done
api POST /volumes '{"name":"keep","size":16777216,"format":"qcow2"}'
expect_status 201

for f in raw qcow2; do
    F=$VD_MNT/$f
    qio "$F" 'write -P 0x11 0 64k' flush >"$T/w.out" 2>&1 ||
        fail "$f: first write: $(cat "$T/w.out")"
    api GET /volumes/$f
    img=$(json_get image)
    [ -f "$img" ] || fail "$f: no image file found"
    rm -f "$img"

    # A write may still be taken (it is not durable yet), the fsync not.
    qio "$F" 'write -P 0x22 64k 64k' flush >"$T/w.out" 2>&1 &&
        fail "$f: write and fsync to a deleted image succeeded"
    grep -q "Input/output error" "$T/w.out" ||
        fail "$f: not EIO: $(cat "$T/w.out")"
    # From then on every request fails, without another fsync.
    qio "$F" 'write -P 0x33 128k 4k' >"$T/w.out" 2>&1 &&
        fail "$f: write after the loss was found succeeded"
    qio "$F" 'read 0 4k' >"$T/r.out" 2>&1 &&
        fail "$f: read after the loss was found succeeded"

    api GET /volumes/$f
    expect_status 200
    [ "$(json_get state)" = missing ] || fail "$f: state: $API_BODY"
    json_get state_reason | grep -q "deleted while the volume was open" ||
        fail "$f: state_reason: $API_BODY"
done
grep -q "volume 'raw' is missing: its image file was deleted" "$VD_LOG" ||
    fail "the loss was not logged"

# Plain writes, no fsync: found by the periodic look within about 1 s.
api POST /volumes '{"name":"quiet","size":16777216,"format":"raw"}'
expect_status 201
api GET /volumes/quiet
img=$(json_get image)
[ -f "$img" ] || fail "quiet: no image file '$img'"
python3 - "$VD_MNT/quiet" "$img" <<'PY' || fail "periodic check: see above"
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"q" * 4096, 0)
os.fsync(fd)
os.unlink(sys.argv[2])
t0 = time.monotonic()
while True:
    try:
        os.pwrite(fd, b"r" * 4096, 4096)
    except OSError as e:
        assert e.errno == 5, e
        break
    if time.monotonic() - t0 > 20:
        sys.exit("writes to a deleted image still succeed after 20 s")
    time.sleep(0.05)
print("write failed after %.2f s" % (time.monotonic() - t0))
PY

qio "$VD_MNT/keep" 'write -P 0x44 0 64k' flush 'read -P 0x44 0 64k' \
    >"$T/k.out" 2>&1 || fail "an intact volume was affected: $(cat "$T/k.out")"
api GET /volumes/keep
[ "$(json_get state)" = ready ] || fail "keep: $API_BODY"

stop_daemon
start_daemon
api GET /volumes/qcow2
[ "$(json_get state)" = missing ] || fail "after restart: $API_BODY"
qio "$VD_MNT/keep" 'read -P 0x44 0 64k' >"$T/k.out" 2>&1 ||
    fail "keep after restart: $(cat "$T/k.out")"
stop_daemon
echo "fuse_image_unlinked: ok"
