# Backing files: chains of qcow2 and raw, relative and absolute names, the
# backing-format extension honoured, confinement to allowed directories,
# loop and depth limits, copy-on-write of partial clusters from the backing.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

mkdir -p "$T/imgs/sub" "$T/outside"
cd "$T/imgs" || fail "cd"
randfile base.raw 8M
qemu-img create -q -f qcow2 -b ../base.raw -F raw sub/mid.qcow2 8M
qemu-io -f qcow2 -c 'write -P 0x22 1M 1M' sub/mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b "$T/imgs/sub/mid.qcow2" -F qcow2 top.qcow2 8M
qemu-img create -q -f qcow2 -b sub/mid.qcow2 -F qcow2 top-probe.qcow2 8M
hide_ext top-probe.qcow2 0xe2792aca 0x0badf00d   # no format: probed
A=(-A "$T/imgs")

# Reads through the chain match QEMU's view.
for img in top.qcow2 top-probe.qcow2; do
    qemu-img convert -O raw "$img" "$T/exp"
    "$VDIMG" "${A[@]}" copy-out "$img" "$T/got" || fail "read chain $img"
    cmp -s "$T/exp" "$T/got" || fail "chain contents of $img differ"
done
"$VDIMG" "${A[@]}" map top.qcow2 | grep -q '^0 8388608 data$' ||
    fail "backing data reported as allocated in top: $("$VDIMG" "${A[@]}" map top.qcow2)"

# Partial write into an unallocated cluster copies the rest from backing.
"$VDIMG" "${A[@]}" write top.qcow2 1000 100 0x33 || fail "cow write"
"$VDIMG" "${A[@]}" write top.qcow2 1M 3000 0x44 || fail "cow write over mid data"
qcheck top.qcow2
qemu-img convert -O raw top.qcow2 "$T/exp2"
python3 - "$T/exp" <<'PY'
import sys
f = open(sys.argv[1], 'r+b')
f.seek(1000); f.write(b'\x33' * 100)
f.seek(1 << 20); f.write(b'\x44' * 3000)
PY
cmp -s "$T/exp" "$T/exp2" || fail "copy-on-write from backing lost data"
"$VDIMG" "${A[@]}" map top.qcow2 | grep -q '^0 65536 data allocated$' ||
    fail "cow cluster not allocated"

# Confinement: no allowed dirs, or a directory that does not hold it.
expect_fail_msg "outside the allowed directories" "$VDIMG" -A "$T/outside" verify top.qcow2 0 1 0
expect_fail_msg "outside the allowed directories" "$VDIMG" verify top.qcow2 0 1 0
expect_fail_msg "outside the allowed directories" "$VDIMG" -A "$T/imgs/sub" verify top.qcow2 0 1 0
# A prefix of the directory name is not the directory.
mkdir -p "$T/imgs-evil"
cp base.raw "$T/imgs-evil/b.raw"
qemu-img create -q -f qcow2 -b "$T/imgs-evil/b.raw" -F raw evil.qcow2 8M
expect_fail_msg "outside the allowed directories" "$VDIMG" "${A[@]}" verify evil.qcow2 0 1 0
# Symlink out of the allowed directory.
ln -s "$T/outside" link
cp base.raw "$T/outside/b.raw"
qemu-img create -q -f qcow2 -b link/b.raw -F raw viasym.qcow2 8M
expect_fail_msg "outside the allowed directories" "$VDIMG" "${A[@]}" verify viasym.qcow2 0 1 0
expect_fail_msg "No such file" "$VDIMG" "${A[@]}" verify "$(qemu-img create -q -f qcow2 -u -b nothere.raw -F raw gone.qcow2 8M; echo gone.qcow2)" 0 1 0

# The backing-format extension is obeyed, not probed: a qcow2 file named
# as raw reads as its raw bytes.
qemu-img create -q -f qcow2 inner.qcow2 8M
qemu-img create -q -f qcow2 -u -b inner.qcow2 -F raw asraw.qcow2 8M
head -c 4 inner.qcow2 >"$T/magic"
"$VDIMG" "${A[@]}" read asraw.qcow2 0 4 >"$T/got4" || fail "read asraw"
cmp -s "$T/magic" "$T/got4" || fail "backing format 'raw' was not honoured"

# Loops end with ELOOP; deep chains within the limit work.
qemu-img create -q -f qcow2 -u -b loop2.qcow2 -F qcow2 loop1.qcow2 8M
qemu-img create -q -f qcow2 -u -b loop1.qcow2 -F qcow2 loop2.qcow2 8M
expect_fail_msg "backing chain deeper" "$VDIMG" "${A[@]}" verify loop1.qcow2 0 1 0
prev=base.raw; pf=raw
for i in $(seq 1 10); do
    qemu-img create -q -f qcow2 -b $prev -F $pf d$i.qcow2 8M
    prev=d$i.qcow2; pf=qcow2
done
qemu-io -f qcow2 -c 'write -P 0x66 4M 4k' d10.qcow2 >/dev/null
"$VDIMG" "${A[@]}" verify d10.qcow2 4M 4k 0x66 || fail "deep chain top data"
head -c 4096 base.raw >"$T/b4k"
"$VDIMG" "${A[@]}" read d10.qcow2 0 4096 >"$T/g4k" || fail "deep chain read"
cmp -s "$T/b4k" "$T/g4k" || fail "deep chain base data"

# Our own create with a backing file, read by QEMU.
"$VDIMG" create -b sub/mid.qcow2 -F qcow2 qcow2 ours.qcow2 8M || fail "create with backing"
qemu-img info ours.qcow2 | grep -q "backing file format: qcow2" || fail "backing format extension missing"
"$VDIMG" "${A[@]}" write ours.qcow2 2M 5000 0x77 || fail "write ours"
qcheck ours.qcow2
qemu-img convert -O raw sub/mid.qcow2 "$T/m"
python3 - "$T/m" <<'PY'
import sys
f = open(sys.argv[1], 'r+b'); f.seek(2 << 20); f.write(b'\x77' * 5000)
PY
qcompare "$T/m" ours.qcow2
exit 0
