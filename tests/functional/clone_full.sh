#!/bin/bash
# clone_full.sh — a full clone copies a snapshot into a new, independent,
# sparse volume through a job: 202 with Location, progress until it
# succeeds, contents equal to the snapshot while the source has moved on;
# bad requests are refused up front and leave nothing behind; a snapshot
# cannot be deleted while a view of it is open.
. "$(dirname "$0")/../functions.sh"
start_daemon

api POST /volumes '{"name":"v1","size":"64M","format":"qcow2"}'
expect_status 201
V1_IMG=$(json_get image)
qio "$VD_MNT/v1" 'write -P 0x11 0 2M' 'write -P 0x12 40M 1M' >/dev/null ||
    fail "writes before s1"
api POST /volumes/v1/snapshots '{"name":"s1"}'
expect_status 201
qio "$VD_MNT/v1" 'write -P 0x21 0 1M' 'write -P 0x22 60M 1M' >/dev/null ||
    fail "writes after s1"
n_images() { find "$VD_DATA/images" -type f | wc -l; }
IMAGES=$(n_images)

api POST /volumes '{"name":"c1","source":{"volume":"v1","snapshot":"s1"}}'
expect_status 202
LOC=$(tr -d '\r' <"$T/headers" | sed -n 's/^[Ll]ocation: //p')
echo "$LOC" | grep -Eq '^/jobs/[0-9]+$' || fail "Location: '$LOC'"
[ "$(json_get kind)" = clone ] || fail "job body: $API_BODY"
for ((i = 0; i < 300; i++)); do
    api GET "$LOC"
    expect_status 200
    state=$(json_get state)
    [ "$state" = running ] || break
    sleep 0.1
done
echo "job: $API_BODY"
[ "$state" = succeeded ] || fail "clone job ended '$state': $API_BODY"
python3 - "$T/body" <<'PY' || fail "job progress: $API_BODY"
import json, sys
j = json.load(open(sys.argv[1]))
p = j["progress"]
assert p["total"] == 64 << 20 and p["done"] == p["total"], p
assert j["volume"] == "c1" and j["source"] == "v1/s1", j
assert j["finished_at"] is not None, j
PY

api GET /volumes/c1
expect_status 200
C1_IMG=$(json_get image)
[ "$(json_get size)" = $((64 << 20)) ] || fail "clone size: $API_BODY"
alloc=$(json_get allocated)
echo "clone allocated $alloc bytes for 3 MiB of data"
[ "$alloc" -le $(((3 << 20) + (1 << 20))) ] || fail "clone is not sparse: $alloc bytes"
[ "$(json_get base)" = None ] || [ -z "$(json_get base)" ] || fail "clone has a base: $API_BODY"

# The clone reads as the snapshot; the source reads as it is now.
cmp "$VD_MNT/c1" "$VD_MNT/.snapshots/v1/s1" || fail "clone differs from snapshot s1"
qio_ro "$VD_MNT/c1" 'read -P 0x11 0 2M' 'read -P 0x12 40M 1M' 'read -P 0 60M 1M' \
    >"$T/qio" || fail "reading the clone"
grep -q "Pattern verification failed" "$T/qio" && fail "clone: $(cat "$T/qio")"
qio_ro "$VD_MNT/v1" 'read -P 0x21 0 1M' 'read -P 0x22 60M 1M' >"$T/qio" ||
    fail "reading the source"
grep -q "Pattern verification failed" "$T/qio" && fail "source: $(cat "$T/qio")"
qemu-img convert -U -O raw -l snapshot.name=s1 "$V1_IMG" "$T/s1.raw" ||
    fail "qemu-img convert of s1"

# Refused up front, nothing created: unknown source volume or snapshot, a
# source without snapshots, a taken name, a bad name, extra members.
api POST /volumes '{"name":"r","size":"1M","format":"raw"}'
expect_status 201
IMAGES=$((IMAGES + 2))   # c1 and r
for body in \
    '{"name":"c2","source":{"volume":"nosuch","snapshot":"s1"}}' \
    '{"name":"c2","source":{"volume":"v1","snapshot":"nosuch"}}' \
    '{"name":"c2","source":{"volume":"r","snapshot":"s1"}}' \
    '{"name":"c1","source":{"volume":"v1","snapshot":"s1"}}' \
    '{"name":"Bad!","source":{"volume":"v1","snapshot":"s1"}}' \
    '{"name":"c2","source":{"volume":"v1"}}' \
    '{"name":"c2","size":"1G","source":{"volume":"v1","snapshot":"s1"}}'; do
    api POST /volumes "$body"
    case "$API_STATUS" in
    4??) ;;
    *) fail "POST $body: HTTP $API_STATUS, want 4xx: $API_BODY" ;;
    esac
    echo "refused $API_STATUS: $body"
done
api GET /volumes/c2
expect_status 404
[ "$(n_images)" = "$IMAGES" ] || fail "refused clones left image files behind"

# A snapshot that is open through its view cannot be deleted.
exec 3<"$VD_MNT/.snapshots/v1/s1"
api DELETE /volumes/v1/snapshots/s1
expect_status 409
echo "$API_BODY" | grep -q "open" || fail "409 does not say why: $API_BODY"
exec 3<&-
api DELETE /volumes/v1/snapshots/s1
expect_status 204

# The clone is independent: it outlives its source snapshot and writes
# only to itself.
qio "$VD_MNT/c1" 'write -P 0x44 8M 64k' >/dev/null || fail "writing the clone"
qio_ro "$VD_MNT/v1" 'read -P 0 8M 64k' >"$T/qio" || fail "reading the source"
grep -q "Pattern verification failed" "$T/qio" && fail "clone's write reached the source"
qio "$VD_MNT/c1" 'write -P 0 8M 64k' >/dev/null || fail "writing the clone back"

# A snapshot of a linked clone: its view and its full clone read through
# to the base (opened as a backing file beside the clone's own open), and
# the full clone needs no base.
api POST /volumes '{"name":"tmpl","size":"16M","format":"qcow2"}'
expect_status 201
qio "$VD_MNT/tmpl" 'write -P 0x0b 0 16M' >/dev/null || fail "writing tmpl"
api POST /volumes '{"name":"lc","base":"tmpl"}'
expect_status 201
qio "$VD_MNT/lc" 'write -P 0x0c 4M 64k' >/dev/null || fail "writing lc"
api POST /volumes/lc/snapshots '{"name":"s"}'
expect_status 201
qio "$VD_MNT/lc" 'write -P 0x0d 4M 64k' >/dev/null || fail "writing lc again"
qio_ro "$VD_MNT/.snapshots/lc/s" 'read -P 0x0b 0 4M' 'read -P 0x0c 4M 64k' \
    'read -P 0x0b 4160k 11968k' >"$T/qio" || fail "view of a linked clone's snapshot"
grep -q "Pattern verification failed" "$T/qio" && fail "view of lc/s: $(cat "$T/qio")"
api POST /volumes '{"name":"lcfull","source":{"volume":"lc","snapshot":"s"}}'
expect_status 202
LOC=$(tr -d '\r' <"$T/headers" | sed -n 's/^[Ll]ocation: //p')
for ((i = 0; i < 300; i++)); do
    api GET "$LOC"
    state=$(json_get state)
    [ "$state" = running ] || break
    sleep 0.1
done
[ "$state" = succeeded ] || fail "clone of a linked clone's snapshot: $API_BODY"
cmp "$VD_MNT/lcfull" "$VD_MNT/.snapshots/lc/s" || fail "lcfull differs from lc/s"
api GET /volumes/lcfull
LCFULL_IMG=$(json_get image)
[ "$(json_get base)" = None ] || [ -z "$(json_get base)" ] || fail "lcfull has a base"
IMAGES=$((IMAGES + 3))

# A source whose snapshot turns out unreadable: made below by pointing
# the snapshot's own L2 entry (the volume's was copied on write) far past
# the end of the file while the daemon is down.
api POST /volumes '{"name":"bad","size":"16M","format":"qcow2"}'
expect_status 201
BAD_IMG=$(json_get image)
qio "$VD_MNT/bad" 'write -P 0x55 0 64k' >/dev/null || fail "writing bad"
api POST /volumes/bad/snapshots '{"name":"s"}'
expect_status 201
qio "$VD_MNT/bad" 'write -P 0x66 0 64k' >/dev/null || fail "writing bad again"
IMAGES=$((IMAGES + 1))

stop_daemon
qemu-img check -q "$C1_IMG" || fail "qemu-img check: clone"
qemu-img check -q "$V1_IMG" || fail "qemu-img check: source"
qemu-img check -q "$LCFULL_IMG" || fail "qemu-img check: lcfull"
qemu-img info "$LCFULL_IMG" | grep -q "backing file" && fail "lcfull has a backing file"
qemu-img info "$C1_IMG" | grep -q "backing file" && fail "full clone has a backing file"
qemu-img compare -q -f raw -F qcow2 "$T/s1.raw" "$C1_IMG" ||
    fail "clone image differs from qemu-img's snapshot s1"

python3 - "$BAD_IMG" <<'PY' || fail "patching the bad snapshot"
import struct, sys
M = 0x00fffffffffffe00
with open(sys.argv[1], "r+b") as f:
    h = f.read(72)
    nb, snaps = struct.unpack(">IQ", h[60:72])
    assert nb == 1
    f.seek(snaps)
    l1 = struct.unpack(">Q", f.read(8))[0]
    f.seek(l1)
    l2 = struct.unpack(">Q", f.read(8))[0] & M
    f.seek(l2)
    e = struct.unpack(">Q", f.read(8))[0]
    assert e & M, hex(e)
    f.seek(l2)
    f.write(struct.pack(">Q", (e & ~M) | (1 << 50)))
PY
start_daemon
qio_ro "$VD_MNT/bad" 'read -P 0x66 0 64k' >/dev/null || fail "bad's active data"
api POST /volumes '{"name":"c3","source":{"volume":"bad","snapshot":"s"}}'
expect_status 202
LOC=$(tr -d '\r' <"$T/headers" | sed -n 's/^[Ll]ocation: //p')
for ((i = 0; i < 300; i++)); do
    api GET "$LOC"
    state=$(json_get state)
    [ "$state" = running ] || break
    sleep 0.1
done
echo "failing job: $API_BODY"
[ "$state" = failed ] || fail "clone of an unreadable snapshot: $API_BODY"
json_get error | grep -q . || fail "failed job without an error: $API_BODY"
api GET /volumes/c3
expect_status 404
[ "$(n_images)" = "$IMAGES" ] || fail "the failed clone left its image behind"
api POST /volumes '{"name":"c3","size":"1M"}'
expect_status 201   # the name is free again
stop_daemon
echo "clone_full: ok"
