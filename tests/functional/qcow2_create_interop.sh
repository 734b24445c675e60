# Images we create and write are clean and correct for QEMU: every cluster
# size from 512 to 2 MiB, every preallocation mode, whole and partial writes.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

randfile "$T/src" 3M
for cs in 512 4096 65536 2097152; do
    img=$T/c$cs.qcow2
    "$VDIMG" create -c $cs qcow2 "$img" 8M || fail "create cluster $cs"
    qcheck "$img"
    qemu-img info "$img" | grep -q "cluster_size: $cs" || fail "cluster size $cs not in header"
    qemu-img info "$img" | grep -q "compat: 1.1" || fail "not a v3 image"
    cp "$T/src" "$T/exp"; truncate -s 8M "$T/exp"
    "$VDIMG" copy-in "$img" "$T/src" || fail "copy-in $cs"
    # partial writes straddling clusters, inside and after the data
    "$VDIMG" write "$img" 1000 3000 0x5a || fail "partial write"
    "$VDIMG" write "$img" 5000000 70000 0xc3 || fail "write into unallocated"
    python3 - "$T/exp" <<'PY'
import sys
f = open(sys.argv[1], 'r+b')
f.seek(1000); f.write(b'\x5a' * 3000)
f.seek(5000000); f.write(b'\xc3' * 70000)
PY
    qcheck "$img"
    qcompare "$T/exp" "$img"
    "$VDIMG" verify "$img" 5000000 70000 0xc3 || fail "our read back, cluster $cs"
    # QEMU writes into our image; we read its data back.
    qemu-io -f qcow2 -c 'write -P 0x77 6000000 100000' "$img" >/dev/null
    "$VDIMG" verify "$img" 6000000 100000 0x77 || fail "read QEMU's write, cluster $cs"
    "$VDIMG" check "$img" >/dev/null || fail "our check disagrees, cluster $cs"
done

# 512-byte clusters with 16-bit refcounts: one refcount table cluster
# covers 8 MiB of file, so 12 MiB of data must grow and move the table.
img=$T/grow.qcow2
"$VDIMG" create -c 512 qcow2 "$img" 16M || fail "create grow"
rt_before=$(read_u64 "$img" 48)
randfile "$T/src12" 12M
"$VDIMG" copy-in "$img" "$T/src12" || fail "copy-in grow"
[ "$(read_u64 "$img" 48)" != "$rt_before" ] || fail "refcount table did not move"
qcheck "$img"
cp "$T/src12" "$T/exp12"; truncate -s 16M "$T/exp12"
qcompare "$T/exp12" "$img"

for p in metadata falloc full; do
    img=$T/p$p.qcow2
    "$VDIMG" create -c 65536 -p $p qcow2 "$img" 20M || fail "create prealloc $p"
    qcheck "$img"
    "$VDIMG" map "$img" | grep -q " allocated" || fail "prealloc $p mapped nothing"
    "$VDIMG" verify "$img" 0 20M 0 || fail "prealloc $p does not read zero"
    "$VDIMG" write "$img" 4000 10000 0x31 || fail "write prealloc $p"
    qcheck "$img"
    qio_verify "$img" 'read -P 0 0 4000' 'read -P 0x31 4000 10000' 'read -P 0 14000 1M'
done
size=$(stat -c %s "$T/pfull.qcow2")
[ "$size" -ge $((20 << 20)) ] || fail "full preallocation left a ${size}-byte file"
exit 0
