#!/bin/bash
# rbd_takeover.sh — two daemons (two "hosts": their own data dirs, mounts
# and ports) on one RBD image. A writes and holds the exclusive lock, then
# freezes (SIGSTOP: dead to the cluster but not gone); B's writes wait; an
# operator takes the volume over on B (POST /volumes/{name}/takeover),
# which blocklists A and breaks its lock; B writes; A wakes and its
# writes, the one it had queued included, fail with EIO; GET on A says it
# was fenced; the image holds B's data.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"
. "$VD_SRCDIR/tests/ceph/cluster.sh"
wait_state() { # PID STATE: /proc says the process is in STATE (T, S, ...)
    local i
    for i in $(seq 500); do
        [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.01
    done
    return 1
}

C=$T/ceph
on_exit "ceph_cluster_stop '$C'"
OWNER_PID=$$ ceph_cluster_start "$C" >/dev/null || fail "the Ceph cluster did not start"
export VD_RBD_OP_TIMEOUT_S=10 VD_RBD_CONNECT_TIMEOUT_S=10
FLAGS=(--rbd-cluster "c1=$CEPH_CONF" --rbd-id admin --rbd-pool-allow rbd)
jq_body() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print("+sys.argv[2]+")")' "$T/body" "$1"; }

# Host A
VD_DATA=$T/a VD_MNT=$T/amnt start_daemon "${FLAGS[@]}"
A_PID=$VD_PID A_URL=$VD_URL A_MNT=$T/amnt
on_exit "kill -CONT $A_PID"
api POST /volumes '{"name":"r1","size":"32M","backend":{"type":"rbd","pool":"rbd","image":"shared"}}'
expect_status 201
# Host B attaches the same image.
VD_DATA=$T/b VD_MNT=$T/bmnt start_daemon "${FLAGS[@]}"
B_URL=$VD_URL B_MNT=$T/bmnt
api POST /volumes '{"name":"r1","backend":{"type":"rbd","pool":"rbd","image":"shared"}}'
expect_status 201

# A writes: it holds the lock.
qio "$A_MNT/r1" 'write -P 0xaa 0 1M' | grep -q fail && fail "A's write"
VD_URL=$A_URL api GET /volumes/r1
[ "$(jq_body 'd["backend"]["lock_owner"]')" = True ] || fail "A does not own the lock: $API_BODY"

# A freezes holding the lock.
kill -STOP "$A_PID"
wait_state "$A_PID" T || fail "A did not stop"
# A request queued to the frozen A: served only once it wakes.
dd if=<(head -c 4096 /dev/zero | tr '\0' '\356') of="$A_MNT/r1" bs=4k count=1 \
    oflag=direct conv=notrunc 2>"$T/a_dd.err" &
A_DD=$!
on_exit "kill -9 $A_DD"
# B's write waits for the lock A does not give up.
python3 -c 'import sys; sys.stdout.buffer.write(b"\xbb" * 4096)' >"$T/bb"
dd if="$T/bb" of="$B_MNT/r1" bs=4k count=1 oflag=direct conv=notrunc 2>"$T/b_dd.err" &
B_DD=$!
on_exit "kill -9 $B_DD"
sleep 3
if ! kill -0 "$B_DD" 2>/dev/null; then
    wait "$B_DD" && fail "B wrote while the frozen A held the lock"
    echo "B's write failed while A held the lock: $(cat "$T/b_dd.err")"
fi

# The operator takes the volume over on B.
t0=$(date +%s.%N)
VD_URL=$B_URL api POST /volumes/r1/takeover '{}'
expect_status 200
t_take=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
[ "$(jq_body 'len(d["fenced"])')" -ge 1 ] || fail "takeover fenced nobody: $API_BODY"
echo "takeover: ${t_take} s, fenced $(jq_body 'd["fenced"]')"
ceph osd blocklist ls 2>/dev/null | grep -qF "$(jq_body 'd["fenced"][0]')" ||
    fail "the old owner is not blocklisted: $(ceph osd blocklist ls 2>&1)"
# B's waiting write goes through (or, had it failed, a new one does),
# well before A's watch would time out (30 s after it froze) and librbd
# would break the lock by itself.
for i in $(seq 150); do kill -0 "$B_DD" 2>/dev/null || break; sleep 0.1; done
kill -0 "$B_DD" 2>/dev/null && fail "B's write still waits 15 s after the takeover"
echo "B's waiting write ended $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s after the takeover began"
wait "$B_DD" || echo "B's waiting write: $(cat "$T/b_dd.err")"
t0=$(date +%s.%N)
qio "$B_MNT/r1" 'write -P 0xbb 0 4k' 'write -P 0xbc 64k 64k' | grep -q fail && fail "B's write after the takeover"
echo "B's write after the takeover: $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s"
VD_URL=$B_URL api GET /volumes/r1
[ "$(jq_body 'd["backend"]["lock_owner"]')" = True ] || fail "B does not own the lock: $API_BODY"
# A takeover by the owner itself fences nobody.
VD_URL=$B_URL api POST /volumes/r1/takeover
expect_status 200
[ "$(jq_body 'd["fenced"]')" = "[]" ] || fail "a second takeover: $API_BODY"

# A wakes: its queued write and any new one fail; it says it was fenced.
kill -CONT "$A_PID"
for i in $(seq 300); do kill -0 "$A_DD" 2>/dev/null || break; sleep 0.1; done
kill -0 "$A_DD" 2>/dev/null && fail "A's queued write hangs 30 s after A woke"
wait "$A_DD" && fail "the fenced A landed its queued write"
grep -qi "input/output error" "$T/a_dd.err" || fail "A's queued write: $(cat "$T/a_dd.err")"
qio "$A_MNT/r1" 'write -P 0xee 0 4k' 2>&1 | grep -qi "input/output error" ||
    fail "the fenced A accepted a new write"
VD_URL=$A_URL api GET /volumes/r1
grep -q "fenced" <<<"$API_BODY" || fail "GET on A does not say it was fenced: $API_BODY"

# The image holds B's data, not A's.
rbd export rbd/shared "$T/exp" >/dev/null 2>&1 || fail "rbd export"
python3 - "$T/exp" <<'PY' || fail "the image does not hold B's data"
import sys
d = open(sys.argv[1], "rb").read()
assert d[:4096] == b"\xbb" * 4096, d[:8]
assert d[4096:65536] == b"\xaa" * (65536 - 4096)
assert d[65536:131072] == b"\xbc" * 65536
PY
# A takeover where nothing holds a lock: a volume of a local file has none.
VD_URL=$B_URL api POST /volumes '{"name":"l1","size":"1M","format":"raw"}'
expect_status 201
VD_URL=$B_URL api POST /volumes/l1/takeover
expect_problem 422 "lock"
VD_URL=$B_URL api POST /volumes/nosuch/takeover
expect_status 404
echo "rbd takeover ok"
