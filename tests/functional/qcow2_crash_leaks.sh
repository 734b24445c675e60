#!/bin/bash
# qcow2_crash_leaks.sh — clusters a killed daemon leaked are reclaimed.
# A daemon killed with SIGKILL while a client allocates and flushes may
# leave refcounts raised for clusters no table references yet (leaks,
# qemu-img check exit 3), never corruption. The window for that is
# narrow, so every round makes it likely: VDISKD_FAULT (formats/fault.h)
# makes a later fdatasync fail and every write after it, which leaves on
# disk what a crash at that instant would, before the kill. Each flush of
# the workload writes a new L2 table and the L1 entry for it, so two of
# its three syncs leave leaks when they fail (refcounts written, not yet
# the L2 table; or the L2 table, not yet the L1 entry). The next
# daemon finds the marker of an unclean shutdown and reclaims the leaks
# when it opens the image for writing, logging how many, so they do not
# pile up round after round: after each restart qemu-img check is clean
# (exit 0) and the data flushed before every kill reads back.
. "$(dirname "$0")/../functions.sh" || exit 1

start_daemon
api POST /volumes '{"name":"v1","size":1099511627776,"format":"qcow2"}'
expect_status 201
F=$VD_MNT/v1
img=$(find "$VD_DATA/images" -name '*.qcow2' | head -1)
[ -f "$img" ] || fail "no image file"
[ -e "$VD_DATA/.open-for-writing" ] || fail "no marker while images are open"
stop_daemon
[ ! -e "$VD_DATA/.open-for-writing" ] || fail "a clean stop left the marker"

# Check the image, then the data of rounds 1..$1 through the mount.
check_after_restart() {
    local rc=0 r
    qemu-img check -U "$img" >"$T/check.out" 2>&1 || rc=$?
    [ $rc = 0 ] || fail "after restart $1: qemu-img check exit $rc: $(tail -3 "$T/check.out")"
    for r in $(seq 1 "$1"); do
        qio "$F" "read -P 0x$((40 + r)) $((256 + r * 64))M 64k" >"$T/r.out" 2>&1 ||
            fail "after restart $1: data of round $r: $(cat "$T/r.out")"
    done
}

leaky=0
reclaimed=0
for round in 1 2 3 4 5 6; do
    VDISKD_FAULT="flush:$((20 + round)):EIO:sticky" start_daemon
    if [ $round -gt 1 ]; then
        grep -q "last shutdown was not clean" "$VD_LOG" ||
            fail "the restart did not notice the unclean shutdown"
        n=$(sed -n "s/.*volume 'v1': reclaimed \([0-9]*\) leaked.*/\1/p" \
            "$VD_LOG" | tail -1)
        reclaimed=$((reclaimed + ${n:-0}))
        check_after_restart $((round - 1))
    fi
    # Known data, flushed: it must survive every crash.
    qio "$F" "write -P 0x$((40 + round)) $((256 + round * 64))M 64k" flush \
        >"$T/w.out" 2>&1 || fail "round $round: write: $(cat "$T/w.out")"
    # Allocating writes, each under a new L2 table, flushed, cut short.
    cmds=()
    for i in $(seq 1 1999); do
        cmds+=("write -P 0x5a $((i * 512 + round * 16))M 4k" flush)
    done
    qio "$F" "${cmds[@]}" >/dev/null 2>&1 &
    wpid=$!
    on_exit "kill -9 $wpid"
    # After the fault every request fails at once, so the client ends
    # soon; the daemon is killed then (or after 60 s in any case).
    for ((i = 0; i < 600; i++)); do
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$VD_PID"
    wait "$VD_PID" 2>/dev/null
    wait "$wpid" 2>/dev/null
    [ -e "$VD_DATA/.open-for-writing" ] || fail "a killed daemon left no marker"
    rc=0
    qemu-img check "$img" >"$T/check.out" 2>&1 || rc=$?
    case $rc in
    0) ;;
    3) leaky=$((leaky + 1)) ;;
    *) fail "round $round: image corrupt after the kill: $(head "$T/check.out")" ;;
    esac
    echo "round $round: qemu-img check after SIGKILL exit $rc"
    : >"$VD_LOG"
done
[ "$leaky" -gt 0 ] || fail "no kill left leaks: the test proved nothing"

start_daemon
grep -q "last shutdown was not clean" "$VD_LOG" ||
    fail "the last restart did not notice the unclean shutdown"
n=$(sed -n "s/.*volume 'v1': reclaimed \([0-9]*\) leaked.*/\1/p" "$VD_LOG")
reclaimed=$((reclaimed + ${n:-0}))
check_after_restart 6
echo "leaky rounds $leaky of 6, clusters reclaimed $reclaimed"
[ "$reclaimed" -gt 0 ] || fail "nothing reclaimed was logged"
stop_daemon
[ ! -e "$VD_DATA/.open-for-writing" ] || fail "a clean stop left the marker"
qemu-img check "$img" >"$T/check.out" 2>&1 ||
    fail "after a clean stop: $(tail -3 "$T/check.out")"
: >"$VD_LOG"
start_daemon
grep -q "last shutdown was not clean" "$VD_LOG" && fail "a clean stop read as unclean"
stop_daemon
echo "qcow2_crash_leaks: ok"
