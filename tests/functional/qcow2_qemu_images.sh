# Images QEMU made (cluster sizes, every refcount width, v2) read correctly
# by us, and stay clean and correct after we write to them.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

n=0
for opts in cluster_size=4k cluster_size=512,refcount_bits=1 \
            cluster_size=64k,refcount_bits=2 refcount_bits=4 refcount_bits=8 \
            refcount_bits=32 refcount_bits=64 compat=0.10 \
            compat=0.10,cluster_size=2M cluster_size=1M,refcount_bits=16; do
    n=$((n + 1))
    img=$T/q$n.qcow2
    qemu-img create -q -f qcow2 -o "$opts" "$img" 24M
    qemu-io -f qcow2 -c 'write -P 0x5a 1000 300k' -c 'write -P 0x22 10M 1M' \
        -c 'write -z 12M 64k' "$img" >/dev/null
    qemu-img convert -O raw "$img" "$T/exp" || fail "convert $opts"
    "$VDIMG" copy-out "$img" "$T/got" || fail "copy-out ($opts)"
    cmp -s "$T/exp" "$T/got" || fail "our read of QEMU image ($opts) differs"
    "$VDIMG" write "$img" 5M 70k 0x33 || fail "write ($opts)"
    "$VDIMG" write "$img" 1100 10 0x44 || fail "small write ($opts)"
    "$VDIMG" write "$img" 12M 4096 0x55 || fail "write over zero cluster ($opts)"
    qcheck "$img"
    qio_verify "$img" 'read -P 0x5a 1000 100' 'read -P 0x44 1100 10' \
        'read -P 0x5a 1110 100k' 'read -P 0x33 5M 70k' 'read -P 0x22 10M 1M' \
        'read -P 0x55 12M 4096' 'read -P 0 12292k 60k' 'read -P 0 0 1000'
    qemu-img info "$img" | grep -q "compat: 0.10" &&
        [ "${opts#compat=0.10}" = "$opts" ] && fail "version changed ($opts)"
done
exit 0
