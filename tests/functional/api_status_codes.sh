#!/bin/bash
# api_status_codes.sh — bad input and the host's conditions get the 4xx
# (or 507) that says what happened, never a 500:
#  - a linked-clone base refuses PATCH, snapshot create, delete and revert
#    with 409 naming its clones (as DELETE does);
#  - an import whose backing chain loops or runs deeper than 16 images: 422;
#  - importing a directory: 422;
#  - a raw size the host file system cannot hold (EFBIG, here from the
#    daemon's RLIMIT_FSIZE): 422 saying so;
#  - an import whose backing file another process holds locked: 409;
#  - the catalog's file system full (SQLITE_FULL): 507.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../api_functions.sh" || exit 1
IMP=$T/import
mkdir -p "$IMP"

# The daemon gets a 1 GiB file size limit, and ignores SIGXFSZ so that a
# file over it fails with EFBIG instead of killing it.
trap '' XFSZ
ulimit -S -f $((1 << 20))
start_daemon --import-dir "$IMP"
ulimit -S -f unlimited
trap - XFSZ

# --- linked-clone base ---
api POST /volumes '{"name":"base","size":16777216,"format":"qcow2"}'
expect_status 201
api POST /volumes/base/snapshots '{"name":"s1"}'
expect_status 201
api POST /volumes '{"name":"c1","base":"base"}'
expect_status 201
api POST /volumes '{"name":"c2","base":"base"}'
expect_status 201
api PATCH /volumes/base '{"size":33554432}'
expect_problem 409 "c1, c2"
api POST /volumes/base/snapshots '{"name":"s2"}'
expect_problem 409 "c1, c2"
api DELETE /volumes/base/snapshots/s1
expect_problem 409 "c1, c2"
api POST /volumes/base/snapshots/s1/revert '{}'
expect_problem 409 "c1, c2"
api DELETE /volumes/base
expect_problem 409 "c1, c2"
# Nothing changed, and an unchanged size is still fine.
api GET /volumes/base
[ "$(json_get size)" = 16777216 ] || fail "base resized: $API_BODY"
api PATCH /volumes/base '{"size":16777216}'
expect_status 200
api GET /volumes/base/snapshots
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["snapshots"]))' "$T/body")" = 1 ] ||
    fail "base snapshots changed: $API_BODY"
# Without clones, the same requests work.
api DELETE /volumes/c1
expect_status 204
api DELETE /volumes/c2
expect_status 204
api POST /volumes/base/snapshots/s1/revert '{}'
expect_status 200
api PATCH /volumes/base '{"size":33554432}'
expect_status 200

# --- backing chains: a loop, and 20 images deep ---
qemu-img create -q -f qcow2 "$IMP/a.qcow2" 1M
qemu-img create -q -f qcow2 -u -b a.qcow2 -F qcow2 "$IMP/b.qcow2" 1M
qemu-img rebase -q -u -b b.qcow2 -F qcow2 "$IMP/a.qcow2"
api POST /volumes "{\"name\":\"loop\",\"import\":{\"path\":\"$IMP/b.qcow2\"}}"
expect_problem 422 "backing chain"
qemu-img create -q -f qcow2 "$IMP/d0.qcow2" 1M
for i in $(seq 1 20); do
    qemu-img create -q -f qcow2 -u -b "d$((i - 1)).qcow2" -F qcow2 "$IMP/d$i.qcow2" 1M
done
api POST /volumes "{\"name\":\"deep\",\"import\":{\"path\":\"$IMP/d20.qcow2\"}}"
expect_problem 422 "16"
# 16 deep is fine.
api POST /volumes "{\"name\":\"deep16\",\"import\":{\"path\":\"$IMP/d15.qcow2\"}}"
expect_status 201

# --- a directory ---
mkdir "$IMP/dir"
api POST /volumes "{\"name\":\"dir\",\"import\":{\"path\":\"$IMP/dir\"}}"
expect_problem 422 "directory"

# --- EFBIG: 2 GiB over the daemon's 1 GiB file size limit ---
api POST /volumes '{"name":"huge","size":"2G","format":"raw"}'
expect_problem 422 "cannot hold a file of 2147483648 bytes"
api GET /volumes/huge
expect_status 404
kill -0 "$VD_PID" || fail "daemon died of SIGXFSZ"

# --- a backing file another process holds for writing ---
qemu-img create -q -f qcow2 "$IMP/lb.qcow2" 1M
qemu-img create -q -f qcow2 -b lb.qcow2 -F qcow2 "$IMP/lt.qcow2" 1M
mkfifo "$T/qio.in"
qemu-io -f qcow2 "$IMP/lb.qcow2" <"$T/qio.in" >/dev/null 2>&1 &
QIO=$!
exec {qin}>"$T/qio.in"
on_exit "kill $QIO"
for ((i = 0; i < 300; i++)); do
    qemu-img info "$IMP/lb.qcow2" >/dev/null 2>&1 || break
    sleep 0.1
done
qemu-img info "$IMP/lb.qcow2" >/dev/null 2>&1 && fail "qemu-io did not lock lb.qcow2"
api POST /volumes "{\"name\":\"locked\",\"import\":{\"path\":\"$IMP/lt.qcow2\"}}"
expect_problem 409 "in use by another process"
exec {qin}>&-
wait "$QIO" 2>/dev/null
api POST /volumes "{\"name\":\"locked\",\"import\":{\"path\":\"$IMP/lt.qcow2\"}}"
expect_status 201
stop_daemon

# --- the catalog's file system is full: 507 ---
VD_DATA=$T/small
mkdir -p "$VD_DATA"
mount -t tmpfs -o size=4m tmpfs "$VD_DATA" || fail "cannot mount a tmpfs"
on_exit "umount -l '$VD_DATA'"
unset VD_MNT
start_daemon
api POST /volumes '{"name":"r1","size":16777216,"format":"raw"}'
expect_status 201
# Fill the file system; raw volumes are sparse, so only the catalog
# needs room for a create.
head -c 8M /dev/zero >"$VD_DATA/filler" 2>/dev/null
for i in $(seq 2 40); do
    api POST /volumes "{\"name\":\"r$i\",\"size\":16777216,\"format\":\"raw\"}"
    [ "$API_STATUS" = 201 ] || break
done
expect_problem 507 "catalog"
rm -f "$VD_DATA/filler"
api POST /volumes '{"name":"after","size":16777216,"format":"raw"}'
expect_status 201
stop_daemon
echo "api_status_codes: ok"
