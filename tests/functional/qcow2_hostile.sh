# Hand-made corrupt images: every bad offset, size or count either fails
# the open with a message naming the problem, or fails reads with EIO;
# nothing crashes and a bad image is never written to, except for the
# header's corrupt bit that a writable open sets when it finds the damage.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"
cd "$T" || fail cd

qemu-img create -q -f qcow2 -o cluster_size=4k base.qcow2 1M
qemu-io -f qcow2 -c 'write -P 0x11 0 64k' base.qcow2 >/dev/null
qemu-img convert -c -O qcow2 -o cluster_size=4k base.qcow2 comp.qcow2

# mk NAME SRC PYTHON-STATEMENTS — copy SRC to NAME.qcow2 and patch it;
# helpers: h(off,fmt,val) writes a header field, w(off,bytes), and the
# decoded header fields l1, rt, cs.
mk() {
    local name=$1 src=$2
    cp "$src" "$name.qcow2"
    python3 - "$name.qcow2" "$3" <<'PY'
import struct, sys
path, code = sys.argv[1], sys.argv[2]
f = open(path, 'r+b')
hdr = f.read(104)
cs = 1 << struct.unpack('>I', hdr[20:24])[0]
l1 = struct.unpack('>Q', hdr[40:48])[0]
rt = struct.unpack('>Q', hdr[48:56])[0]
def h(off, fmt, val):
    f.seek(off); f.write(struct.pack('>' + fmt, val))
def w(off, data):
    f.seek(off); f.write(data)
def r64(off):
    f.seek(off); return struct.unpack('>Q', f.read(8))[0]
exec(code)
PY
}

# open_fails NAME REGEX — open must fail and name the problem.
open_fails() {
    expect_fail_msg "$2" "$VDIMG" -f qcow2 verify "$1.qcow2" 0 512 0
    expect_fail_msg "$2" "$VDIMG" -f qcow2 write "$1.qcow2" 0 512 0
}
# only_marked BEFORE AFTER — AFTER is BEFORE with the corrupt bit set
# (incompatible features, header offset 72) and not one other change.
only_marked() {
    python3 - "$1" "$2" <<'PY' || fail "$2: bad image was written to"
import struct, sys
a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
fa, fb = (struct.unpack('>Q', x[72:80])[0] for x in (a, b))
sys.exit(0 if len(a) == len(b) and a[:72] == b[:72] and a[80:] == b[80:]
         and fb == fa | 2 else 1)
PY
}
# read_eio NAME OFF — open works, the read at OFF fails with EIO (and
# leaves the file alone), and a write there fails and changes nothing in
# the file but the corrupt bit.
read_eio() {
    cp "$1.qcow2" "$1.before"
    expect_fail_msg "Input/output error" "$VDIMG" verify "$1.qcow2" "$2" 512 0
    cmp -s "$1.before" "$1.qcow2" || fail "$1: read-only open wrote to it"
    expect_fail_msg "Input/output error" "$VDIMG" write "$1.qcow2" "$2" 512 7
    only_marked "$1.before" "$1.qcow2"
}

# A backing name offset that wraps 64-bit arithmetic (found by the fuzzer).
mk bfwrap base.qcow2 "h(8, 'Q', 0xffffffffffffffff); h(16, 'I', 8)"
open_fails bfwrap "backing file name outside the first cluster"
mk bfpast base.qcow2 "h(8, 'Q', cs - 4); h(16, 'I', 8)"
open_fails bfpast "backing file name outside the first cluster"
mk l1huge base.qcow2 "h(36, 'I', 0x7fffffff)"
open_fails l1huge "L1 table of 2147483647 entries is larger"
mk l1eof base.qcow2 "h(40, 'Q', 1 << 40)"
open_fails l1eof "L1 table offset"
mk l1hdr base.qcow2 "h(40, 'Q', 0)"
open_fails l1hdr "L1 table offset"
mk l1unal base.qcow2 "h(40, 'Q', l1 + 8)"
open_fails l1unal "L1 table offset"
mk l1small base.qcow2 "h(24, 'Q', 1 << 40)"
open_fails l1small "L1 table too small"
mk rteof base.qcow2 "h(48, 'Q', 1 << 40)"
open_fails rteof "refcount table offset"
mk rthuge base.qcow2 "h(56, 'I', 0xffffffff)"
open_fails rthuge "refcount table larger"
mk rtzero base.qcow2 "h(56, 'I', 0)"
open_fails rtzero "no refcount table"
mk cb30 base.qcow2 "h(20, 'I', 30)"
open_fails cb30 "cluster_bits 30"
mk cb8 base.qcow2 "h(20, 'I', 8)"
open_fails cb8 "cluster_bits 8"
mk hlen base.qcow2 "h(100, 'I', 1 << 20)"
open_fails hlen "header_length"
mk rorder base.qcow2 "h(96, 'I', 7)"
open_fails rorder "refcount_order 7"
mk magic base.qcow2 "h(0, 'I', 0x514649fa)"
open_fails magic "bad magic"
mk snapmany base.qcow2 "h(60, 'I', 100000); h(64, 'Q', rt)"
open_fails snapmany "too many snapshots"
mk snaplie base.qcow2 "h(60, 'I', 3); h(64, 'Q', l1)"
open_fails snaplie "snapshot"
mk snapeof base.qcow2 "h(60, 'I', 1); h(64, 'Q', 1 << 44)"
open_fails snapeof "snapshot table offset"
mk snapl1 base.qcow2 "
w(cs * 20, struct.pack('>QIHHIIQII', 1 << 40, 1, 1, 1, 0, 0, 0, 0, 16) + b'\0' * 16 + b'12')
h(60, 'I', 1); h(64, 'Q', cs * 20)"
open_fails snapl1 "snapshot 0 has a bad L1 table"
mk bfname base.qcow2 "h(8, 'Q', 4000); h(16, 'I', 500)"
open_fails bfname "backing file name outside"
mk short base.qcow2 "f.truncate(100)"
open_fails short "too short"
mk crypt base.qcow2 "h(32, 'I', 1)"
open_fails crypt "encrypted"
mk comptype base.qcow2 "h(104 - 0, 'B', 0) if False else None; h(72, 'Q', 8); w(104, b'\x07')"
open_fails comptype "compression type 7"

# Open succeeds, the bad pointer is hit on access.
mk l2eof base.qcow2 "h(l1, 'Q', (1 << 63) | (1 << 40))"
read_eio l2eof 0
mk l2unal base.qcow2 "h(l1, 'Q', (1 << 63) | (r64(l1) & ((1 << 56) - 1)) + 512)"
read_eio l2unal 0
mk dataunal base.qcow2 "l2 = r64(l1) & ((1 << 56) - 1); h(l2, 'Q', r64(l2) + 512)"
read_eio dataunal 0
mk dataeof base.qcow2 "l2 = r64(l1) & ((1 << 56) - 1); h(l2, 'Q', (1 << 63) | (1 << 45))"
read_eio dataeof 0
# A data cluster that is really the L1 table: reads are harmless, but an
# in-place write would destroy metadata and must be refused.
mk dataisl1 base.qcow2 "l2 = r64(l1) & ((1 << 56) - 1); h(l2, 'Q', (1 << 63) | l1)"
cp dataisl1.qcow2 dataisl1.before
expect_fail_msg "Input/output error" "$VDIMG" write dataisl1.qcow2 0 512 7
only_marked dataisl1.before dataisl1.qcow2
# Tables aimed at other tables: an L2 table that is the refcount table,
# a refcount block that is the L1 table, an L1 overlapping the refcount
# table. Writing through them would destroy metadata.
mk l2isrt base.qcow2 "h(l1, 'Q', (1 << 63) | rt)"
read_eio l2isrt 0
mk rbisl1 base.qcow2 "h(rt, 'Q', l1)"
cp rbisl1.qcow2 rbisl1.before
expect_fail_msg "Input/output error" "$VDIMG" write rbisl1.qcow2 512k 512 7
only_marked rbisl1.before rbisl1.qcow2
mk l1rt base.qcow2 "h(40, 'Q', rt)"
open_fails l1rt "L1 table overlaps the refcount table"
# Compressed cluster with garbage bytes.
mk compbad comp.qcow2 "
l2 = r64(l1) & ((1 << 56) - 1); e = r64(l2)
off = e & ((1 << (62 - (12 - 8))) - 1)
w(off, b'\xff' * 64)"
expect_fail_msg "Input/output error" "$VDIMG" verify compbad.qcow2 0 512 0x11
# Refcount block pointer past EOF: reads fine, allocation fails, no write
# but the corrupt bit.
mk rbeof base.qcow2 "h(rt, 'Q', 1 << 40)"
"$VDIMG" verify rbeof.qcow2 0 64k 0x11 || fail "read with bad refcount table"
cp rbeof.qcow2 rbeof.before
expect_fail_msg "Input/output error" "$VDIMG" write rbeof.qcow2 512k 512 7
only_marked rbeof.before rbeof.qcow2

# Our check finds what qemu-img check finds.
cp base.qcow2 chk.qcow2
qemu-img snapshot -c s chk.qcow2
"$VDIMG" check chk.qcow2 >/dev/null || fail "clean image reported bad"
mk chkcopied chk.qcow2 "l2 = r64(l1) & ((1 << 56) - 1); h(l2, 'Q', r64(l2) | (1 << 63))"
qemu-img check chkcopied.qcow2 >/dev/null 2>&1 && fail "precondition: copied error"
out=$("$VDIMG" check chkcopied.qcow2) && fail "copied flag error not found"
echo "$out" | grep -q "^corruptions 1 leaks 0" || fail "check copied: $out"
mk chkleak base.qcow2 "h(r64(rt), 'H', 2)"
out=$("$VDIMG" check chkleak.qcow2) && fail "leak not found"
echo "$out" | grep -q "^corruptions 0 leaks 1" || fail "check leak: $out"
mk chklow base.qcow2 "h(r64(rt) + 2 * (l1 // cs), 'H', 0)"
out=$("$VDIMG" -r check chklow.qcow2) && fail "missing refcount not found"
echo "$out" | grep -q "^corruptions 1 " || fail "check low refcount: $out"

# The originals were fine all along.
"$VDIMG" verify base.qcow2 0 64k 0x11 || fail "base image"
"$VDIMG" verify comp.qcow2 0 64k 0x11 || fail "compressed image"
exit 0
