#!/bin/bash
# api_hostile.sh — a hostile-input pass over the whole API
# (tests/tools/api_hostile.py): request lines, headers, chunked bodies,
# JSON for every field of every mutating route, and imports of every kind
# of file (FIFO, socket, device, directory, symlinks, empty, tiny, huge,
# and damaged qcow2 headers). No input may get a 5xx, hang, or get two
# answers; afterwards the daemon is healthy, the catalog and the mount
# agree, every qcow2 image it holds passes `qemu-img check`, and SIGTERM
# still stops it cleanly.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

IMP=$T/imports
SOCKS=$T/socks
mkdir -p "$IMP" "$SOCKS"

# ---- files of every type to import ----------------------------------------
: >"$IMP/empty"
printf x >"$IMP/one-byte"
head -c 1000 /dev/urandom >"$IMP/thousand-bytes"
truncate -s 1M "$IMP/raw-1m"
truncate -s 16T "$IMP/raw-16t" 2>/dev/null || truncate -s 1T "$IMP/raw-16t"
mkdir "$IMP/a-directory"
mkfifo "$IMP/a-fifo"
mknod "$IMP/a-chardev" c 1 3
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$IMP/a-socket"
ln -s /dev/zero "$IMP/link-dev-zero"
ln -s /etc/passwd "$IMP/link-outside"
ln -s "$IMP/loop-b" "$IMP/loop-a"
ln -s "$IMP/loop-a" "$IMP/loop-b"
ln -s nosuch "$IMP/link-dangling"
qemu-img create -q -f qcow2 "$IMP/good.qcow2" 16M
qemu-img create -q -f qcow2 -u -b /etc/passwd -F raw "$IMP/backing-outside.qcow2" 16M
qemu-img create -q -f qcow2 -u -b "$IMP/cycle-b.qcow2" -F qcow2 "$IMP/cycle-a.qcow2" 16M
qemu-img create -q -f qcow2 -u -b "$IMP/cycle-a.qcow2" -F qcow2 "$IMP/cycle-b.qcow2" 16M
qemu-img create -q -f qcow2 -u -b "$IMP/a-fifo" -F raw "$IMP/backing-fifo.qcow2" 16M
qemu-img create -q -f qcow2 -u -b "$IMP/a-directory" -F raw "$IMP/backing-dir.qcow2" 16M
qemu-img create -q -f qcow2 -u -b "$IMP/chain-0.qcow2" -F qcow2 "$IMP/chain-1.qcow2" 16M
qemu-img create -q -f qcow2 "$IMP/chain-0.qcow2" 16M
for i in $(seq 2 20); do
    qemu-img create -q -f qcow2 -u -b "$IMP/chain-$((i - 1)).qcow2" -F qcow2 \
        "$IMP/chain-$i.qcow2" 16M
done
# Damaged headers: each file is good.qcow2 with one field overwritten
# (big-endian, at the qcow2 header offset of the field).
python3 - "$IMP" <<'PY'
import os, shutil, struct, sys
d = sys.argv[1]
good = open(os.path.join(d, "good.qcow2"), "rb").read()
fields = {  # name: (offset, struct format, value)
    "version-1": (4, ">I", 1), "version-9": (4, ">I", 9),
    "backing-off-eof": (8, ">Q", 1 << 40), "backing-size-huge": (16, ">I", 1 << 30),
    "cluster-bits-8": (20, ">I", 8), "cluster-bits-31": (20, ">I", 31),
    "size-huge": (24, ">Q", 1 << 62), "crypt-aes": (32, ">I", 1),
    "l1-size-huge": (36, ">I", 0xFFFFFFFF), "l1-off-eof": (40, ">Q", 1 << 40),
    "l1-off-unaligned": (40, ">Q", 12345), "rt-off-eof": (48, ">Q", 1 << 40),
    "rt-clusters-huge": (56, ">I", 0xFFFFFFFF), "snapshots-huge": (60, ">I", 1 << 20),
    "snapshots-off-eof": (64, ">Q", 1 << 40), "incompatible-bits": (72, ">Q", ~0 & (2**64 - 1)),
    "refcount-order-7": (96, ">I", 7), "header-length-short": (100, ">I", 8),
}
for name, (off, fmt, val) in fields.items():
    b = bytearray(good)
    struct.pack_into(fmt, b, off, val)
    open(os.path.join(d, "bad-%s.qcow2" % name), "wb").write(b)
open(os.path.join(d, "truncated.qcow2"), "wb").write(good[:100])
open(os.path.join(d, "magic-only.qcow2"), "wb").write(b"QFI\xfb")
PY

start_daemon --import-dir "$IMP" --nbd-socket-dir "$SOCKS"

api POST /volumes '{"name":"base","size":"16M"}'
expect_status 201
api POST /volumes/base/snapshots '{"name":"s1"}'
expect_status 201
api POST /volumes '{"name":"c1","base":"base"}'
expect_status 201
api POST /volumes '{"name":"r1","size":"8M","format":"raw"}'
expect_status 201

python3 "$(dirname "$0")/../tools/api_hostile.py" "$VD_PORT" "$IMP" "$VD_DATA" "$SOCKS" ||
    fail "hostile inputs got wrong answers (above)"

# The catalog and the mount agree: every listed volume has its file, and
# nothing else is in the mount's root.
api GET /volumes
expect_status 200
python3 - "$T/body" "$VD_MNT" <<'PY' || fail "the catalog and the mount disagree"
import json, os, sys
names = sorted(v["name"] for v in json.load(open(sys.argv[1]))["volumes"])
files = sorted(os.listdir(sys.argv[2]))
assert names == files, (names, files)
PY
# Every image in the data directory belongs to a listed volume, and every
# qcow2 image is clean.
api GET /volumes
python3 - "$T/body" "$VD_DATA/images" <<'PY' || fail "images left behind"
import json, os, sys
imgs = {os.path.basename(v["image"]) for v in json.load(open(sys.argv[1]))["volumes"]
        if v.get("image")}
extra = [f for f in os.listdir(sys.argv[2]) if f not in imgs]
assert not extra, extra
PY
for img in "$VD_DATA"/images/*.qcow2; do
    [ -e "$img" ] || continue
    qemu-img check -U -q "$img" || fail "qemu-img check $img after the hostile pass"
done
stop_daemon
echo "api_hostile: ok"
