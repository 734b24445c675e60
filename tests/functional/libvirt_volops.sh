#!/bin/bash
# libvirt_volops.sh — libvirt's volume operations on the README's `dir`
# pool are volume operations of the daemon (started on its defaults), made
# through file operations on the mount: vol-create-as (open O_CREAT, then
# truncate or allocation), vol-resize (truncate; fallocate past the end
# with --allocate), blockresize of a running
# guest's disk (QEMU's truncate, as the QEMU user that dynamic ownership
# made the owner), vol-clone (create, truncate, copy with seeks over zeroes),
# undefine --remove-all-storage and vol-delete (unlink); the API sees each
# at once.
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

# ---- vol-clone: a sparse source (nv1) and a fully allocated one (nv2) --------
# Data at the start, in the middle and in the last sector, with holes
# between; the pool learns the sources' allocation from a refresh.
head -c $MIB /dev/urandom >"$T/pat"
for v in nv1 nv2; do
    dd if="$T/pat" of="$VD_MNT/$v" bs=64K count=4 conv=notrunc status=none
    dd if="$T/pat" of="$VD_MNT/$v" bs=64K seek=64 conv=notrunc status=none
    sz=$(stat -c %s "$VD_MNT/$v")
    dd if="$T/pat" of="$VD_MNT/$v" bs=512 count=1 seek=$((sz / 512 - 1)) conv=notrunc status=none
done
vsh pool-refresh vdiskd >/dev/null
for v in nv1 nv2; do
    vsh vol-clone --pool vdiskd "$v" "${v}c" >/dev/null
    [ "$(vol_field "${v}c" size)" = "$(vol_field "$v" size)" ] ||
        fail "vol-clone $v: API size of ${v}c $(json_get size)"
    [ "$(json_get state)" = ready ] || fail "vol-clone $v: API state $(json_get state)"
    cmp "$VD_MNT/$v" "$VD_MNT/${v}c" || fail "vol-clone $v: ${v}c reads other data"
done
# A volume written full allocates more than its size (the image's metadata),
# and vol-clone would fallocate the clone to that: the README's
# vol-create-from with allocation 0 keeps the source's size.
for ((i = 0; i < 8; i++)); do cat "$T/pat"; done >"$T/full"
dd if="$T/full" of="$VD_MNT/nv2" bs=1M conv=notrunc status=none
vsh pool-refresh vdiskd >/dev/null
vsh vol-info --pool vdiskd nv2 --bytes >"$T/volinfo"
alloc=$(awk '/^Allocation:/ {print $2}' "$T/volinfo")
[ "$alloc" -gt $((8 * MIB)) ] || fail "nv2 written full allocates only $alloc bytes"
readme_xml clonevol | sed 's|<name>v2</name>|<name>nv2f</name>|' >"$LV/nv2f.xml"
grep -q '<name>nv2f</name>' "$LV/nv2f.xml" || fail "README's clonevol XML does not name v2"
vsh vol-create-from vdiskd "$LV/nv2f.xml" --inputpool vdiskd nv2 >/dev/null
[ "$(vol_field nv2f size)" = $((8 * MIB)) ] || fail "vol-create-from nv2: API size of nv2f $(json_get size)"
cmp "$VD_MNT/nv2" "$VD_MNT/nv2f" || fail "vol-create-from nv2: nv2f reads other data"
echo "libvirt: vol-clone: nv1c (sparse source) and nv2c read back their sources' data;" \
    "nv2f, from nv2 written full, has its size"

# ---- undefine --remove-all-storage of a defined domain on the pool ------------
libvirt_domain_xml nv2d "$VD_MNT/nv2c" busy lvo-undef 1 >"$LV/nv2d.xml"
vsh define "$LV/nv2d.xml" >/dev/null
vsh undefine nv2d --remove-all-storage >"$T/undefine"
api GET /volumes/nv2c
expect_status 404
[ ! -e "$VD_MNT/nv2c" ] || fail "$VD_MNT/nv2c still there after undefine --remove-all-storage"
virsh -q -c "$LV_URI" dominfo nv2d >/dev/null 2>&1 && fail "nv2d still defined after undefine"
echo "libvirt: undefine --remove-all-storage deleted nv2c"

# ---- vol-resize ----------------------------------------------------------------
vsh vol-resize --pool vdiskd nv1 96M >/dev/null
[ "$(vol_field nv1 size)" = $((96 * MIB)) ] || fail "vol-resize nv1 96M: API size $(json_get size)"
if virsh -q -c "$LV_URI" vol-resize --pool vdiskd nv1 32M --shrink >"$T/shrink" 2>&1; then
    fail "vol-resize --shrink succeeded: $(cat "$T/shrink")"
fi
[ "$(vol_field nv1 size)" = $((96 * MIB)) ] || fail "a refused shrink changed nv1 to $(json_get size)"
# --allocate: fallocate from the old end to the new one, then truncate.
vsh vol-resize --pool vdiskd nv1 112M --allocate >/dev/null
[ "$(vol_field nv1 size)" = $((112 * MIB)) ] || fail "vol-resize --allocate nv1 112M: API size $(json_get size)"
cmp -n $MIB "$VD_MNT/nv1" "$VD_MNT/nv1c" || fail "vol-resize --allocate changed nv1's data"

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
echo "libvirt: vol-resize 96 MiB, --allocate 112 MiB, blockresize 128 MiB"

# ---- vol-delete -----------------------------------------------------------------
for ((i = 0; i < 50; i++)); do
    [ "$(vol_field nv1 open_count)" = 0 ] && break
    sleep 0.2
done
vsh vol-delete --pool vdiskd nv1 >/dev/null
api GET /volumes/nv1
expect_status 404
[ ! -e "$VD_MNT/nv1" ] || fail "$VD_MNT/nv1 still there after vol-delete"
for v in nv2 nv1c nv2f; do
    vsh vol-delete --pool vdiskd $v >/dev/null
    api GET /volumes/$v
    expect_status 404
done
vsh pool-refresh vdiskd >/dev/null
vsh vol-list vdiskd >"$T/vols"
[ ! -s "$T/vols" ] || fail "pool still lists volumes after vol-delete: $(cat "$T/vols")"
# The daemon stops cleanly after all that (flush, unmount, exit 0).
stop_daemon
echo "libvirt_volops: ok"
