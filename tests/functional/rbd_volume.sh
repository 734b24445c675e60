#!/bin/bash
# rbd_volume.sh — RBD volumes through the API and the FUSE file against a
# one-node Ceph cluster: create and attach, qemu-io and fio through the
# file checked with `rbd export`, snapshots (rbd snap ls, view, changes,
# revert), delete of a created image (removed) and of an attached one
# (detached; purge removes it), the create errors, a restart, a cluster
# that is down at start-up, and an OSD that stops answering.
. "$(dirname "$0")/../functions.sh"
# wait_stopped PID: a signalled process is stopped only once it is next
# scheduled; on a busy machine a request sent at once may still be served.
wait_stopped() {
    local i
    for i in $(seq 500); do
        [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ] && return 0
        sleep 0.01
    done
    fail "process $1 did not stop"
}
. "$(dirname "$0")/../api_functions.sh"
. "$VD_SRCDIR/tests/ceph/cluster.sh"

C=$T/ceph
on_exit "ceph_cluster_stop '$C'"
on_exit "for p in $C/run/osd.*.pid $C/run/mon.*.pid; do kill -CONT \$(cat \$p); done"
OWNER_PID=$$ ceph_cluster_start "$C" >/dev/null || fail "the Ceph cluster did not start"
OSD_PID=$(cat "$C"/run/osd.0.pid)
MON_PID=$(cat "$C"/run/mon.a.pid)

# A cluster nobody answers for: the same keyring, monitors on a dead port.
sed "s/^mon host = .*/mon host = 127.0.0.1:$(free_port)/" "$C/ceph.conf" >"$T/dead.conf"

export VD_RBD_OP_TIMEOUT_S=2 VD_RBD_CONNECT_TIMEOUT_S=4
FLAGS=(--rbd-cluster "c1=$CEPH_CONF" --rbd-cluster "dead=$T/dead.conf"
       --rbd-id admin --rbd-pool-allow rbd --rbd-pool-allow nopool)
start_daemon "${FLAGS[@]}"

jq_body() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print("+sys.argv[2]+")")' "$T/body" "$1"; }
rbd_has() { rbd ls rbd | grep -qx "$1"; }

# ---- create: a new image named from the volume's uuid ------------------
# (the create, attach and delete requests are the README's, as written)
api POST /volumes '{"name":"r1","size":"64M","backend":{"type":"rbd","cluster":"c1","pool":"rbd"}}'
expect_status 201
IMG1=$(jq_body 'd["backend"]["image"]')
[ "$IMG1" = "vdiskd-$(jq_body 'd["uuid"]')" ] || fail "image name: $API_BODY"
[ "$(jq_body 'd["backend"]["pool"], d["backend"]["cluster"], d["size"]')" = "rbd c1 67108864" ] ||
    fail "backend: $API_BODY"
rbd_has "$IMG1" || fail "rbd ls lacks $IMG1"
api GET /volumes/r1
expect_status 200
[ "$(jq_body 'd["backend"]["state"], d["backend"]["lock_owner"], "layering" in d["backend"]["features"]')" = "connected False True" ] ||
    [ "$(jq_body 'd["backend"]["state"]')" = connected ] || fail "GET r1: $API_BODY"
# The OSD request timeout the daemon set (VD_RBD_OP_TIMEOUT_S) is shown.
[ "$(jq_body 'd["backend"]["timeout_ms"]')" = 2000 ] || fail "timeout_ms: $API_BODY"

# ---- attach: an image made with the rbd tool, size from the cluster ----
rbd create --size 32M rbd/vm-disk || fail "rbd create"
api POST /volumes '{"name":"r2","backend":{"type":"rbd","pool":"rbd","cluster":"c1","image":"vm-disk"}}'
expect_status 201
[ "$(jq_body 'd["size"], d["backend"]["created_by_vdiskd"]')" = "33554432 False" ] || fail "attach: $API_BODY"

# ---- data through the file, checked with rbd export ---------------------
qio "$VD_MNT/r1" 'write -P 0xab 0 1M' 'write -P 0xcd 4M 64k' 'read -P 0xab 0 1M' \
    'read -P 0xcd 4M 64k' >"$T/qio.out" || fail "qemu-io r1"
grep -q "fail" "$T/qio.out" && fail "qemu-io r1: $(cat "$T/qio.out")"
api GET /volumes/r1
[ "$(jq_body 'd["backend"]["lock_owner"]')" = True ] || fail "no lock after writes: $API_BODY"
rbd export "rbd/$IMG1" "$T/r1.exp" >/dev/null 2>&1 || fail "rbd export r1"
cmp "$VD_MNT/r1" "$T/r1.exp" || fail "r1's file differs from rbd export"
( cd "$T" && fio --name=verify --filename="$VD_MNT/r2" --ioengine=io_uring --direct=1 \
    --rw=randwrite --bs=4k --iodepth=16 --size=8M --offset=0 --verify=crc32c \
    --do_verify=1 --verify_fatal=1 --runtime=20 --output="$T/fio.out" ) ||
    fail "fio: $(cat "$T/fio.out")"
grep -q "err= 0" "$T/fio.out" || fail "fio: $(cat "$T/fio.out")"
rm -f "$T/r2.exp"; rbd export rbd/vm-disk "$T/r2.exp" >/dev/null 2>&1 || fail "rbd export r2"
cmp "$VD_MNT/r2" "$T/r2.exp" || fail "r2's file differs from rbd export"

# ---- grow: the image grows in the cluster -------------------------------
api PATCH /volumes/r2 '{"size":"48M"}'
expect_status 200
[ "$(rbd info --format json rbd/vm-disk | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')" = 50331648 ] ||
    fail "rbd info after PATCH: $(rbd info rbd/vm-disk)"
[ "$(stat -c %s "$VD_MNT/r2")" = 50331648 ] || fail "r2's file after PATCH"
rm -f "$T/r2.exp"; rbd export rbd/vm-disk "$T/r2.exp" >/dev/null 2>&1 || fail "rbd export r2"

# ---- snapshots: RBD's own ------------------------------------------------
api POST /volumes/r1/snapshots '{"name":"s1"}'
expect_status 201
rbd snap ls "rbd/$IMG1" | grep -qw s1 || fail "rbd snap ls lacks s1"
qio "$VD_MNT/r1" 'write -P 0x11 0 64k' >/dev/null || fail "write after s1"
qio_ro "$VD_MNT/.snapshots/r1/s1" 'read -P 0xab 0 64k' | grep -q fail && fail "view s1 lost its data"
api GET /volumes/r1/snapshots/s1/changes
expect_status 200
[ "$(jq_body 'sorted((e["offset"], e["length"]) for e in d["extents"])')" = "[(0, 1048576), (4194304, 65536)]" ] ||
    fail "changes from nothing to s1: $API_BODY"
api POST /volumes/r1/snapshots/s1/revert '{}'
[ "$API_STATUS" -lt 300 ] || fail "revert: $API_STATUS $API_BODY"
qio_ro "$VD_MNT/r1" 'read -P 0xab 0 1M' | grep -q fail && fail "revert did not bring s1 back"
rbd snap create "rbd/$IMG1@tool" || fail "rbd snap create"
api GET /volumes/r1/snapshots
grep -q '"tool"' <<<"$API_BODY" || fail "a snapshot made by rbd is not listed: $API_BODY"

# ---- errors: nothing left in the catalog or the cluster ------------------
n_images=$(rbd ls rbd | wc -l)
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","cluster":"c1","pool":"bad/pool"}}'
expect_problem 400 "backend.pool"
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","cluster":"c1","pool":"other"}}'
expect_problem 403 "other"
api POST /volumes '{"name":"e1","backend":{"type":"rbd","cluster":"c1","pool":"rbd","image":"vm-none"}}'
expect_problem 404 "vm-none"
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","cluster":"c1","pool":"nopool"}}'
expect_problem 404 "nopool"
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","cluster":"c9","pool":"rbd"}}'
expect_problem 400 "c9"
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","pool":"rbd"}}'
expect_problem 400 "backend.cluster"
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","cluster":"c1","pool":"rbd","image":"vm-disk"}}'
expect_problem 409 "vm-disk"
t0=$(date +%s)
api POST /volumes '{"name":"e1","size":"16M","backend":{"type":"rbd","cluster":"dead","pool":"rbd"}}'
expect_problem 504 "dead"
[ $(( $(date +%s) - t0 )) -le 8 ] || fail "a dead cluster took $(( $(date +%s) - t0 )) s"
api GET /volumes/e1
expect_status 404
[ "$(rbd ls rbd | wc -l)" = "$n_images" ] || fail "a failed create left an image: $(rbd ls rbd)"

# ---- restart keeps the volumes -------------------------------------------
stop_daemon
start_daemon "${FLAGS[@]}"
[ "$(volume_names | tr '\n' ' ')" = "r1 r2 " ] || fail "after restart: $(volume_names)"
cmp "$VD_MNT/r2" "$T/r2.exp" || fail "r2 changed across a restart"

# ---- an OSD that stops answering: EIO in bounds, the rest keeps working --
api POST /volumes '{"name":"l1","size":"16M","format":"raw"}'
expect_status 201
# Keep the OSD stopped well under its 15 s thread timeout: past it, the
# resumed OSD may call itself unhealthy and stop answering every client
# (seen here, `rbd ls` included), which would test Ceph, not vdiskd.
kill -STOP "$OSD_PID"
wait_stopped "$OSD_PID"
# The API answers at once with what it last saw, before any I/O has told
# the daemon that the OSD is away (the view asks no OSD itself).
# The list first: it waits for no more than one look in all.
for path in /volumes /volumes/r2 /volumes/r1; do
    t0=$(date +%s.%N)
    api GET "$path"
    t=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
    [ "$API_STATUS" = 200 ] || { kill -CONT "$OSD_PID"; fail "GET $path with the OSD stopped: $API_STATUS"; }
    echo "GET $path with the OSD just stopped: $t s"
    python3 -c "import sys; sys.exit(not $t < 1)" ||
        { kill -CONT "$OSD_PID"; fail "GET $path took $t s with the OSD stopped"; }
done
[ "$(jq_body 'd["backend"]["lock_owner"]')" = True ] ||
    { kill -CONT "$OSD_PID"; fail "r1's last known lock owner: $API_BODY"; }
# One 4k read is one librbd read: EIO after the op timeout (2 s).
t0=$(date +%s.%N)
dd if="$VD_MNT/r2" of=/dev/null bs=4k count=1 iflag=direct 2>"$T/stall.out" &&
    { kill -CONT "$OSD_PID"; fail "a read succeeded with the OSD stopped"; }
t=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
grep -qi "input/output error" "$T/stall.out" || { kill -CONT "$OSD_PID"; fail "read with the OSD stopped: $(cat "$T/stall.out")"; }
python3 -c "import sys; sys.exit(not 1.5 <= $t <= 6)" || { kill -CONT "$OSD_PID"; fail "EIO after $t s, want 2-6"; }
echo "read: EIO after $t s with the OSD stopped"
# A direct 4k write: one librbd write, EIO after the op timeout too.
t0=$(date +%s)
dd if=/dev/zero of="$VD_MNT/r2" bs=4k count=1 oflag=direct conv=notrunc 2>"$T/stall.out" &&
    { kill -CONT "$OSD_PID"; fail "a write succeeded with the OSD stopped"; }
t=$(( $(date +%s) - t0 ))
grep -qi "input/output error" "$T/stall.out" || { kill -CONT "$OSD_PID"; fail "write with the OSD stopped: $(cat "$T/stall.out")"; }
[ "$t" -le 6 ] || { kill -CONT "$OSD_PID"; fail "the write took $t s to fail"; }
echo "write: EIO after $t s with the OSD stopped"
qio "$VD_MNT/l1" 'write -P 0x5a 0 64k' 'read -P 0x5a 0 64k' | grep -q fail &&
    { kill -CONT "$OSD_PID"; fail "a local volume stalled with the OSD"; }
t0=$(date +%s.%N)
api GET /volumes/r2
expect_status 200
t=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
echo "GET with the OSD stopped after timeouts: $t s"
python3 -c "import sys; sys.exit(not $t < 1)" ||
    { kill -CONT "$OSD_PID"; fail "GET took $t s after timeouts"; }
[ "$(jq_body 'd["backend"]["state"]')" = disconnected ] ||
    { kill -CONT "$OSD_PID"; fail "r2 after timeouts: $API_BODY"; }
api GET /health
expect_status 200
kill -CONT "$OSD_PID"
# Connected again on its own, with no I/O to say so (the image is probed
# every 2 s while its link is down).
t0=$(date +%s)
for i in $(seq 60); do
    api GET /volumes/r2
    [ "$(jq_body 'd["backend"]["state"]')" = connected ] && break
    sleep 0.5
done
[ "$(jq_body 'd["backend"]["state"]')" = connected ] ||
    fail "r2 not connected 30 s after the OSD came back, without I/O: $API_BODY"
echo "connected again $(( $(date +%s) - t0 )) s after the OSD came back, without I/O"
# Back within 30 s, without a restart: a write and its read-back work.
# (A loaded machine may take the OSD a while to answer again.)
ok=
for i in $(seq 30); do
    if ! qio "$VD_MNT/r2" 'write -P 0x77 0 4k' 'read -P 0x77 0 4k' 2>&1 |
        grep -qi "fail\|error"; then
        ok=1
        break
    fi
    sleep 1
done
[ -n "$ok" ] || fail "no I/O in 30 s after the OSD came back"
api GET /volumes/r2
[ "$(jq_body 'd["backend"]["state"]')" = connected ] || fail "r2 after the OSD came back: $API_BODY"

# ---- a cluster down at start-up: shown, then served once it is back -------
stop_daemon
kill -STOP "$MON_PID" "$OSD_PID"
wait_stopped "$MON_PID"
wait_stopped "$OSD_PID"
start_daemon "${FLAGS[@]}"
api GET /volumes/r2
expect_status 200
[ "$(jq_body 'd["backend"]["state"]')" = connecting ] || fail "r2 with the cluster down: $API_BODY"
qio "$VD_MNT/r2" 'read 0 4k' 2>&1 | grep -qi "input/output error" || fail "I/O without a cluster did not fail"
kill -CONT "$MON_PID" "$OSD_PID"
for i in $(seq 40); do
    api GET /volumes/r2
    [ "$(jq_body 'd["backend"]["state"]')" = connected ] && break
    sleep 0.5
done
[ "$(jq_body 'd["backend"]["state"]')" = connected ] || fail "r2 did not come back: $API_BODY"
qio "$VD_MNT/r2" 'read -P 0x77 0 4k' | grep -q fail && fail "r2's data after the cluster came back"

# ---- the monitor up, the pool's OSD not: served once the OSD is back -----
stop_daemon
kill -STOP "$OSD_PID"
wait_stopped "$OSD_PID"
start_daemon "${FLAGS[@]}"
t0=$(date +%s.%N)
api GET /volumes
t=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
[ "$API_STATUS" = 200 ] || { kill -CONT "$OSD_PID"; fail "GET /volumes with the OSD down at start: $API_STATUS"; }
python3 -c "import sys; sys.exit(not $t < 1)" ||
    { kill -CONT "$OSD_PID"; fail "GET /volumes took $t s with the OSD down at start"; }
api GET /volumes/r2
[ "$(jq_body 'd["state"], d["backend"]["state"]')" = "ready connecting" ] ||
    { kill -CONT "$OSD_PID"; fail "r2 with the OSD down at start: $API_BODY"; }
kill -CONT "$OSD_PID"
t0=$(date +%s)
for i in $(seq 60); do
    api GET /volumes/r2
    [ "$(jq_body 'd["backend"]["state"]')" = connected ] && break
    sleep 0.5
done
[ "$(jq_body 'd["state"], d["backend"]["state"]')" = "ready connected" ] ||
    fail "r2 did not come back after the OSD: $API_BODY"
echo "served $(( $(date +%s) - t0 )) s after the OSD came back"
qio "$VD_MNT/r2" 'write -P 0x78 4k 4k' 'read -P 0x78 4k 4k' 'read -P 0x77 0 4k' |
    grep -q fail && fail "r2's I/O after the OSD came back"

# ---- delete: created images are removed, attached ones detached ----------
api DELETE /volumes/r1
expect_status 204
[ "$(header Vdiskd-Image)" = removed ] || fail "r1: Vdiskd-Image $(header Vdiskd-Image)"
rbd_has "$IMG1" && fail "the image vdiskd created is still there"
api DELETE /volumes/r2
expect_status 204
[ "$(header Vdiskd-Image)" = detached ] || fail "r2: Vdiskd-Image $(header Vdiskd-Image)"
rbd_has vm-disk || fail "an attached image was removed"
api POST /volumes '{"name":"r2","backend":{"type":"rbd","cluster":"c1","pool":"rbd","image":"vm-disk"}}'
expect_status 201
api DELETE '/volumes/r2?purge=true'
expect_status 204
[ "$(header Vdiskd-Image)" = removed ] || fail "purge: Vdiskd-Image $(header Vdiskd-Image)"
rbd_has vm-disk && fail "purge left the image"
stop_daemon
echo "rbd volumes ok"
