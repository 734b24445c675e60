# Growing a volume: in place while the L1 table's clusters have room, and
# by moving the L1 table when they do not; data before and after the old
# end stays correct, the header says the new size, the image stays clean.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

for cs in 512 65536; do
    img=$T/r$cs.qcow2
    "$VDIMG" create -c $cs qcow2 "$img" 1M || fail create
    "$VDIMG" write "$img" 0 1M 0x21 || fail write
    l1_before=$(read_u64 "$img" 40)
    "$VDIMG" resize "$img" 200M || fail "resize to 200M ($cs)"
    qemu-img info "$img" | grep -q "virtual size: 200 MiB" || fail "size not in header ($cs)"
    "$VDIMG" info "$img" | grep -q "^length 209715200$" || fail "length ($cs)"
    "$VDIMG" write "$img" 150M 100k 0x22 || fail "write past old end ($cs)"
    "$VDIMG" write "$img" 199M 1M 0x23 || fail "write at new end ($cs)"
    qcheck "$img"
    qio_verify "$img" 'read -P 0x21 0 1M' 'read -P 0 1M 149M' 'read -P 0x22 150M 100k' \
        'read -P 0x23 199M 1M'
    if [ $cs = 512 ]; then
        [ "$(read_u64 "$img" 40)" != "$l1_before" ] || fail "L1 should have moved"
    fi
    expect_fail_msg "shrink" "$VDIMG" resize "$img" 100M
done
exit 0
