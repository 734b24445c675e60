#!/bin/bash
# libvirt_volops.sh — libvirt's volume operations on the README's `dir`
# pool are volume operations of the daemon (started on its defaults), made
# through file operations on the mount: vol-create-as (open O_CREAT, then
# truncate or allocation), vol-resize (truncate), blockresize of a running
# guest's disk (QEMU's truncate, as the QEMU user that dynamic ownership
# made the owner) and vol-delete (unlink); the API sees each at once.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/guest.sh"
. "$(dirname "$0")/../libvirt/libvirt.sh"

MIB=1048576
libvirt_skip_unless_usable
guest_setup
start_daemon
libvirt_start
libvirt_guest_files

vol_field() {   # NAME FIELD
    api GET "/volumes/$1"
    expect_status 200
    json_get "$2"
}

readme_xml pool | sed "s|<path>/mnt/vols</path>|<path>$VD_MNT</path>|" >"$LV/pool.xml"
grep -q "<path>$VD_MNT</path>" "$LV/pool.xml" || fail "README's pool XML has no /mnt/vols target"
vsh pool-create "$LV/pool.xml" >/dev/null

# ---- vol-create-as: sparse, and fully allocated (libvirt fills it) -----------
vsh vol-create-as vdiskd nv1 64M --format raw --allocation 0 >/dev/null
[ "$(vol_field nv1 size)" = $((64 * MIB)) ] || fail "vol-create-as nv1 64M: API size $(json_get size)"
[ "$(json_get state)" = ready ] || fail "vol-create-as nv1: API state $(json_get state)"
vsh vol-create-as vdiskd nv2 8M --format raw >/dev/null
[ "$(vol_field nv2 size)" = $((8 * MIB)) ] || fail "vol-create-as nv2 8M: API size $(json_get size)"
vsh vol-info --pool vdiskd nv1 --bytes >"$T/volinfo"
cap=$(awk '/^Capacity:/ {print $2}' "$T/volinfo")
[ "$cap" = $((64 * MIB)) ] || fail "pool capacity of nv1 is $cap after vol-create-as 64M"
echo "libvirt: vol-create-as: nv1 $(json_get format) 64 MiB, nv2 8 MiB"

# ---- vol-resize ----------------------------------------------------------------
vsh vol-resize --pool vdiskd nv1 96M >/dev/null
[ "$(vol_field nv1 size)" = $((96 * MIB)) ] || fail "vol-resize nv1 96M: API size $(json_get size)"
if virsh -q -c "$LV_URI" vol-resize --pool vdiskd nv1 32M --shrink >"$T/shrink" 2>&1; then
    fail "vol-resize --shrink succeeded: $(cat "$T/shrink")"
fi
[ "$(vol_field nv1 size)" = $((96 * MIB)) ] || fail "a refused shrink changed nv1 to $(json_get size)"

# ---- blockresize of a running guest's disk ---------------------------------------
SEED=lvo-$RANDOM
libvirt_domain_xml nv1 "$VD_MNT/nv1" busy "$SEED" 1 >"$LV/nv1.xml"
libvirt_guard_domain nv1
vsh create "$LV/nv1.xml" >/dev/null
for ((i = 0; i < 900; i++)); do
    grep -q '^VDGUEST: busy' "$LV/guest/nv1.serial" 2>/dev/null && break
    [ "$(virsh -c "$LV_URI" domstate nv1 2>/dev/null)" = running ] ||
        fail "guest on nv1 stopped: $(tail -n 20 "$LV/guest/nv1.serial")"
    sleep 0.2
done
grep -q '^VDGUEST: busy' "$LV/guest/nv1.serial" || fail "guest on nv1 did not start writing in 180 s"
vsh blockresize nv1 vda 128M >/dev/null
[ "$(vol_field nv1 size)" = $((128 * MIB)) ] || fail "blockresize nv1 128M: API size $(json_get size)"
vsh domblkinfo nv1 vda >"$T/blkinfo"
grep -q "^Capacity: *$((128 * MIB))\$" "$T/blkinfo" || fail "QEMU sees after blockresize: $(cat "$T/blkinfo")"
vsh destroy nv1 >/dev/null
echo "libvirt: vol-resize 96 MiB, blockresize 128 MiB"

# ---- vol-delete -----------------------------------------------------------------
for ((i = 0; i < 50; i++)); do
    [ "$(vol_field nv1 open_count)" = 0 ] && break
    sleep 0.2
done
vsh vol-delete --pool vdiskd nv1 >/dev/null
api GET /volumes/nv1
expect_status 404
[ ! -e "$VD_MNT/nv1" ] || fail "$VD_MNT/nv1 still there after vol-delete"
vsh vol-delete --pool vdiskd nv2 >/dev/null
api GET /volumes/nv2
expect_status 404
vsh pool-refresh vdiskd >/dev/null
vsh vol-list vdiskd >"$T/vols"
[ ! -s "$T/vols" ] || fail "pool still lists volumes after vol-delete: $(cat "$T/vols")"
# The daemon stops cleanly after all that (flush, unmount, exit 0).
stop_daemon
echo "libvirt_volops: ok"
