#!/bin/bash
# qcow2_snapview.sh — the qcow2 driver opened as a snapshot's view reads
# what qemu-img reads from that snapshot (also over a backing file, with
# compressed clusters and across a resize), refuses writes and unknown
# names; snapshot_changes lists exactly the clusters that differ.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"
cd "$T" || exit 1

# A base with data, an overlay on it, snapshots taken by qemu-img.
qemu-img create -q -f qcow2 base.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x0b 0 4M' base.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 a.qcow2 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x12 10M 64k' \
    -c 'write -c -P 0x13 30M 64k' a.qcow2 >/dev/null || fail "writes 1"
qemu-img snapshot -c s1 a.qcow2
qemu-io -f qcow2 -c 'write -P 0x21 512k 4k' -c 'write -P 0x22 20M 128k' \
    -c 'write -z 10M 64k' -c 'write -P 0x23 3M 8k' a.qcow2 >/dev/null ||
    fail "writes 2"
qemu-img snapshot -c s2 a.qcow2
qemu-img resize -q a.qcow2 80M
qemu-io -f qcow2 -c 'write -P 0x31 0 4k' -c 'write -P 0x32 70M 64k' \
    a.qcow2 >/dev/null || fail "writes 3"
qemu-img snapshot -c s3 a.qcow2

for s in s1 s2 s3; do
    "$VDIMG" -A "$T" -s $s copy-out a.qcow2 "v-$s.raw" || fail "view $s"
    qemu-img convert -O raw -l snapshot.name=$s a.qcow2 "q-$s.raw"
    # qemu-img convert -l reads an older snapshot at today's size (the
    # tail reads as zeroes); the view has the size the snapshot was taken at.
    cmp -n "$(stat -c %s "v-$s.raw")" "v-$s.raw" "q-$s.raw" ||
        fail "view of $s differs from qemu-img's"
done
[ "$(stat -c %s v-s2.raw)" = $((64 << 20)) ] || fail "view of s2 is not 64M"
[ "$(stat -c %s v-s3.raw)" = $((80 << 20)) ] || fail "view of s3 is not 80M"

# Read-only, and a clear error for a name the image lacks.
if "$VDIMG" -A "$T" -s s1 write a.qcow2 0 4k 1 2>/dev/null; then
    fail "a snapshot view accepted a write"
fi
"$VDIMG" -A "$T" -s nosuch info a.qcow2 2>"$T/err" && fail "unknown snapshot opened"
grep -q "no snapshot named 'nosuch'" "$T/err" || fail "message: $(cat "$T/err")"

# Changes s1 -> s2: the 4k at 512k, 3M (8k over the backing file), the
# zeroed 10M cluster and 128k at 20M; cluster granularity (64k).
"$VDIMG" -A "$T" changes a.qcow2 s2 s1 >ch12 || fail "changes s2 since s1"
printf '524288 65536\n3145728 65536\n10485760 65536\n20971520 131072\n' >want12
diff want12 ch12 || fail "changes s2 since s1 (above: want, got)"
# Without since: every cluster s1 allocates itself (not the base's).
"$VDIMG" -A "$T" changes a.qcow2 s1 >ch1 || fail "changes s1"
printf '0 1048576\n10485760 65536\n31457280 65536\n' >want1
diff want1 ch1 || fail "changes s1 (above: want, got)"
# Across the resize: the new cluster at 0, and the one at 70M.
"$VDIMG" -A "$T" changes a.qcow2 s3 s2 >ch23 || fail "changes s3 since s2"
printf '0 65536\n73400320 65536\n' >want23
diff want23 ch23 || fail "changes s3 since s2 (above: want, got)"
"$VDIMG" -A "$T" changes a.qcow2 s2 s2 >ch22 || fail "changes s2 since s2"
[ ! -s ch22 ] || fail "a snapshot differs from itself: $(cat ch22)"
"$VDIMG" -A "$T" changes a.qcow2 nosuch s1 2>/dev/null && fail "changes of unknown"

qcheck a.qcow2
qcheck base.qcow2
echo "qcow2_snapview: ok"
