# Compressed clusters written by qemu-img convert -c (deflate and zstd) read
# correctly; writing over one allocates a fresh cluster holding the
# decompressed rest, and the old compressed space is released cleanly.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

python3 - "$T/src" <<'PY'
import random, sys
random.seed(7)
out = bytearray()
for i in range(320):
    if i % 3 == 0:
        out += bytes(random.getrandbits(8) for _ in range(4096))
    elif i % 3 == 1:
        out += bytes([i % 251]) * 4096
    else:
        out += b'\0' * 4096
open(sys.argv[1], 'wb').write(out)
PY
n=0
for o in "" compression_type=zstd cluster_size=4k cluster_size=4k,compression_type=zstd \
         cluster_size=512 cluster_size=1M,compression_type=zstd; do
    n=$((n + 1))
    img=$T/c$n.qcow2
    qemu-img convert -c -f raw -O qcow2 ${o:+-o $o} "$T/src" "$img" || fail "convert $o"
    case $o in *zstd*) qemu-img info "$img" | grep -q "compression type: zstd" ||
        fail "not zstd ($o)";; esac
    "$VDIMG" copy-out "$img" "$T/got" || fail "read compressed ($o)"
    cmp -s "$T/src" "$T/got" || fail "compressed contents differ ($o)"
    "$VDIMG" map "$img" | grep -q "data allocated" || fail "map ($o)"
    cp "$T/src" "$T/exp"
    "$VDIMG" write "$img" 70000 100 0x77 || fail "write over compressed ($o)"
    "$VDIMG" write "$img" 300000 5000 0x78 || fail "write over compressed ($o)"
    python3 - "$T/exp" <<'PY'
import sys
f = open(sys.argv[1], 'r+b')
f.seek(70000); f.write(b'\x77' * 100)
f.seek(300000); f.write(b'\x78' * 5000)
PY
    qcheck "$img"
    qcompare "$T/exp" "$img"
done
exit 0
