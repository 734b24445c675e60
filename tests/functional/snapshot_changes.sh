#!/bin/bash
# snapshot_changes.sh — GET /volumes/{v}/snapshots/{s}/changes[?since=]
# lists the extents written between two snapshots, rounded to clusters and
# nothing more; without since, everything the snapshot holds; unknown
# snapshots are 404 and volumes without snapshots 422.
. "$(dirname "$0")/../functions.sh"
start_daemon

api POST /volumes '{"name":"v","size":"128M","format":"qcow2"}'
expect_status 201
IMG=$(json_get image)
F=$VD_MNT/v
qio "$F" 'write -P 0x11 0 1M' 'write -P 0x12 50M 64k' >/dev/null || fail "writes 1"
api POST /volumes/v/snapshots '{"name":"s1"}'
expect_status 201
# Between s1 and s2: offset length, as qemu-io writes them.
W="524288 4096
20971520 131072
73404416 69632
100663296 512"
while read -r off len; do
    qio "$F" "write -P 0x22 $off $len" >/dev/null || fail "write $off $len"
done <<<"$W"
api POST /volumes/v/snapshots '{"name":"s2"}'
expect_status 201
qio "$F" 'write -P 0x33 90M 1M' >/dev/null || fail "write after s2"

# check_extents WANT-RANGES MAX-BYTES — the last answer covers every range
# (one "off len" a line) and lists at most MAX-BYTES in all.
check_extents() {
    python3 - "$T/body" "$1" "$2" <<'PY' || fail "changes: $API_BODY"
import json, sys
body = json.load(open(sys.argv[1]))
ext = [(e["offset"], e["length"]) for e in body["extents"]]
want = [tuple(map(int, l.split())) for l in sys.argv[2].splitlines() if l.strip()]
assert body["bytes"] == sum(l for _, l in ext), body
assert ext == sorted(ext), ext
for (o1, l1), (o2, _) in zip(ext, ext[1:]):
    assert o1 + l1 < o2, ("extents overlap or touch unmerged", ext)
for o, l in ext:
    assert o % 65536 == 0 and l % 65536 == 0, ("not cluster-aligned", ext)
for o, l in want:
    assert any(eo <= o and o + l <= eo + el for eo, el in ext), ("missing", o, l, ext)
assert body["bytes"] <= int(sys.argv[3]), ("too much", body["bytes"], ext)
print("  %d extents, %d bytes" % (len(ext), body["bytes"]))
PY
}

# s1 -> s2: the four writes, each rounded out to 64 KiB clusters
# (64k + 128k + 128k + 64k): nothing written before s1 or after s2.
api GET '/volumes/v/snapshots/s2/changes?since=s1'
expect_status 200
[ "$(json_get since)" = s1 ] && [ "$(json_get snapshot)" = s2 ] || fail "body: $API_BODY"
check_extents "$W" $((384 << 10))
# Without since: everything s2 holds.
api GET /volumes/v/snapshots/s2/changes
expect_status 200
check_extents "0 1048576
52428800 65536
$W" $(((1024 + 64 + 128 + 128 + 64) << 10))
# s1 since s2 (backwards) lists the same clusters; s1 since s1 nothing.
api GET '/volumes/v/snapshots/s1/changes?since=s2'
expect_status 200
check_extents "$W" $((384 << 10))
api GET '/volumes/v/snapshots/s1/changes?since=s1'
expect_status 200
[ "$(json_get bytes)" = 0 ] || fail "a snapshot differs from itself: $API_BODY"

# Errors.
api GET /volumes/v/snapshots/nosuch/changes
expect_status 404
api GET '/volumes/v/snapshots/s2/changes?since=nosuch'
expect_status 404
api GET /volumes/nosuch/snapshots/s2/changes
expect_status 404
api POST /volumes '{"name":"r","size":"1M","format":"raw"}'
expect_status 201
api GET /volumes/r/snapshots/s1/changes
expect_status 422

stop_daemon
qemu-img check -q "$IMG" || fail "qemu-img check"
echo "snapshot_changes: ok"
