#!/bin/bash
# fuse_holes.sh — the holes of a volume and of a snapshot view show through
# the mount: lseek(SEEK_DATA/SEEK_HOLE) and qemu-img map report what the
# image holds (a qcow2 with a backing file and a zero cluster, a raw
# file, an NBD server's block status), so qemu-img convert, cp
# --sparse=always and fallocate -d skip the rest.
. "$(dirname "$0")/../functions.sh" || exit 1

G=$((1 << 30))
mkdir -p "$T/imp"
cd "$T/imp" || fail "cd"
# Data at 1G (1M), at 3G (64k), backing data at 2G (128k) of which the
# first 64k are overwritten by a zero cluster.
qemu-img create -q -f qcow2 base.qcow2 4G
qemu-io -f qcow2 -c 'write -q -P 0x11 2G 128k' base.qcow2 || fail "base"
qemu-img create -q -f qcow2 -b "$T/imp/base.qcow2" -F qcow2 top.qcow2 4G
qemu-io -f qcow2 -c 'write -q -P 0x22 1G 1M' -c 'write -q -z 2G 64k' \
    -c 'write -q -P 0x23 3G 64k' top.qcow2 || fail "top"
qemu-img convert -O raw top.qcow2 "$T/expect.raw"
cd "$T" || fail "cd"

# data_extents FILE [qemu-img map flags] — "offset length" per merged run
# that qemu-img map reports as data.
data_extents() {
    local f=$1
    shift
    qemu-img map --output=json "$@" "$f" | python3 -c '
import json, sys
runs = []
for e in json.load(sys.stdin):
    if not e["data"]:
        continue
    if runs and runs[-1][0] + runs[-1][1] == e["start"]:
        runs[-1][1] += e["length"]
    else:
        runs.append([e["start"], e["length"]])
for s, l in runs:
    print(s, l)'
}

# An NBD server that reports its holes (nbdkit's memory plugin is sparse).
mkdir -p "$T/socks"
SOCK=$T/socks/nbd.sock
nbdkit --exit-with-parent -f -U "$SOCK" memory 1G &
on_exit "kill -9 $!"
for ((i = 0; i < 100; i++)); do
    [ -S "$SOCK" ] && break
    sleep 0.05
done
[ -S "$SOCK" ] || fail "nbdkit did not start"

start_daemon --import-dir "$T/imp" --nbd-socket-dir "$T/socks"
api POST /volumes "{\"name\":\"q\",\"import\":{\"path\":\"$T/imp/top.qcow2\"}}"
expect_status 201
F=$VD_MNT/q

# --- qemu-img map through the mount agrees with qemu's reading of the image
printf '%s\n' "$G 1048576" "$((2 * G + 65536)) 65536" "$((3 * G)) 65536" \
    >want
data_extents imp/top.qcow2 -f qcow2 >qemu_map
diff want qemu_map || fail "test premise: qemu-img map of the image (above)"
data_extents "$F" -f raw >got || fail "qemu-img map through the mount"
diff want got || fail "map through the mount (above: want, got)"

# --- lseek itself, including the ends of the file
python3 - "$F" $G <<'PY' || fail "lseek on the volume file"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
G = int(sys.argv[2])
size = 4 * G
def seek(off, how):
    try:
        return os.lseek(fd, off, how)
    except OSError as e:
        return -e.errno
D, H = os.SEEK_DATA, os.SEEK_HOLE
checks = [
    (0, D, G), (G, D, G), (G + 4096, D, G + 4096), (0, H, 0),
    (G, H, G + (1 << 20)), (G + (1 << 20), D, 2 * G + 65536),
    (2 * G, D, 2 * G + 65536), (2 * G + 65536, H, 2 * G + 131072),
    (3 * G, H, 3 * G + 65536), (3 * G + 65536, D, -errno.ENXIO),
    (3 * G + 65536, H, 3 * G + 65536), (size - 1, H, size - 1),
    (size, D, -errno.ENXIO), (size, H, -errno.ENXIO),
]
for off, how, want in checks:
    got = seek(off, how)
    assert got == want, f"lseek({off}, {'DATA' if how == D else 'HOLE'}) = {got}, want {want}"
PY

# --- convert skips the holes: what it reads through the file is about the
# data, and it takes about as long as converting the image itself.
api GET /volumes/q
r0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["bytes_read"])' "$T/body")
qemu-img convert -O raw "$F" got.raw || fail "convert through the mount"
qemu-img compare -q -f raw -F raw expect.raw got.raw || fail "converted contents differ"
api GET /volumes/q
r1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["bytes_read"])' "$T/body")
[ $((r1 - r0)) -le $((8 << 20)) ] ||
    fail "convert read $((r1 - r0)) bytes through the mount for 1.1 MiB of data"
# Best of three each, so a busy machine does not decide.
best() {
    local b=999 i t0 t1
    for i in 1 2 3; do
        rm -f "$T/t.raw"
        t0=$(date +%s%N)
        "$@" || fail "$*"
        t1=$(date +%s%N)
        b=$(python3 -c "print(min($b, ($t1 - $t0) / 1e9))")
    done
    echo "$b"
}
t_img=$(best qemu-img convert -O raw imp/top.qcow2 "$T/t.raw")
t_mnt=$(best qemu-img convert -O raw "$F" "$T/t.raw")
echo "convert of a 4 GiB volume holding 1.1 MiB: ${t_mnt}s through the mount, ${t_img}s from the image"
python3 -c "import sys; sys.exit(0 if $t_mnt <= 10 * $t_img + 0.05 else 1)" ||
    fail "convert through the mount took ${t_mnt}s, from the image ${t_img}s"

# --- a raw volume: the holes of its host file
api POST /volumes '{"name":"r","size":"1G","format":"raw"}'
expect_status 201
qio "$VD_MNT/r" 'write -q -P 0x33 512M 1M' >/dev/null || fail "write raw"
echo "536870912 1048576" >want_r
data_extents "$VD_MNT/r" -f raw >got_r || fail "map raw"
diff want_r got_r || fail "map of the raw volume (above: want, got)"
# fallocate -d finds the data with SEEK_DATA and punches what reads zero.
RIMG=$(json_get image)
qio "$VD_MNT/r" 'write -q -P 0 600M 1M' >/dev/null || fail "write zeroes"
before=$(stat -c %b "$RIMG")
fallocate -d "$VD_MNT/r" || fail "fallocate -d"
data_extents "$VD_MNT/r" -f raw >got_r || fail "map raw after fallocate -d"
diff want_r got_r || fail "map after fallocate -d (above: want, got)"
[ "$(stat -c %b "$RIMG")" -le $((before - 2048)) ] ||
    fail "fallocate -d freed nothing: $before -> $(stat -c %b "$RIMG") blocks"

# --- an NBD volume: the server's block status
api POST /volumes "{\"name\":\"n\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$SOCK\"}}"
expect_status 201
qio "$VD_MNT/n" 'write -q -P 0x44 256M 1M' >/dev/null || fail "write nbd"
echo "268435456 1048576" >want_n
data_extents "$VD_MNT/n" -f raw >got_n || fail "map nbd"
diff want_n got_n || fail "map of the NBD volume (above: want, got)"

# --- a snapshot view: map, cp --sparse=always, and its st_blocks
api POST /volumes/q/snapshots '{"name":"s1"}'
expect_status 201
V=$VD_MNT/.snapshots/q/s1
data_extents "$V" -f raw >got_v || fail "map of the view"
diff want got_v || fail "map of the snapshot view (above: want, got)"
[ $(($(stat -c %b "$V") * 512)) = $((1048576 + 65536 + 65536)) ] ||
    fail "view st_blocks $(stat -c %b "$V") for 1.1 MiB of data"
cp --sparse=always "$V" view.raw || fail "cp of the view"
qemu-img compare -q -f raw -F raw expect.raw view.raw || fail "copy of the view differs"
[ "$(du -k view.raw | cut -f1)" -le 4096 ] ||
    fail "copy of the view is not sparse: $(du -k view.raw)"
stop_daemon
echo "fuse_holes: ok"
