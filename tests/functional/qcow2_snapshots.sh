# Internal snapshots interoperate with qemu-img snapshot both ways: ours
# are listed, applied and deleted by QEMU; QEMU's by us; writes after a
# snapshot copy shared clusters; every image stays clean.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"
cd "$T" || fail cd
seed=${VD_SEED:-$RANDOM}
echo "seed $seed"

for cs in 4096 65536; do
    img=s$cs.qcow2
    "$VDIMG" create -c $cs qcow2 $img 16M || fail create
    "$VDIMG" -C 32k stress $img 300 $seed sh0 || fail stress0
    "$VDIMG" snapshot $img -c first || fail "create first"
    qcheck $img
    qemu-img snapshot -l $img | grep -q ' first ' || fail "QEMU does not list our snapshot"
    "$VDIMG" -C 32k stress $img 300 $((seed + 1)) sh1 || fail stress1
    qcheck $img
    qcompare sh1 $img
    # QEMU applies our snapshot.
    cp $img q.qcow2
    qemu-img snapshot -a first q.qcow2 || fail "qemu-img snapshot -a"
    qcompare sh0 q.qcow2
    # Our second snapshot, more writes, our revert.
    "$VDIMG" snapshot $img -c second || fail "create second"
    "$VDIMG" -C 32k stress $img 200 $((seed + 2)) sh2 || fail stress2
    "$VDIMG" snapshot $img -a second || fail "revert second"
    qcheck $img
    qcompare sh1 $img
    "$VDIMG" snapshot $img -a first || fail "revert first"
    qcompare sh0 $img
    "$VDIMG" snapshot $img -d first || fail "delete first"
    qcheck $img
    qemu-img snapshot -l $img | grep -q ' first ' && fail "deleted snapshot still listed"
    qemu-img snapshot -l $img | grep -q ' second ' || fail "second snapshot lost"
    qemu-img snapshot -a second $img || fail "QEMU applies second"
    qcompare sh1 $img
    qemu-img snapshot -d second $img
    qcheck $img
    # Snapshots taken by QEMU, written and reverted by us.
    qemu-img snapshot -c qsnap $img
    "$VDIMG" snapshot $img -l | grep -q ' qsnap ' || fail "we do not list QEMU's snapshot"
    "$VDIMG" -C 32k stress $img 300 $((seed + 3)) sh3 || fail stress3
    qcheck $img
    qcompare sh3 $img
    "$VDIMG" snapshot $img -a qsnap || fail "revert to QEMU's snapshot"
    qcompare sh1 $img
    "$VDIMG" snapshot $img -d qsnap || fail "delete QEMU's snapshot"
    qcheck $img
    expect_fail_msg "no snapshot" "$VDIMG" snapshot $img -d nothere
done

# Duplicate names are refused; 1-bit refcounts cannot hold snapshots.
"$VDIMG" create qcow2 d.qcow2 1M
"$VDIMG" snapshot d.qcow2 -c a || fail "create a"
expect_fail_msg "exists" "$VDIMG" snapshot d.qcow2 -c a
qemu-img create -q -f qcow2 -o refcount_bits=1 one.qcow2 1M
expect_fail_msg "wider than 1 bit" "$VDIMG" snapshot one.qcow2 -c x
qcheck d.qcow2
qcheck one.qcow2
exit 0
