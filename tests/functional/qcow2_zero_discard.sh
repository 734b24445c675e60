# v3 zero clusters, write_zeroes with and without unmap, discard, and
# block_status runs, checked against qemu-img map and qemu-io reads.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

img=$T/z.qcow2
"$VDIMG" create -c 65536 qcow2 "$img" 16M || fail create
"$VDIMG" write "$img" 0 8M 0xaa || fail write
"$VDIMG" zero "$img" 1M 1M || fail "zero keep"
"$VDIMG" zero "$img" 3M 1M unmap || fail "zero unmap"
"$VDIMG" discard "$img" 5M 1M || fail discard
"$VDIMG" zero "$img" 7000000 100000 || fail "zero unaligned"
"$VDIMG" zero "$img" 12M 1M || fail "zero unallocated"
qcheck "$img"
qio_verify "$img" 'read -P 0xaa 0 1M' 'read -P 0 1M 1M' 'read -P 0xaa 2M 1M' \
    'read -P 0 3M 1M' 'read -P 0xaa 4M 1M' 'read -P 0 5M 1M' \
    'read -P 0xaa 6M 708544' 'read -P 0 7000000 100000' 'read -P 0xaa 7100000 1288608' \
    'read -P 0 8M 8M'
"$VDIMG" map "$img" >"$T/map"
expect=$(printf '%s\n' \
    "0 1048576 data allocated" \
    "1048576 1048576 zero allocated" \
    "2097152 1048576 data allocated" \
    "3145728 1048576 zero allocated" \
    "4194304 1048576 data allocated" \
    "5242880 1048576 zero")
head -6 "$T/map" | diff - <(echo "$expect") >&2 || fail "block status differs"
# Zeroed-in-place clusters stay allocated for QEMU; unmapped ones are not.
qemu-img map --output=json "$img" >"$T/qmap"
python3 - "$T/qmap" <<'PY' || fail "qemu-img map disagrees: $(cat "$T/qmap")"
import json, sys
m = json.load(open(sys.argv[1]))
def at(off):
    return next(e for e in m if e['start'] <= off < e['start'] + e['length'])
assert at(1 << 20)['zero'] and 'offset' in at(1 << 20), at(1 << 20)
assert at(3 << 20)['zero'] and 'offset' not in at(3 << 20), at(3 << 20)
assert not at(5 << 20)['data'], at(5 << 20)
assert at(0)['data'] and not at(0)['zero']
PY
# Freed clusters are punched out of the host file: allocated bytes drop.
"$VDIMG" create -c 65536 qcow2 "$T/a.qcow2" 16M || fail create
"$VDIMG" write "$T/a.qcow2" 0 8M 0x1 || fail write
a1=$("$VDIMG" info "$T/a.qcow2" | sed -n 's/^allocated //p')
"$VDIMG" discard "$T/a.qcow2" 0 6M || fail discard
a2=$("$VDIMG" info "$T/a.qcow2" | sed -n 's/^allocated //p')
[ "$a1" -ge $((8 << 20)) ] || fail "allocated $a1 after writing 8M"
[ "$a2" -le $((a1 - (5 << 20))) ] || fail "allocated $a1 -> $a2 after discarding 6M"
[ "$a2" = $(( $(stat -c %b "$T/a.qcow2") * 512 )) ] || fail "allocated is not st_blocks"
qcheck "$T/a.qcow2"

# Discarded and unmapped clusters are freed once flushed: writes reuse them.
before=$(stat -c %s "$img")
"$VDIMG" write "$img" 9M 2M 0x11 || fail "write after discard"
after=$(stat -c %s "$img")
[ "$after" -le "$before" ] || fail "freed clusters not reused ($before -> $after)"
qcheck "$img"
qio_verify "$img" 'read -P 0x11 9M 2M'
# Writing into a zero cluster.
"$VDIMG" write "$img" 1M 512 0x12 || fail "write into zero cluster"
qio_verify "$img" 'read -P 0x12 1M 512' 'read -P 0 1049088 1048064'
qcheck "$img"

# v2 image: no zero flag; zeroes still read back, image stays clean.
qemu-img create -q -f qcow2 -o compat=0.10 "$T/v2.qcow2" 4M
qemu-io -f qcow2 -c 'write -P 0x5 0 4M' "$T/v2.qcow2" >/dev/null
"$VDIMG" zero "$T/v2.qcow2" 1M 1M || fail "zero v2"
"$VDIMG" zero "$T/v2.qcow2" 3M 1M unmap || fail "zero unmap v2"
qcheck "$T/v2.qcow2"
qio_verify "$T/v2.qcow2" 'read -P 5 0 1M' 'read -P 0 1M 1M' 'read -P 5 2M 1M' 'read -P 0 3M 1M'
exit 0
