#!/bin/bash
# import_rules.sh — an import becomes a volume only if a create could
# have made it: its virtual size obeys the volume size rules (422 saying
# why for 0 bytes, 1000 bytes, 1 PiB), and the data directory (catalog,
# other volumes' images) is never an import or backing source, even when
# --import-dir contains it. Nothing refused leaves a row or a file.
# Start-up warns about an import dir that contains the data dir.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../api_functions.sh" || exit 1

# The import dir is the parent of the data dir: a careless but possible
# configuration.
IMP=$T
mkdir -p "$T/in"

import() { # NAME PATH
    api POST /volumes "{\"name\":\"$1\",\"import\":{\"path\":\"$2\"}}"
}

start_daemon --import-dir "$IMP"
grep -q "contains the data directory" "$VD_LOG" || fail "no warning about --import-dir"
api POST /volumes '{"name":"victim","size":16777216,"format":"qcow2"}'
expect_status 201
VICTIM=$(json_get image)
qio "$VD_MNT/victim" 'write -P 0x5e 0 64k' >/dev/null || fail "writing victim"
api POST /volumes '{"name":"rawv","size":16777216,"format":"raw"}'
expect_status 201
RAWV=$(json_get image)

# --- sizes ---
: >"$T/in/zero.raw"
import zero "$T/in/zero.raw"
expect_problem 422 "greater than zero"
head -c 1000 /dev/urandom >"$T/in/small.raw"
import small "$T/in/small.raw"
expect_problem 422 "multiple of 512"
qemu-img create -q -f qcow2 "$T/in/peta.qcow2" 1P
import peta "$T/in/peta.qcow2"
expect_problem 422 "at most 64 TiB"
# qemu-img rounds sizes up to sectors: set 1000 in the header itself.
qemu-img create -q -f qcow2 "$T/in/odd.qcow2" 1M
python3 -c 'import struct,sys; f=open(sys.argv[1],"r+b"); f.seek(24); f.write(struct.pack(">Q",1000))' "$T/in/odd.qcow2"
import odd "$T/in/odd.qcow2"
expect_problem 422 "multiple of 512"
# The limits themselves are fine.
truncate -s 512 "$T/in/one.raw"
import one "$T/in/one.raw"
expect_status 201
qemu-img create -q -f qcow2 "$T/in/max.qcow2" 64T
import max "$T/in/max.qcow2"
expect_status 201

# --- the data directory ---
for p in "$VD_DATA/catalog.db" "$VICTIM" "$RAWV" "$VD_DATA/images" "$VD_DATA" \
    "$T/in/../data/catalog.db"; do
    import steal "$p"
    expect_problem 403 "data directory"
done
# A symlink from the import dir into the data dir.
ln -s "$VICTIM" "$T/in/link.qcow2"
import steal "$T/in/link.qcow2"
expect_problem 403 "data directory"
# An image in the import dir whose backing file is another volume's image,
# by absolute path, by relative path, and through a symlink.
qemu-img create -q -f qcow2 -u -b "$VICTIM" -F qcow2 "$T/in/over1.qcow2" 16M
(cd "$T/in" && qemu-img create -q -f qcow2 -u -b "../data/images/$(basename "$VICTIM")" \
    -F qcow2 over2.qcow2 16M)
qemu-img create -q -f qcow2 -u -b link.qcow2 -F qcow2 "$T/in/over3.qcow2" 16M
qemu-img create -q -f qcow2 -u -b "$RAWV" -F raw "$T/in/over4.qcow2" 16M
for o in over1 over2 over3 over4; do
    import "$o" "$T/in/$o.qcow2"
    expect_problem 403 "data directory"
done

# A backing file that does not exist is the image's fault: 422, not 404.
qemu-img create -q -f qcow2 -u -b nothere.qcow2 -F qcow2 "$T/in/nob.qcow2" 16M
import nob "$T/in/nob.qcow2"
expect_problem 422 "nothere.qcow2"

# Nothing refused left a row or a file.
[ "$(volume_names | tr '\n' ' ')" = "victim rawv one max " ] ||
    fail "volumes after refused imports: $(volume_names | tr '\n' ' ')"
[ "$(ls "$VD_DATA/images" | wc -l)" = 4 ] || fail "images left: $(ls "$VD_DATA/images")"

# An allowed import whose backing file is later swapped for a link into
# the data dir is not served from there after a restart, nor is a linked
# clone of it (its chain leaves the data dir and may not come back).
qemu-img create -q -f qcow2 "$T/in/base.qcow2" 16M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/in/top.qcow2" 16M
import top "$T/in/top.qcow2"
expect_status 201
api POST /volumes '{"name":"topc","base":"top"}'
expect_status 201
stop_daemon
rm "$T/in/base.qcow2"
ln -s "$VICTIM" "$T/in/base.qcow2"
start_daemon --import-dir "$IMP"
grep -q "lies inside vdiskd's data directory" "$VD_LOG" ||
    fail "a swapped backing file was not refused at start-up"
grep -q "leads back into vdiskd's data directory" "$VD_LOG" ||
    fail "a clone's chain back into the data dir was not refused"
for v in top topc; do
    if [ -e "$VD_MNT/$v" ] && qio_ro "$VD_MNT/$v" 'read -P 0x5e 0 64k' >/dev/null 2>&1; then
        fail "$v reads the victim's data through a swapped backing file"
    fi
done
# The victim itself is still served.
qio_ro "$VD_MNT/victim" 'read -P 0x5e 0 64k' >/dev/null || fail "victim after restart"
stop_daemon
echo "import_rules: ok"
