#!/bin/bash
# fuse_statfs.sh — honest sizes on the mount: a volume file's st_blocks is
# its image's host allocation (du, qemu-img info and libvirt's pools read
# it), and statfs of the mount is the data directory's file system
# (df shows its real size, free space and inodes).
. "$(dirname "$0")/../functions.sh" || exit 1

start_daemon
api POST /volumes '{"name":"q","size":"8G","format":"qcow2"}'
expect_status 201
QIMG=$(json_get image)
api POST /volumes '{"name":"r","size":"1G","format":"raw"}'
expect_status 201
RIMG=$(json_get image)
qio "$VD_MNT/q" 'write -q -P 0x11 0 3M' 'write -q -P 0x12 5G 1M' 'flush' \
    >/dev/null || fail "write q"
qio "$VD_MNT/r" 'write -q -P 0x21 100M 2M' 'flush' >/dev/null || fail "write r"

# same_blocks NAME IMAGE — st_blocks of the file equals the image's; the
# file's attributes may be cached for a second after the writes.
same_blocks() {
    local i f i_b
    for ((i = 0; i < 30; i++)); do
        f=$(stat -c %b "$VD_MNT/$1")
        i_b=$(stat -c %b "$2")
        [ "$f" = "$i_b" ] && return 0
        sleep 0.1
    done
    fail "$1: st_blocks $f, image $i_b"
}
same_blocks q "$QIMG"
same_blocks r "$RIMG"
[ "$(stat -c %b "$VD_MNT/r")" -ge $((2 * 2048)) ] ||
    fail "r: st_blocks $(stat -c %b "$VD_MNT/r") below the 2 MiB written"
[ "$(stat -c %b "$VD_MNT/q")" -lt $((64 * 2048)) ] ||
    fail "q: st_blocks $(stat -c %b "$VD_MNT/q") for 4 MiB of data in 8 GiB"
api GET /volumes/q
[ "$(json_get allocated)" = $(($(stat -c %b "$VD_MNT/q") * 512)) ] ||
    fail "allocated $(json_get allocated) is not the file's st_blocks"
# qemu-img info through the mount: the disk size is the image's.
qemu-img info --output=json -f raw "$VD_MNT/q" >info.json || fail "qemu-img info"
python3 - info.json "$(stat -c %b "$QIMG")" <<'PY' || fail "qemu-img info: $(cat info.json)"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["actual-size"] == int(sys.argv[2]) * 512, j["actual-size"]
assert j["virtual-size"] == 8 << 30
PY

# statfs: the data directory's file system. Totals match exactly; free
# space and inodes within 2% (others write to the same file system).
read -r m_bs m_b m_f m_a m_c m_d <<<"$(stat -f -c '%S %b %f %a %c %d' "$VD_MNT")"
read -r d_bs d_b d_f d_a d_c d_d <<<"$(stat -f -c '%S %b %f %a %c %d' "$VD_DATA")"
[ "$m_bs $m_b $m_c" = "$d_bs $d_b $d_c" ] ||
    fail "statfs totals: mount '$m_bs $m_b $m_c', data dir '$d_bs $d_b $d_c'"
near() { # near A B TOTAL — |A - B| <= 2% of TOTAL
    python3 -c "import sys; sys.exit(0 if abs($1 - $2) <= 0.02 * $3 else 1)"
}
near "$m_f" "$d_f" "$d_b" || fail "free blocks: mount $m_f, data dir $d_f"
near "$m_a" "$d_a" "$d_b" || fail "available blocks: mount $m_a, data dir $d_a"
near "$m_d" "$d_d" "$d_c" || fail "free inodes: mount $m_d, data dir $d_d"
[ "$m_a" -gt 0 ] || fail "the mount says no space is available"
# df reads the same.
read -r m_size m_avail <<<"$(df -B1 --output=size,avail "$VD_MNT" | tail -1)"
read -r d_size d_avail <<<"$(df -B1 --output=size,avail "$VD_DATA" | tail -1)"
[ "$m_size" = "$d_size" ] || fail "df size: mount $m_size, data dir $d_size"
near "$m_avail" "$d_avail" "$d_size" || fail "df avail: mount $m_avail, data dir $d_avail"
stop_daemon
echo "fuse_statfs: ok"
