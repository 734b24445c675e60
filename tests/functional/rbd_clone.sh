#!/bin/bash
# rbd_clone.sh — linked clones of an RBD volume are RBD layered clones
# (a protected snapshot of the base, the clone in the same pool), the
# base stays read-only and undeletable (409 naming its clones) while it
# has them, deleting the last clone lets the base go with its snapshot;
# and a full clone (a job) of an RBD volume's snapshot copies its data.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"
. "$VD_SRCDIR/tests/ceph/cluster.sh"

C=$T/ceph
on_exit "ceph_cluster_stop '$C'"
OWNER_PID=$$ ceph_cluster_start "$C" >/dev/null || fail "the Ceph cluster did not start"
export VD_RBD_OP_TIMEOUT_S=10 VD_RBD_CONNECT_TIMEOUT_S=10
FLAGS=(--rbd-cluster "c1=$CEPH_CONF" --rbd-id admin --rbd-pool-allow rbd)
start_daemon "${FLAGS[@]}"

jq_body() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print("+sys.argv[2]+")")' "$T/body" "$1"; }
rbd_has() { rbd ls rbd | grep -qx "$1"; }

api POST /volumes '{"name":"tmpl","size":"32M","backend":{"type":"rbd","cluster":"c1","pool":"rbd"}}'
expect_status 201
TIMG=$(jq_body 'd["backend"]["image"]')
qio "$VD_MNT/tmpl" 'write -P 0x5a 0 2M' 'write -P 0x33 20M 1M' | grep -q fail &&
    fail "writing the template"

# A base a client has open for writing gets no clone, and nothing of the
# attempt stays in the pool (no image, no snapshot).
n_images=$(rbd ls rbd | wc -l)
exec 3<>"$VD_MNT/tmpl"
api POST /volumes '{"name":"vm0","base":"tmpl"}'
expect_problem 409 "open"
exec 3>&-
[ "$(rbd ls rbd | wc -l)" = "$n_images" ] || fail "a refused clone left an image: $(rbd ls rbd)"
[ -z "$(rbd snap ls "rbd/$TIMG")" ] || fail "a refused clone left a snapshot: $(rbd snap ls "rbd/$TIMG")"
sleep 0.2

# ---- a linked clone: an RBD clone of a protected snapshot ---------------
t0=$(date +%s.%N)
api POST /volumes '{"name":"vm1","base":"tmpl"}'
expect_status 201
echo "linked clone made in $(python3 -c "print(round($(date +%s.%N) - $t0, 3))") s"
[ "$(jq_body 'd["base"], d["backend"]["type"], d["backend"]["pool"], d["size"]')" = "tmpl rbd rbd 33554432" ] ||
    fail "clone: $API_BODY"
CIMG=$(jq_body 'd["backend"]["image"]')
[ "$CIMG" != "$TIMG" ] || fail "the clone shares its base's image"
rbd info --format json "rbd/$CIMG" >"$T/info" || fail "rbd info $CIMG"
python3 - "$T/info" "$TIMG" <<'PY' || fail "not an RBD clone: $(cat "$T/info")"
import json, sys
i = json.load(open(sys.argv[1]))
p = i["parent"]
assert p["pool"] == "rbd" and p["image"] == sys.argv[2], p
assert "layering" in i["features"], i["features"]
PY
SNAP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["parent"]["snapshot"])' "$T/info")
rbd snap ls --format json "rbd/$TIMG" | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin) if x["name"] == sys.argv[1]]
assert s, "no snapshot"' "$SNAP" || fail "the base lacks snapshot $SNAP"
rbd info --format json "rbd/$TIMG@$SNAP" | grep -q '"protected": *"true"' ||
    fail "the base's snapshot is not protected: $(rbd info "rbd/$TIMG@$SNAP")"

# The clone reads its base, writes only itself.
qio "$VD_MNT/vm1" 'read -P 0x5a 0 2M' 'read -P 0x33 20M 1M' 'read -P 0 2M 1M' |
    grep -q fail && fail "the clone does not read its base's data"
qio "$VD_MNT/vm1" 'write -P 0xc1 1M 64k' | grep -q fail && fail "writing the clone"
qio_ro "$VD_MNT/vm1" 'read -P 0x5a 0 1M' 'read -P 0xc1 1M 64k' | grep -q fail &&
    fail "the clone's write is wrong"
qio_ro "$VD_MNT/tmpl" 'read -P 0x5a 1M 64k' | grep -q fail && fail "the base changed"
rbd export "rbd/$CIMG" "$T/c.exp" >/dev/null 2>&1 || fail "rbd export clone"
cmp "$VD_MNT/vm1" "$T/c.exp" || fail "the clone's file differs from rbd export"
api POST /volumes '{"name":"vm2","base":"tmpl"}'
expect_status 201
qio_ro "$VD_MNT/vm2" 'read -P 0x5a 1M 64k' | grep -q fail && fail "vm2 sees vm1's write"

# The base is read-only and stays while it has clones.
qio "$VD_MNT/tmpl" 'write -P 0xee 0 4k' 2>&1 | grep -qi "fail\|error\|read-only\|denied" ||
    fail "a base with clones accepted a write"
api DELETE /volumes/tmpl
expect_status 409
grep -q "vm1" <<<"$API_BODY" && grep -q "vm2" <<<"$API_BODY" ||
    fail "409 does not name the clones: $API_BODY"
api POST /volumes '{"name":"vm3","base":"tmpl","size":"64M"}'
expect_problem 400 "size"

# A restart keeps the clone a clone and the base read-only.
stop_daemon
start_daemon "${FLAGS[@]}"
qio_ro "$VD_MNT/vm1" 'read -P 0xc1 1M 64k' 'read -P 0x33 20M 1M' | grep -q fail &&
    fail "the clone after a restart"
qio "$VD_MNT/tmpl" 'write -P 0xee 0 4k' 2>&1 | grep -qi "fail\|error\|read-only\|denied" ||
    fail "the base was writable after a restart"

# ---- deleting clones: the snapshot goes with each, then the base can ------
api DELETE /volumes/vm1
expect_status 204
rbd_has "$CIMG" && fail "the clone's image is still there"
rbd snap ls "rbd/$TIMG" | grep -qw "$SNAP" && fail "the clone's snapshot stayed: $(rbd snap ls "rbd/$TIMG")"
api DELETE /volumes/tmpl
expect_status 409
api DELETE /volumes/vm2
expect_status 204
[ -z "$(rbd snap ls "rbd/$TIMG")" ] || fail "snapshots left: $(rbd snap ls "rbd/$TIMG")"
# The last clone gone: the base is writable again.
qio "$VD_MNT/tmpl" 'write -P 0x44 0 4k' | grep -q fail && fail "the base stayed read-only"

# ---- a full clone of an RBD volume's snapshot: a job that copies ---------
api POST /volumes/tmpl/snapshots '{"name":"s1"}'
expect_status 201
qio "$VD_MNT/tmpl" 'write -P 0x99 0 64k' | grep -q fail && fail "writing after s1"
api POST /volumes '{"name":"full","source":{"volume":"tmpl","snapshot":"s1"}}'
[ "$API_STATUS" = 202 ] || [ "$API_STATUS" = 201 ] || fail "full clone: $API_STATUS $API_BODY"
for i in $(seq 100); do
    api GET /volumes/full
    [ "$API_STATUS" = 200 ] && [ "$(jq_body 'd["state"]')" = ready ] && break
    sleep 0.3
done
[ "$(jq_body 'd["state"]')" = ready ] || fail "the full clone did not finish: $API_BODY"
qio_ro "$VD_MNT/full" 'read -P 0x44 0 4k' 'read -P 0x5a 4k 2044k' 'read -P 0x33 20M 1M' |
    grep -q fail && fail "the full clone's data is not s1's"
api DELETE /volumes/full
expect_status 204
api DELETE /volumes/tmpl
expect_status 204
[ "$(header Vdiskd-Image)" = removed ] || fail "tmpl: $(header Vdiskd-Image)"
rbd_has "$TIMG" && fail "the base's image is still there"
stop_daemon
echo "rbd clones ok"
