#!/bin/bash
# import.sh — POST /volumes with "import" copies an image from an allowed
# directory, probes its format from the content (never the file name), and
# serves it; paths outside --import-dir (directly, by "..", or through a
# symlink) get 403 and create nothing; without --import-dir every import
# is refused.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"
IMP=$T/import
OUT=$T/outside
mkdir -p "$IMP" "$OUT"

# Images: a raw one named like qcow2, a qcow2 one named like raw, and a
# qcow2 overlay whose backing file (relative) sits beside it.
qemu-img create -q -f raw "$IMP/disk.qcow2" 8M
qemu-io -f raw -c 'write -P 0x61 0 1M' "$IMP/disk.qcow2" >/dev/null
qemu-img create -q -f qcow2 "$IMP/disk.raw" 16M
qemu-io -f qcow2 -c 'write -P 0x62 1M 1M' "$IMP/disk.raw" >/dev/null
qemu-img create -q -f qcow2 "$IMP/base.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x63 0 64k' "$IMP/base.qcow2" >/dev/null
(cd "$IMP" && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2)
qemu-io -f qcow2 -c 'write -P 0x64 64k 64k' "$IMP/top.qcow2" >/dev/null
echo secret >"$OUT/secret"
truncate -s 1M "$OUT/secret"
qemu-img create -q -f qcow2 -b "$OUT/secret" -F raw "$IMP/sneaky.qcow2" 1M
ln -s "$OUT/secret" "$IMP/link"

# No --import-dir: refused.
start_daemon
api POST /volumes "{\"name\":\"i0\",\"import\":{\"path\":\"$IMP/disk.raw\"}}"
expect_status 403
stop_daemon

start_daemon --import-dir "$IMP"
api POST /volumes "{\"name\":\"r1\",\"import\":{\"path\":\"$IMP/disk.qcow2\"}}"
expect_status 201
[ "$(json_get format)" = raw ] || fail "format trusted the file name: $API_BODY"
[ "$(json_get size)" = 8388608 ] || fail "imported size: $API_BODY"
api POST /volumes "{\"name\":\"q1\",\"import\":{\"path\":\"$IMP/disk.raw\"}}"
expect_status 201
[ "$(json_get format)" = qcow2 ] || fail "qcow2 content not probed: $API_BODY"
qio "$VD_MNT/r1" 'read -P 0x61 0 1M' >/dev/null || fail "raw import data"
qio "$VD_MNT/q1" 'read -P 0x62 1M 1M' 'read -P 0 0 1M' >/dev/null || fail "qcow2 import data"
qio "$VD_MNT/q1" 'write -P 0x65 0 4k' >/dev/null || fail "writing an import"
qemu-io -f qcow2 -r -c 'read -P 0 0 4k' "$IMP/disk.raw" >/dev/null ||
    fail "writing the volume changed the source image"

api POST /volumes "{\"name\":\"t1\",\"import\":{\"path\":\"$IMP/top.qcow2\"}}"
expect_status 201
qio "$VD_MNT/t1" 'read -P 0x63 0 64k' 'read -P 0x64 64k 64k' >/dev/null ||
    fail "an imported overlay does not read through its backing file"

for p in "$OUT/secret" "$IMP/../outside/secret" "$IMP/link" /etc/shadow \
         "$IMP/missing"; do
    api POST /volumes "{\"name\":\"bad\",\"import\":{\"path\":\"$p\"}}"
    expect_status 403
    echo "$API_BODY" | grep -q "path" || fail "403 does not name the path: $API_BODY"
done
# An image inside the import dir whose backing file is outside it.
api POST /volumes "{\"name\":\"bad\",\"import\":{\"path\":\"$IMP/sneaky.qcow2\"}}"
expect_status 403
echo "$API_BODY" | grep -q "$OUT/secret" || fail "403 does not name the backing file: $API_BODY"
api POST /volumes '{"name":"bad","import":{"path":"relative/x"}}'
expect_status 400
api GET /volumes/bad
expect_status 404
api POST /volumes "{\"name\":\"bad\",\"format\":\"raw\",\"import\":{\"path\":\"$IMP/disk.raw\"}}"
expect_problem 400 "holds a qcow2 image"
[ "$(ls "$VD_DATA/images" | wc -l)" = 3 ] || fail "refused imports left files: $(ls "$VD_DATA/images")"

# The catalog keeps the probed format and the image it named: the raw
# import (the daemon's default format is qcow2) is served as raw again
# after a restart, with its data.
api GET /volumes/r1
[ "$(json_get format)" = raw ] || fail "GET after import: $API_BODY"
case "$(json_get image)" in *.raw) ;; *) fail "image of a raw import: $API_BODY" ;; esac
stop_daemon
start_daemon --import-dir "$IMP"
for v in r1 q1 t1; do
    api GET /volumes/$v
    expect_status 200
    [ "$(json_get state)" = ready ] || fail "$v after restart: $API_BODY"
done
api GET /volumes/r1
[ "$(json_get format)" = raw ] || fail "raw import after restart: $API_BODY"
qio "$VD_MNT/r1" 'read -P 0x61 0 1M' >/dev/null || fail "raw import data after restart"
qio "$VD_MNT/q1" 'read -P 0x65 0 4k' 'read -P 0x62 1M 1M' >/dev/null ||
    fail "qcow2 import data after restart"
stop_daemon
for img in "$VD_DATA"/images/*.qcow2; do
    qemu-img check -q "$img" || fail "qemu-img check $img"
done
echo "import: ok"
