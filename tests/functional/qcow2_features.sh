# Feature bits and header extensions: dirty (lazy refcounts) images are
# repaired before the first write, corrupt images are read-only, unknown
# compatible bits are ignored, unknown autoclear bits cleared, unknown
# extensions kept, unknown or unsupported incompatible features refused
# with a message naming them.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"
cd "$T" || fail cd

# --- dirty: QEMU killed while using lazy refcounts ---
qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4k d.qcow2 32M
(qemu-io -f qcow2 -c 'write -P 0x61 0 3M' -c 'write -P 0x62 8M 1M' -c 'sigraise 9' \
    d.qcow2 >/dev/null 2>&1; true) 2>/dev/null
dirty=$(( $(read_u64 d.qcow2 72) & 1 ))
[ "$dirty" = 1 ] || fail "precondition: image not dirty"
qemu-img check d.qcow2 >/dev/null 2>&1 && fail "precondition: dirty image checks clean"
"$VDIMG" verify d.qcow2 0 3M 0x61 || fail "read-only read of dirty image"
[ $(( $(read_u64 d.qcow2 72) & 1 )) = 1 ] || fail "read-only open touched the dirty bit"
"$VDIMG" write d.qcow2 20M 64k 0x63 || fail "write to dirty image"
[ $(( $(read_u64 d.qcow2 72) & 1 )) = 0 ] || fail "dirty bit not cleared"
qcheck d.qcow2
qio_verify d.qcow2 'read -P 0x61 0 3M' 'read -P 0x62 8M 1M' 'read -P 0x63 20M 64k' 'read -P 0 3M 5M'

# --- corrupt bit: read-only, never written ---
qemu-img create -q -f qcow2 c.qcow2 8M
qemu-io -f qcow2 -c 'write -P 0x44 0 1M' c.qcow2 >/dev/null
patch_u64 c.qcow2 72 2
sum=$(md5sum <c.qcow2)
"$VDIMG" verify c.qcow2 0 1M 0x44 || fail "read of corrupt-marked image"
expect_fail_msg "Read-only|read-only" "$VDIMG" write c.qcow2 0 512 0x1
[ "$(md5sum <c.qcow2)" = "$sum" ] || fail "corrupt image was modified"

# --- unknown compatible and autoclear bits, unknown extension ---
qemu-img create -q -f qcow2 u.qcow2 8M
hide_ext u.qcow2 0x6803f857 0x7a7a7a7a      # feature table -> unknown ext
patch_u64 u.qcow2 80 $(( (1 << 40) | 1 ))   # unknown compat bit + lazy
patch_u64 u.qcow2 88 $(( (1 << 33) | 1 ))   # unknown autoclear + bitmaps
dd if=u.qcow2 bs=1 skip=112 count=400 status=none >"$T/ext.before"
"$VDIMG" verify u.qcow2 0 8M 0 || fail "read with unknown compat bit"
[ "$(read_u64 u.qcow2 88)" != 0 ] || fail "read-only open cleared autoclear"
"$VDIMG" write u.qcow2 0 64k 0x9 || fail "write with unknown compat bit"
[ "$(read_u64 u.qcow2 88)" = 0 ] || fail "autoclear bits not cleared"
[ "$(read_u64 u.qcow2 80)" = $(( (1 << 40) | 1 )) ] || fail "compatible bits changed"
dd if=u.qcow2 bs=1 skip=112 count=400 status=none >"$T/ext.after"
cmp -s "$T/ext.before" "$T/ext.after" || fail "header extensions not kept"
qcheck u.qcow2
qio_verify u.qcow2 'read -P 9 0 64k'

# --- persistent bitmaps (autoclear bit 0): we keep none, so our first
# write must mark them stale; their clusters may then leak, never corrupt.
qemu-img create -q -f qcow2 b.qcow2 16M
qemu-io -f qcow2 -c 'write -P 1 0 1M' b.qcow2 >/dev/null
qemu-img bitmap --add b.qcow2 bm0 || fail "qemu-img bitmap"
[ "$(read_u64 b.qcow2 88)" = 1 ] || fail "precondition: bitmaps autoclear bit"
"$VDIMG" write b.qcow2 8M 64k 3 || fail "write to image with bitmaps"
[ "$(read_u64 b.qcow2 88)" = 0 ] || fail "bitmaps bit not cleared"
rc=0; qemu-img check b.qcow2 >check.out 2>&1 || rc=$?
[ $rc = 0 ] || [ $rc = 3 ] || fail "image with stale bitmaps is corrupt: $(head check.out)"
qio_verify b.qcow2 'read -P 1 0 1M' 'read -P 3 8M 64k'

# --- refused features ---
qemu-img create -q -f qcow2 i.qcow2 8M
patch_u64 i.qcow2 72 $(( 1 << 7 ))
expect_fail_msg "unknown incompatible features 0x80" "$VDIMG" verify i.qcow2 0 1 0
qemu-img create -q -f qcow2 -o data_file="$T/data.raw" x.qcow2 8M
expect_fail_msg "external data file" "$VDIMG" verify x.qcow2 0 1 0
qemu-img create -q -f qcow2 -o extended_l2=on e.qcow2 8M
expect_fail_msg "extended L2" "$VDIMG" verify e.qcow2 0 1 0
qemu-img create -q -f qcow2 v4.qcow2 8M
patch_u32 v4.qcow2 4 4
expect_fail_msg "version 4" "$VDIMG" verify v4.qcow2 0 1 0

# --- locks: QEMU cannot write an image we hold open for writing ---
qemu-img create -q -f qcow2 l.qcow2 8M
python3 - "$VDIMG" l.qcow2 <<'PY' || fail "lock test"
import subprocess, sys, time
vd, img = sys.argv[1], sys.argv[2]
# vd-img copy-in from a FIFO keeps the image open for writing while we probe
import os
os.mkfifo('fifo')
p = subprocess.Popen([vd, 'copy-in', img, 'fifo'])
w = open('fifo', 'wb')
time.sleep(0.5)
r = subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write 0 512', img],
                   capture_output=True, text=True)
w.close(); p.wait()
sys.exit(0 if r.returncode != 0 and 'lock' in (r.stdout + r.stderr) else 1)
PY
exit 0
