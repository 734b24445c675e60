# A writer killed after a refcount block reached the disk but before the
# clusters it counts were written leaves refcounts past the end of the
# file. Such clusters are leaked, not free: a later writer must not hand
# them out again (that gave refcount 2 to a fresh cluster mapped with the
# COPIED flag, which qemu-img check reports as corruption).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"
cd "$T" || fail cd

for cs in 4096 65536; do
    img=e$cs.qcow2
    "$VDIMG" create -c $cs qcow2 $img 24M || fail create
    "$VDIMG" write $img 0 64k 0x11 || fail "first write"
    qcheck $img
    # Simulate the crash: the file ends at its last allocated cluster (a
    # writer that grows the file ahead may have left more: cut it), and
    # the block counts the 3 clusters past EOF.
    python3 - $img <<'PY' || fail "crafting $img"
import os, struct, sys
path = sys.argv[1]
f = open(path, 'r+b')
h = f.read(112)
cb = struct.unpack('>I', h[20:24])[0]
rt_off = struct.unpack('>Q', h[48:56])[0]
order = struct.unpack('>I', h[96:100])[0]
assert order == 4, order
cs = 1 << cb
per_block = cs * 8 >> order
last = 0
for i in range(struct.unpack('>I', h[56:60])[0] * cs // 8):
    f.seek(rt_off + 8 * i)
    blk = struct.unpack('>Q', f.read(8))[0]
    if blk == 0:
        continue
    f.seek(blk)
    rc = struct.unpack('>%dH' % per_block, f.read(cs))
    for j in range(per_block):
        if rc[j]:
            last = i * per_block + j
eof = (last + 1) * cs
assert eof <= os.path.getsize(path)
f.truncate(eof)
for c in range(eof // cs, eof // cs + 3):
    f.seek(rt_off + 8 * (c // per_block))
    blk = struct.unpack('>Q', f.read(8))[0]
    assert blk != 0, "no refcount block for the clusters past EOF"
    f.seek(blk + 2 * (c % per_block))
    f.write(struct.pack('>H', 1))
PY
    rc=0
    qemu-img check $img >check.out 2>&1 || rc=$?
    [ $rc = 0 ] || [ $rc = 3 ] || fail "precondition: $(head -5 check.out)"
    # Fresh L2 tables and data clusters, allocated one by one and in runs.
    "$VDIMG" write $img 8M 4k 0x22 || fail "write after crash"
    "$VDIMG" write $img 16M 256k 0x33 || fail "write after crash"
    "$VDIMG" write $img 64k 4k 0x44 || fail "write after crash"
    rc=0
    qemu-img check $img >check.out 2>&1 || rc=$?
    [ $rc = 0 ] || [ $rc = 3 ] ||
        fail "corrupt after writing past the stale refcounts ($cs): $(grep -v '^Leaked' check.out | head -5)"
    qemu-img check -q -r leaks $img >/dev/null 2>&1
    qcheck $img
    qio_verify $img 'read -P 0x11 0 64k' 'read -P 0x44 64k 4k' \
        'read -P 0x22 8M 4k' 'read -P 0x33 16M 256k' 'read -P 0 68k 4M'
done
exit 0
