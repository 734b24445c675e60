#!/bin/bash
# guest_boot.sh — a real guest on a vdiskd volume. QEMU (TCG) boots a Debian
# kernel and a busybox initramfs (tests/guest/) with the volume's FUSE file
# as its virtio disk, opened with io_uring and O_DIRECT. The guest writes a
# seeded pattern, flushes and powers off; the host checks it through the
# FUSE file and, with the daemon stopped, in the image file itself. After a
# restart a second guest reads it back, and a third writes through the
# -blockdev form of the command line.
. "$(dirname "$0")/../functions.sh"

CACHE=${VD_TEST_CACHE:-/var/cache/vdiskd-tests}
SIZE=67108864
MIB=1048576

for tool in qemu-system-x86_64 qemu-img qemu-io flock timeout; do
    command -v "$tool" >/dev/null || fail "$tool missing: run deploy/install-deps.sh --test"
done
guest=$(bash "$(dirname "$0")/../guest/mkguest.sh" "$CACHE") ||
    fail "could not build the test guest"
read -r KERNEL INITRD <<<"$guest"

# ---- what the disk must hold --------------------------------------------------
# The guest (tests/guest/init) writes "PAT-<seed>" lines over 1 MiB at 0,
# 8 MiB and the last MiB, and the byte <byte> over 1 MiB at 32 MiB. The same
# regions, built here, form the expected disk: zero everywhere else.
make_expected() {
    local seed=$1 byte=$2 off
    (yes "PAT-$seed" || true) | head -c $MIB >"$T/text"
    head -c $MIB /dev/zero | tr '\0' "\\$(printf %o "$byte")" >"$T/byte"
    rm -f "$T/expect.raw"
    truncate -s $SIZE "$T/expect.raw"
    for off in 0 $((8 * MIB)) $((SIZE - MIB)); do
        dd if="$T/text" of="$T/expect.raw" bs=$MIB seek=$((off / MIB)) \
            conv=notrunc status=none
    done
    dd if="$T/byte" of="$T/expect.raw" bs=$MIB seek=32 conv=notrunc status=none
    TEXT_SHA=$(sha256sum <"$T/text" | cut -d' ' -f1)
    BYTE_SHA=$(sha256sum <"$T/byte" | cut -d' ' -f1)
}

# boot FORM MODE SEED BYTE — one guest, one at a time on this machine (TCG
# keeps a core busy); fails unless it powers off by itself with a PASS
# verdict and the region checksums the host expects.
nboot=0
boot() {
    local form=$1 mode=$2 seed=$3 byte=$4 disk rc=0 t0 t1 off want
    local log=$T/guest-$((++nboot))-$form-$mode.log
    case $form in
    drive)
        disk=(-drive "file=$VD_MNT/v1,format=raw,if=virtio,aio=io_uring,cache=none") ;;
    blockdev)
        disk=(-blockdev "driver=file,filename=$VD_MNT/v1,aio=io_uring,cache.direct=on,node-name=d0"
              -device virtio-blk-pci,drive=d0) ;;
    esac
    t0=$(date +%s.%N)
    flock "$CACHE/guest.run.lock" \
        timeout 180 qemu-system-x86_64 -accel tcg -M q35 -m 256 -smp 1 \
        -nodefaults -display none -serial stdio -no-reboot \
        -kernel "$KERNEL" -initrd "$INITRD" \
        -append "console=ttyS0 quiet panic=-1 vd_mode=$mode vd_seed=$seed vd_byte=$byte" \
        "${disk[@]}" </dev/null >"$log.raw" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    tr -d '\r' <"$log.raw" >"$log"
    grep '^VDGUEST:' "$log" | sed 's/^/    /'
    awk -v n="$nboot" -v f="$form" -v m="$mode" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "guest_boot: boot %d (%s, %s) took %.1f s\n", n, f, m, b - a }'
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$log" >&2
        fail "qemu ($form, $mode) exited with $rc (124: timed out)"
    fi
    grep -qx "VDGUEST: VERDICT PASS seed=$seed" "$log" ||
        fail "guest ($form, $mode) did not report PASS for seed $seed: $(tail -n 20 "$log")"
    for off in 0 $((8 * MIB)) $((32 * MIB)) $((SIZE - MIB)); do
        want=$TEXT_SHA
        [ "$off" -eq $((32 * MIB)) ] && want=$BYTE_SHA
        grep -qx "VDGUEST: region $off sha256 $want" "$log" ||
            fail "guest ($form, $mode) read something else than the pattern at $off"
    done
}

# The pattern through the daemon: the whole disk compared with the expected
# one, and the byte region read the way QEMU reads (io_uring, O_DIRECT).
check_fuse() {
    qemu-img compare -q -f raw -F raw "$T/expect.raw" "$VD_MNT/v1" ||
        fail "$VD_MNT/v1 differs from the pattern the guest wrote"
    qio "$VD_MNT/v1" "read -P $1 32M 1M" >"$T/qio.out" 2>&1 ||
        fail "qemu-io read -P $1 through FUSE: $(cat "$T/qio.out")"
}

# The pattern in the image file itself, with the daemon stopped.
check_image() {
    qemu-img compare -q -f raw -F "$FMT" "$T/expect.raw" "$IMAGE" ||
        fail "image $IMAGE ($FMT) differs from the pattern the guest wrote"
    qemu-io -f "$FMT" -r -c "read -P $1 32M 1M" "$IMAGE" >"$T/qio.out" 2>&1 ||
        fail "qemu-io -f $FMT read -P $1 on the image: $(cat "$T/qio.out")"
    if [ "$FMT" = qcow2 ]; then
        qemu-img check -f qcow2 "$IMAGE" >"$T/check.out" 2>&1 ||
            fail "qemu-img check: $(cat "$T/check.out")"
    fi
}

# ---- a volume, qcow2 when this daemon has it ------------------------------------
start_daemon
api POST /volumes "{\"name\":\"v1\",\"size\":$SIZE,\"format\":\"qcow2\"}"
if [ "$API_STATUS" = 400 ] && grep -qi "unknown format" <<<"$API_BODY"; then
    echo "guest_boot: this daemon has no qcow2 driver ($API_BODY); using raw"
    api POST /volumes "{\"name\":\"v1\",\"size\":$SIZE,\"format\":\"raw\"}"
fi
expect_status 201
FMT=$(json_get format)
IMAGE=$(json_get image)
[ "$(json_get path)" = "$VD_MNT/v1" ] || fail "volume path is $(json_get path), not $VD_MNT/v1"
[ -f "$IMAGE" ] || fail "image file $IMAGE of the new volume does not exist"
echo "guest_boot: volume v1 is $FMT, image $IMAGE"

# ---- 1: -drive, the guest writes -----------------------------------------------
SEED=w1-$RANDOM$RANDOM
BYTE=$((RANDOM % 255 + 1))
make_expected "$SEED" "$BYTE"
boot drive write "$SEED" "$BYTE"
api GET /volumes/v1
expect_status 200
written=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["bytes_written"])' "$T/body")
[ "$written" -ge $((4 * MIB)) ] || fail "daemon counted $written bytes written, the guest wrote 4 MiB"
check_fuse "$BYTE"
stop_daemon
check_image "$BYTE"

# ---- 2: after a restart, the guest reads it back ---------------------------------
start_daemon
api GET /volumes/v1
expect_status 200
[ "$(json_get format)" = "$FMT" ] || fail "after restart v1 is $(json_get format), was $FMT"
boot drive verify "$SEED" "$BYTE"

# ---- 3: -blockdev, a new pattern over the old one -----------------------------------
SEED=w3-$RANDOM$RANDOM
BYTE=$((BYTE % 255 + 1))
make_expected "$SEED" "$BYTE"
boot blockdev write "$SEED" "$BYTE"
check_fuse "$BYTE"
stop_daemon
check_image "$BYTE"
echo "guest_boot: ok ($FMT)"
