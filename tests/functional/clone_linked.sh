#!/bin/bash
# clone_linked.sh — a linked clone reads its base's data, writes only to
# itself, and keeps the base read-only: deleting the base is refused with
# the clones named, a base open for writing cannot get clones, and the base
# is writable again once its last clone is gone; other processes may not
# write or resize a base under clones. qemu-img judges the images.
. "$(dirname "$0")/../functions.sh"
start_daemon

api POST /volumes '{"name":"tmpl","size":"64M","format":"qcow2"}'
expect_status 201
TMPL_IMG=$(json_get image)
qio "$VD_MNT/tmpl" 'write -P 0x5a 0 2M' 'write -P 0x33 40M 1M' >/dev/null ||
    fail "writing the template"

# A base that a client has open cannot be frozen under it.
exec 3<>"$VD_MNT/tmpl"
api POST /volumes '{"name":"vm0","base":"tmpl"}'
expect_status 409
echo "$API_BODY" | grep -q "open" || fail "409 does not say the base is open: $API_BODY"
exec 3>&-
sleep 0.2

api POST /volumes '{"name":"vm1","base":"tmpl"}'
expect_status 201
[ "$(json_get base)" = tmpl ] || fail "clone does not name its base: $API_BODY"
[ "$(json_get size)" = 67108864 ] || fail "clone size is not the base's"
VM1_IMG=$(json_get image)
api POST /volumes '{"name":"vm2","base":"tmpl","size":"128M"}'
expect_status 201

qio "$VD_MNT/vm1" 'read -P 0x5a 0 2M' 'read -P 0x33 40M 1M' 'read -P 0 2M 1M' \
    >/dev/null || fail "clone does not read the base's data"
qio "$VD_MNT/vm1" 'write -P 0xc1 1M 64k' >/dev/null || fail "writing the clone"
qio "$VD_MNT/vm1" 'read -P 0x5a 0 1M' 'read -P 0xc1 1M 64k' \
    'read -P 0x5a 1088k 960k' >/dev/null || fail "clone's copy-on-write is wrong"
qio "$VD_MNT/vm2" 'read -P 0x5a 1M 64k' >/dev/null || fail "vm2 sees vm1's write"
qio_ro "$VD_MNT/tmpl" 'read -P 0x5a 1M 64k' >/dev/null || fail "base changed under its clone"

# The base is read-only while it has clones.
if qio "$VD_MNT/tmpl" 'write -P 0xee 0 4k' >/dev/null 2>&1; then
    fail "a base with clones accepted a write"
fi
# Its clones hold the base image as a backing file, which other processes
# may read but not write or resize (QEMU's backing-file locking).
if qemu-io -f qcow2 -c 'write -P 0xee 0 4k' "$TMPL_IMG" >"$T/qio" 2>&1; then
    fail "another process wrote the base of live clones"
fi
grep -qi "lock" "$T/qio" || fail "write refused for another reason: $(cat "$T/qio")"
if qemu-img resize -q "$TMPL_IMG" 128M 2>/dev/null; then
    fail "another process resized the base of live clones"
fi
qemu-io -r -f qcow2 -c 'read -P 0x5a 0 4k' "$TMPL_IMG" >/dev/null ||
    fail "another process cannot read the base"
api DELETE /volumes/tmpl
expect_status 409
echo "$API_BODY" | grep -q "vm1" || fail "409 does not name the clones: $API_BODY"

api DELETE /volumes/vm1
expect_status 204
api DELETE /volumes/tmpl
expect_status 409
api DELETE /volumes/vm2
expect_status 204
qio "$VD_MNT/tmpl" 'write -P 0xee 0 4k' >/dev/null ||
    fail "base stays read-only after its last clone is gone"

# Restart: a base with a clone comes back read-only, and the clone reads.
api POST /volumes '{"name":"vm3","base":"tmpl"}'
expect_status 201
VM3_IMG=$(json_get image)
stop_daemon
qemu-img check -q "$TMPL_IMG" || fail "qemu-img check: template"
qemu-img check -q "$VM3_IMG" || fail "qemu-img check: clone"
qemu-img info "$VM3_IMG" | grep -q "backing file: $TMPL_IMG" ||
    fail "clone's backing file is not the base image"
[ ! -e "$VM1_IMG" ] || fail "deleted clone left its image behind"
start_daemon
qio "$VD_MNT/vm3" 'read -P 0xee 0 4k' 'read -P 0x5a 4k 60k' >/dev/null ||
    fail "clone after restart"
if qio "$VD_MNT/tmpl" 'write -P 0x01 0 4k' >/dev/null 2>&1; then
    fail "base with a clone is writable after restart"
fi
stop_daemon
echo "clone_linked: ok"
