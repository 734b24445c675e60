#!/bin/bash
# snapshots.sh — snapshots over REST are qcow2 internal snapshots: take,
# list, show, revert (refused while open unless forced), delete; qemu-img
# reads ours and the API shows qemu-img's; bad requests change nothing.
. "$(dirname "$0")/../functions.sh"
start_daemon

api POST /volumes '{"name":"s","size":"64M","format":"qcow2"}'
expect_status 201
IMG=$(json_get image)
qio "$VD_MNT/s" 'write -P 0x11 0 1M' >/dev/null || fail "write 1"

api POST /volumes/s/snapshots '{"name":"one"}'
expect_status 201
grep -qi '^location: /volumes/s/snapshots/one' "$T/headers" || fail "no Location"
[ "$(json_get name)" = one ] || fail "snapshot body: $API_BODY"
json_get io_paused_us | grep -Eq '^[0-9]+$' || fail "no io_paused_us: $API_BODY"
qio "$VD_MNT/s" 'write -P 0x22 0 1M' 'write -P 0x23 8M 64k' >/dev/null || fail "write 2"
api POST /volumes/s/snapshots '{"name":"two"}'
expect_status 201
qio "$VD_MNT/s" 'write -P 0x33 0 512k' >/dev/null || fail "write 3"

api GET /volumes/s/snapshots
expect_status 200
python3 - "$T/body" <<'PY' || fail "snapshot list: $API_BODY"
import json, sys
names = [s["name"] for s in json.load(open(sys.argv[1]))["snapshots"]]
assert names == ["one", "two"], names
PY
api GET /volumes/s/snapshots/two
expect_status 200
[ "$(json_get size)" = 67108864 ] || fail "snapshot size: $API_BODY"

# Bad requests: each a 4xx, nothing changes.
api POST /volumes/s/snapshots '{"name":"one"}'
expect_status 409
api POST /volumes/s/snapshots '{"name":"Bad/Name"}'
expect_status 400
api POST /volumes/s/snapshots '{"name":"x","extra":1}'
expect_status 400
api POST /volumes/s/snapshots '{"nam'
expect_status 400
api POST /volumes/nosuch/snapshots '{"name":"x"}'
expect_status 404
api GET /volumes/s/snapshots/nosuch
expect_status 404
api DELETE /volumes/s/snapshots/nosuch
expect_status 404
api POST /volumes/s/snapshots/nosuch/revert '{}'
expect_status 404
api POST /volumes/s/snapshots/one/revert '{"force":"yes"}'
expect_status 400
api POST /volumes '{"name":"r","size":"1M","format":"raw"}'
expect_status 201
api POST /volumes/r/snapshots '{"name":"x"}'
expect_status 422
echo "$API_BODY" | grep -q "no snapshots" || fail "raw snapshot problem: $API_BODY"
api GET /volumes/s/snapshots
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["snapshots"]))' "$T/body")" = 2 ] ||
    fail "bad requests changed the snapshot list"

# Revert: refused while open, forced works, plain works once closed.
exec 3<"$VD_MNT/s"
api POST /volumes/s/snapshots/one/revert '{}'
expect_status 409
exec 3<&-
sleep 0.2
api POST /volumes/s/snapshots/one/revert '{}'
expect_status 200
qio "$VD_MNT/s" 'read -P 0x11 0 1M' 'read -P 0 8M 64k' >/dev/null ||
    fail "revert to one did not restore its data"
api POST /volumes/s/snapshots/two/revert '{"force":true}'
expect_status 200
qio "$VD_MNT/s" 'read -P 0x22 0 1M' 'read -P 0x23 8M 64k' >/dev/null ||
    fail "revert to two did not restore its data"
qio "$VD_MNT/s" 'write -P 0x44 0 4k' >/dev/null || fail "write after revert"

# QEMU's tools read what we wrote, and we read what they write.
stop_daemon
qemu-img check -q "$IMG" || fail "qemu-img check after snapshots"
qemu-img snapshot -l "$IMG" >"$T/l" || fail "qemu-img snapshot -l"
grep -qw one "$T/l" && grep -qw two "$T/l" || fail "qemu-img does not list ours: $(cat "$T/l")"
qemu-io -f qcow2 -r -c 'read -P 0x44 0 4k' -c 'read -P 0x22 4k 1020k' "$IMG" >/dev/null ||
    fail "qemu-io reads the active image wrongly"
qemu-img snapshot -c three "$IMG" || fail "qemu-img snapshot -c"
qemu-img snapshot -d one "$IMG" || fail "qemu-img snapshot -d of ours"
qemu-img check -q "$IMG" || fail "check after qemu-img snapshot changes"
start_daemon
api GET /volumes/s/snapshots
python3 - "$T/body" <<'PY' || fail "API after qemu-img changes: $API_BODY"
import json, sys
names = [s["name"] for s in json.load(open(sys.argv[1]))["snapshots"]]
assert names == ["two", "three"], names
PY
qio "$VD_MNT/s" 'write -P 0x55 0 64k' >/dev/null || fail "write 4"
api POST /volumes/s/snapshots/three/revert '{}'
expect_status 200
qio "$VD_MNT/s" 'read -P 0x44 0 4k' >/dev/null || fail "revert to qemu-img's snapshot"
api DELETE /volumes/s/snapshots/two
expect_status 204
api DELETE /volumes/s/snapshots/two
expect_status 404
stop_daemon
qemu-img check -q "$IMG" || fail "check after API delete"
qemu-img snapshot -l "$IMG" >"$T/l"
grep -qw two "$T/l" && fail "deleted snapshot still in the image"
qemu-img snapshot -a three "$IMG" || fail "qemu-img snapshot -a of the image"
qemu-img check -q "$IMG" || fail "check after qemu-img apply"
echo "snapshots: ok"
