# Random mixed workloads (partial writes, zeroes, discards, flushes) with a
# tiny metadata cache, over our images and QEMU's of several geometries:
# contents must equal the shadow copy and qemu-img check must be clean.
# Then the writer is killed at random points: what is on disk may leak
# clusters but must never be corrupt, and stays usable.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"
cd "$T" || fail cd

seed=${VD_SEED:-$RANDOM}
echo "seed $seed"
n=0
for o in cluster_size=512 cluster_size=4k,refcount_bits=64 cluster_size=64k \
         compat=0.10,cluster_size=4k refcount_bits=1,cluster_size=4k ours; do
    n=$((n + 1))
    if [ $o = ours ]; then
        "$VDIMG" create -c 2048 qcow2 s$n.qcow2 24M || fail create
    else
        qemu-img create -q -f qcow2 -o $o s$n.qcow2 24M
    fi
    "$VDIMG" -C 16k stress s$n.qcow2 800 $((seed + n)) s$n.shadow ||
        fail "stress on $o (seed $((seed + n)))"
    qcheck s$n.qcow2
    qcompare s$n.shadow s$n.qcow2
done

for round in 1 2 3 4 5; do
    img=k$round.qcow2
    "$VDIMG" create -c 4096 qcow2 $img 24M || fail create
    "$VDIMG" -C 16k stress $img 1000000 $((seed + 100 + round)) &
    pid=$!
    sleep 0.$((2 + (seed + round) % 7))
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=0
    qemu-img check $img >check.out 2>&1 || rc=$?
    # 0 = clean, 3 = leaked clusters only; 2 = corruption
    [ $rc = 0 ] || [ $rc = 3 ] || fail "round $round: corrupt after kill: $(head -20 check.out)"
    "$VDIMG" -C 16k stress $img 300 $((seed + 200 + round)) || fail "reuse after kill"
    rc=0
    qemu-img check $img >check.out 2>&1 || rc=$?
    [ $rc = 0 ] || [ $rc = 3 ] || fail "round $round: corrupt after reuse: $(head -20 check.out)"
    qemu-img check -q -r leaks $img >/dev/null 2>&1
    qcheck $img
done
exit 0
