# shellcheck shell=bash
# tests/guest/guest.sh — a QEMU guest for functional tests; source it after
# tests/functions.sh. The guest (init, packed by mkguest.sh) writes or
# verifies a seeded pattern on its virtio disk and reports per-region
# checksums and a verdict on the serial console.
#
#   guest_setup                       build or find the cached kernel + initramfs
#   guest_expect SEED BYTE SIZE       the disk the guest leaves: $T/expect.raw
#   guest_fs_expect SEED              the file manifest the guest's ext2 holds
#   guest_check_log LOG WHAT SEED FS  a boot's console shows the expected results
#   guest_boot DISK FORM MODE SEED BYTE [FSDISK]
#                                     boot on DISK (a volume file) with the
#                                     -drive or -blockdev form, mode write|verify;
#                                     FSDISK (second volume file) gets the files

VD_TEST_CACHE=${VD_TEST_CACHE:-/var/cache/vdiskd-tests}
_GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_MIB=1048576

guest_setup() {
    local tool out
    for tool in qemu-system-x86_64 qemu-img qemu-io flock timeout; do
        command -v "$tool" >/dev/null || fail "$tool missing: run deploy/install-deps.sh --test"
    done
    out=$(bash "$_GUEST_DIR/mkguest.sh" "$VD_TEST_CACHE") || fail "could not build the test guest"
    read -r GUEST_KERNEL GUEST_INITRD <<<"$out"
}

# The guest writes "PAT-<seed>" lines over 1 MiB at 0, 8 MiB and the last
# MiB, and the byte <byte> over 1 MiB at 32 MiB. The same regions, built
# here, form the expected disk: zero everywhere else.
guest_expect() {
    local seed=$1 byte=$2 size=$3 off
    (yes "PAT-$seed" || true) | head -c $_MIB >"$T/text"
    head -c $_MIB /dev/zero | tr '\0' "\\$(printf %o "$byte")" >"$T/byte"
    rm -f "$T/expect.raw"
    truncate -s "$size" "$T/expect.raw"
    for off in 0 $((8 * _MIB)) $((size - _MIB)); do
        dd if="$T/text" of="$T/expect.raw" bs=$_MIB seek=$((off / _MIB)) \
            conv=notrunc status=none
    done
    dd if="$T/byte" of="$T/expect.raw" bs=$_MIB seek=32 conv=notrunc status=none
    GUEST_SIZE=$size
    GUEST_TEXT_SHA=$(sha256sum <"$T/text" | cut -d' ' -f1)
    GUEST_BYTE_SHA=$(sha256sum <"$T/byte" | cut -d' ' -f1)
}

# The guest's 48 files (tests/guest/init, fs_files), made here the same way;
# the manifest is the sha256 of their sorted sha256sum lines.
guest_fs_expect() {
    local seed=$1 i d=$T/fswant
    rm -rf "$d"
    for ((i = 0; i < 48; i++)); do
        mkdir -p "$d/d$((i % 4))"
        (yes "F$i-$seed" || true) | head -c $(((i * 37 % 61) * 4096 + i * 113 % 4096 + 1)) \
            >"$d/d$((i % 4))/f$i"
    done
    GUEST_FS_MANIFEST=$( (cd "$d" && find . -type f | LC_ALL=C sort | xargs sha256sum) |
        sha256sum | cut -d' ' -f1)
    rm -rf "$d"
}

# One guest at a time on this machine (TCG keeps a core busy). Fails unless
# it powers off by itself with a PASS verdict and the region checksums the
# host expects (call guest_expect first with the same seed and byte).
_guest_n=0
guest_boot() {
    local file=$1 form=$2 mode=$3 seed=$4 byte=$5 fsfile=${6:-} disk=() rc=0 t0 t1
    local log=$T/guest-$((++_guest_n))-$form-$mode.log f n=0 fs=0
    for f in "$file" $fsfile; do
        case $form in
        drive)
            disk+=(-drive "file=$f,format=raw,if=virtio,aio=io_uring,cache=none") ;;
        blockdev)
            disk+=(-blockdev "driver=file,filename=$f,aio=io_uring,cache.direct=on,node-name=d$n"
                   -device "virtio-blk-pci,drive=d$n") ;;
        *) fail "guest_boot: unknown form $form" ;;
        esac
        n=$((n + 1))
    done
    [ -n "$fsfile" ] && fs=1
    t0=$(date +%s.%N)
    flock "$VD_TEST_CACHE/guest.run.lock" \
        timeout 180 qemu-system-x86_64 -accel tcg -M q35 -m 256 -smp 1 \
        -nodefaults -display none -serial stdio -no-reboot \
        -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
        -append "console=ttyS0 quiet panic=-1 vd_mode=$mode vd_seed=$seed vd_byte=$byte vd_fs=$fs" \
        "${disk[@]}" </dev/null >"$log.raw" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    tr -d '\r' <"$log.raw" >"$log"
    grep '^VDGUEST:' "$log" | sed 's/^/    /'
    awk -v n="$_guest_n" -v f="$form" -v m="$mode" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "guest: boot %d (%s, %s) took %.1f s\n", n, f, m, b - a }'
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$log" >&2
        fail "qemu ($form, $mode) exited with $rc (124: timed out)"
    fi
    guest_check_log "$log" "$form, $mode" "$seed" "$fs"
}

# guest_check_log LOG WHAT SEED FS: the serial console LOG (no CRs) shows a
# PASS verdict and the region checksums guest_expect computed (and, with
# FS=1, the file manifest); WHAT names the boot in messages.
guest_check_log() {
    local log=$1 what=$2 seed=$3 fs=$4 off want
    grep -qx "VDGUEST: VERDICT PASS seed=$seed" "$log" ||
        fail "guest ($what) did not report PASS for seed $seed: $(tail -n 20 "$log")"
    for off in 0 $((8 * _MIB)) $((32 * _MIB)) $((GUEST_SIZE - _MIB)); do
        want=$GUEST_TEXT_SHA
        [ "$off" -eq $((32 * _MIB)) ] && want=$GUEST_BYTE_SHA
        grep -qx "VDGUEST: region $off sha256 $want" "$log" ||
            fail "guest ($what) read something else than the pattern at $off"
    done
    if [ "$fs" = 1 ]; then
        grep -qx "VDGUEST: fs manifest $GUEST_FS_MANIFEST" "$log" ||
            fail "guest ($what) found other files on its ext2 than it wrote"
    fi
}
