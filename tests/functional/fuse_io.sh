#!/bin/bash
# fuse_io.sh — a raw volume's file on the mount, driven the way QEMU drives
# it (io_uring, O_DIRECT): pattern I/O at 512 B and 1 MiB reaching the image,
# flush, discard and zeroing reading back zeroes, the end of the volume, what
# the file refuses (truncate, growing), listing and attributes, and the
# file mode deciding whether another user may open it.
. "$(dirname "$0")/../functions.sh" || exit 1

SIZE=67108864
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)

# qcheck FILE CMD... — qemu-io commands that must all succeed.
qcheck() {
    qio "$@" >"$T/qio.out" 2>&1 || fail "qemu-io $*: $(cat "$T/qio.out")"
}

chmod 755 "$T"   # let the second user reach the mount
start_daemon --file-mode 0660 --passthrough off
api POST /volumes "{\"name\":\"v1\",\"size\":$SIZE,\"format\":\"raw\"}"
expect_status 201
IMG=$(json_get image)
F=$VD_MNT/v1

# --- the directory and the file's attributes
grep -q "^vdiskd $VD_MNT fuse.vdiskd .*allow_other" /proc/mounts ||
    fail "mount entry: $(grep " $VD_MNT " /proc/mounts)"
[ "$(ls -A "$VD_MNT")" = "v1" ] || fail "listing: $(ls -la "$VD_MNT")"
got=$(stat -c '%s %F %a %u %g %h' "$F")
[ "$got" = "$SIZE regular file 660 0 0 1" ] || fail "stat v1: $got"
[ "$(stat -c %b "$F")" = "$(stat -c %b "$IMG")" ] ||
    fail "st_blocks: $(stat -c %b "$F"), image $(stat -c %b "$IMG")"
[ ! -e "$VD_MNT/nosuch" ] || fail "a file that is no volume exists"

# --- pattern I/O through io_uring + O_DIRECT, 1 MiB and 512-byte requests
qcheck "$F" 'write -P 0xab 0 1M' 'read -P 0xab 0 1M' \
    'write -P 0x11 512 512' 'read -P 0x11 512 512' \
    'read -P 0xab 0 512' 'read -P 0xab 1024 1047552' \
    'write -P 0x22 1049088 3584' 'read -P 0x22 1049088 3584' \
    'aio_write -P 0x33 2M 1M' 'aio_write -P 0x44 3M 1M' 'aio_flush' \
    'read -P 0x33 2M 1M' 'read -P 0x44 3M 1M' \
    'write -P 0xcd 63M 1M' 'read -P 0xcd 63M 1M' 'flush'
# The data is in the image file, not only somewhere in between.
qemu-io -r -U -f raw "$IMG" -c 'read -P 0xab 0 512' -c 'read -P 0x11 512 512' \
    -c 'read -P 0x44 3M 1M' -c 'read -P 0xcd 63M 1M' >"$T/qio.out" 2>&1 ||
    fail "image file does not hold what was written: $(cat "$T/qio.out")"
# No kernel page cache under the file: a buffered reader sees data that
# changed in the image (as after a snapshot revert) without reopening.
python3 - "$F" "$IMG" <<'PY' || fail "buffered reads are served from a stale cache"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.pread(fd, 4, 512) == b"\x11" * 4
assert os.pread(fd, 4096, 63 << 20) == b"\xcd" * 4096
img = os.open(sys.argv[2], os.O_WRONLY)
os.pwrite(img, b"\xee" * 4096, 63 << 20)
os.close(img)
assert os.pread(fd, 4096, 63 << 20) == b"\xee" * 4096
PY
qcheck "$F" 'write -P 0xcd 63M 4k' 

# --- a 1 MiB request reaches the volume whole (max_write, max_pages)
writes() {
    api GET /volumes/v1
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["writes"])' "$T/body"
}
w0=$(writes)
qcheck "$F" 'write -P 0x99 5M 1M'
w1=$(writes)
[ $((w1 - w0)) = 1 ] || fail "a 1 MiB write arrived as $((w1 - w0)) requests"

# --- discard (fallocate punch hole) and write_zeroes read back as zeroes
qcheck "$F" 'write -P 0x55 8M 1M' 'discard 8M 64k' 'read -P 0 8M 64k' \
    'read -P 0x55 8454144 983040' 'write -z 9M 128k' 'read -P 0 9M 128k'
fallocate -p -o $((10 << 20)) -l 4096 "$F" || fail "punch hole refused"
fallocate -z -o $((11 << 20)) -l 4096 "$F" || fail "zero range refused"
fallocate -o 0 -l 4096 "$F" || fail "allocating inside the volume refused"
qcheck "$F" 'read -P 0 10M 4k' 'read -P 0 11M 4k'

# --- the end of the volume: reads stop there, writes fail there
python3 - "$F" "$SIZE" <<'PY' || fail "end-of-volume semantics"
import errno, os, sys
f, size = sys.argv[1], int(sys.argv[2])
fd = os.open(f, os.O_RDWR)
assert os.pread(fd, 4096, size) == b"", "read at EOF must return 0 bytes"
assert len(os.pread(fd, 8192, size - 4096)) == 4096, "read across EOF is short"
for off in (size, size + (1 << 20)):
    try:
        os.pwrite(fd, b"x" * 4096, off)
        raise SystemExit("write at %d succeeded" % off)
    except OSError as e:
        assert e.errno in (errno.ENOSPC, errno.EFBIG), e
assert os.pwrite(fd, b"y" * 8192, size - 4096) == 4096, "write across EOF is short"
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
PY

# --- what a volume file refuses
# (growing by truncate and creating files: fuse_file_ops.sh)
truncate -s 1M "$F" 2>/dev/null && fail "truncate to 1M succeeded"
truncate -s $SIZE "$F" || fail "truncate to the same size refused"
fallocate -n -o $((SIZE - 4096)) -l 8192 "$F" ||
    fail "fallocate --keep-size across the end refused"
dd if=/dev/zero of="$F" bs=4k count=1 2>/dev/null && fail "O_TRUNC open succeeded"
[ "$(stat -c %s "$F")" = "$SIZE" ] || fail "size changed to $(stat -c %s "$F")"
qcheck "$F" 'read -P 0xab 0 512'   # nothing above damaged the data

# --- another user: refused with mode 0660 root:root ...
"${NOBODY[@]}" head -c 1 "$F" >/dev/null 2>"$T/err" &&
    fail "user 65534 could open a 0660 root:root volume"
grep -q "Permission denied" "$T/err" || fail "user 65534: $(cat "$T/err")"
"${NOBODY[@]}" ls "$VD_MNT" >/dev/null || fail "user 65534 cannot list the mount"
stop_daemon

# ... allowed (read and write, through QEMU's path) once chmod made it
# 0666, which a restart keeps (fuse_owner.sh tests ownership in full)
start_daemon --passthrough off
chmod 0666 "$F" || fail "chmod 0666"
stop_daemon
start_daemon --passthrough off
[ "$(stat -c %a "$F")" = "666" ] || fail "mode after restart: $(stat -c %a "$F")"
"${NOBODY[@]}" qemu-io --image-opts \
    "driver=raw,file.driver=file,file.filename=$F,file.aio=io_uring,cache.direct=on" \
    -c 'write -P 0x66 4M 64k' -c 'read -P 0x66 4M 64k' >"$T/qio.out" 2>&1 ||
    fail "user 65534 could not use a 0666 volume: $(cat "$T/qio.out")"
stop_daemon
echo "fuse_io: ok"
