#!/bin/bash
# libvirt.sh — libvirt as a client: a libvirtd of the test's own (in a
# private mount namespace, tests/libvirt/libvirt.sh) runs the README's
# domain on a volume of a daemon started on its defaults (no --owner):
# libvirt's dynamic ownership hands the file to libvirt-qemu, the test
# guest writes a pattern, a second boot reads it back; the README's `dir`
# pool on the mount shows each volume's API size and allocation and the
# data directory's free space; `virsh destroy` in the middle of the
# guest's writes leaves the volume's open_count at 0.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/guest.sh"
. "$(dirname "$0")/../libvirt/libvirt.sh"

SIZE=67108864
libvirt_skip_unless_usable
guest_setup
start_daemon
libvirt_start
libvirt_guest_files
QUID=$(id -u libvirt-qemu)
QGID=$(getent group libvirt-qemu | cut -d: -f3)

api POST /volumes "{\"name\":\"vm1\",\"size\":$SIZE}"
expect_status 201
FMT=$(json_get format)
[ "$(json_get uid)" = 0 ] || fail "a new volume belongs to uid $(json_get uid), not root"

vol_field() {   # NAME FIELD
    api GET "/volumes/$1"
    expect_status 200
    json_get "$2"
}

# boot NAME MODE SEED BYTE: start the README's domain on volume NAME and
# wait for the guest to power off; while it runs, the volume belongs to
# the QEMU user and group (dynamic ownership through the mount), and
# afterwards to root again (libvirt gives it back).
_boot_n=0
boot() {
    local name=$1 mode=$2 seed=$3 byte=$4 t0 t1 uid
    local xml=$LV/$name-$((++_boot_n)).xml log=$T/libvirt-boot-$_boot_n.log
    libvirt_domain_xml "$name" "$VD_MNT/$name" "$mode" "$seed" "$byte" >"$xml"
    rm -f "$LV/guest/$name.serial"
    libvirt_guard_domain "$name"
    t0=$(date +%s.%N)
    vsh create "$xml" >/dev/null
    uid=$(vol_field "$name" uid):$(json_get gid)
    libvirt_wait_shutoff "$name" 240 ||
        fail "domain $name ($mode) still running after 240 s: $(tail -n 20 "$LV/guest/$name.serial")"
    t1=$(date +%s.%N)
    tr -d '\r' <"$LV/guest/$name.serial" >"$log"
    grep '^VDGUEST:' "$log" | sed 's/^/    /'
    awk -v n="$_boot_n" -v m="$mode" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "libvirt: boot %d (%s) took %.1f s\n", n, m, b - a }'
    guest_check_log "$log" "libvirt, $mode" "$seed" 0
    [ "$uid" = "$QUID:$QGID" ] ||
        fail "libvirt did not give volume $name to libvirt-qemu:libvirt-qemu ($uid while running)"
    uid=$(vol_field "$name" uid)
    [ "$uid" = 0 ] || fail "after the domain stopped, $name belongs to uid $uid, not root"
}

# ---- a guest writes, a second boot reads it back -----------------------------
SEED=lv-$RANDOM$RANDOM
BYTE=$((RANDOM % 255 + 1))
guest_expect "$SEED" "$BYTE" $SIZE
boot vm1 write "$SEED" "$BYTE"
qemu-img compare -q -f raw -F raw "$T/expect.raw" "$VD_MNT/vm1" ||
    fail "$VD_MNT/vm1 differs from the pattern the guest wrote through libvirt"
boot vm1 verify "$SEED" "$BYTE"

# ---- the README's dir pool: the API's capacity and allocation ------------------
api POST /volumes '{"name":"vm2","size":"1G","format":"raw"}'
expect_status 201
qio "$VD_MNT/vm2" "write -P 7 1M 3M" >"$T/qio.out" 2>&1 || fail "qemu-io vm2: $(cat "$T/qio.out")"
readme_xml pool | sed "s|<path>/mnt/vols</path>|<path>$VD_MNT</path>|" >"$LV/pool.xml"
grep -q "<path>$VD_MNT</path>" "$LV/pool.xml" || fail "README's pool XML has no /mnt/vols target"
vsh pool-create "$LV/pool.xml" >/dev/null
vsh vol-list vdiskd >"$T/vols"
for v in vm1 vm2; do
    grep -q "^ *$v  *$VD_MNT/$v\$" "$T/vols" || fail "pool lists no $v: $(cat "$T/vols")"
    vsh vol-info --pool vdiskd "$v" --bytes >"$T/volinfo"
    cap=$(awk '/^Capacity:/ {print $2}' "$T/volinfo")
    alloc=$(awk '/^Allocation:/ {print $2}' "$T/volinfo")
    size=$(vol_field "$v" size)
    allocated=$(json_get allocated)
    echo "libvirt: pool $v capacity $cap allocation $alloc; API size $size allocated $allocated"
    [ "$cap" = "$size" ] || fail "pool capacity of $v is $cap, the API says $size"
    [ "$alloc" = "$allocated" ] || fail "pool allocation of $v is $alloc, the API says $allocated"
    [ "$alloc" -lt "$cap" ] || fail "pool shows $v fully allocated ($alloc of $cap)"
done
# libvirt's pool figures are the statfs of its target: the mount's must be
# the data directory's file system (capacity f_blocks, available f_bfree).
vsh pool-info vdiskd --bytes >"$T/poolinfo"
pcap=$(awk '/^Capacity:/ {print $2}' "$T/poolinfo")
pavail=$(awk '/^Available:/ {print $2}' "$T/poolinfo")
read -r fcap ffree < <(python3 -c 'import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_blocks*s.f_frsize, s.f_bfree*s.f_frsize)' "$VD_DATA")
echo "libvirt: pool capacity $pcap available $pavail; data directory's file system $fcap, free $ffree"
[ "$pcap" = "$fcap" ] || fail "pool capacity $pcap, the data directory's file system has $fcap"
# Others write on the same file system meanwhile: 1 GiB or 5 % apart at most.
python3 -c 'import sys; a,b=map(int,sys.argv[1:]); sys.exit(abs(a-b) > max(1<<30, b//20))' \
    "$pavail" "$ffree" || fail "pool available $pavail, the data directory's file system has $ffree free"
vsh pool-destroy vdiskd >/dev/null

# ---- virsh destroy in the middle of the guest's writes -------------------------
libvirt_domain_xml vm1 "$VD_MNT/vm1" busy "$SEED" "$BYTE" >"$LV/vm1-busy.xml"
rm -f "$LV/guest/vm1.serial"
libvirt_guard_domain vm1
vsh create "$LV/vm1-busy.xml" >/dev/null
for ((i = 0; i < 900; i++)); do
    grep -q '^VDGUEST: busy' "$LV/guest/vm1.serial" 2>/dev/null && break
    [ "$(virsh -c "$LV_URI" domstate vm1 2>/dev/null)" = running ] ||
        fail "busy guest stopped: $(tail -n 20 "$LV/guest/vm1.serial")"
    sleep 0.2
done
grep -q '^VDGUEST: busy' "$LV/guest/vm1.serial" || fail "busy guest did not start writing in 180 s"
w0=$(vol_field vm1 stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["writes"])')
sleep 1
api GET /volumes/vm1
opens=$(json_get open_count)
w1=$(json_get stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["writes"])')
[ "$opens" -ge 1 ] || fail "open_count is $opens while the domain runs"
[ "$w1" -gt "$w0" ] || fail "no writes reached vm1 in a second of the busy guest ($w0 -> $w1)"
echo "libvirt: busy guest: open_count $opens, writes $w0 -> $w1; virsh destroy"
vsh destroy vm1 >/dev/null
for ((i = 0; i < 50; i++)); do
    opens=$(vol_field vm1 open_count)
    [ "$opens" = 0 ] && break
    sleep 0.2
done
[ "$opens" = 0 ] || fail "open_count is $opens 10 s after virsh destroy"
[ "$(vol_field vm1 uid)" = 0 ] || fail "after virsh destroy vm1 belongs to uid $(json_get uid)"
qio_ro "$VD_MNT/vm1" "read -P $BYTE 32M 1M" >"$T/qio.out" 2>&1 ||
    fail "vm1 after virsh destroy: $(cat "$T/qio.out")"
# The daemon stops cleanly after all that (flush, unmount, exit 0).
stop_daemon
echo "libvirt: ok ($FMT)"
