#!/bin/bash
# api_snapshots_qcow2.sh — snapshots through the REST API on a qcow2
# volume: take (201, Location), list, show, duplicate (409), revert (409
# while open, then the old data is back), full clone as a job (202,
# Location: /jobs/N, polled to success), delete (204).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format qcow2
api POST /volumes '{"name": "q1", "size": "4M"}'
expect_status 201
[ "$(json_get format)" = qcow2 ] || fail "format $(json_get format)"

head -c 65536 /dev/urandom >"$T/a"
head -c 65536 /dev/urandom >"$T/b"
put() { dd if="$1" of="$VD_MNT/$2" bs=64k count=1 conv=notrunc,fsync status=none || fail "write $2"; }
first64k() { dd if="$VD_MNT/$1" bs=64k count=1 iflag=direct status=none; }
put "$T/a" q1

api POST /volumes/q1/snapshots '{"name": "s1"}'
expect_status 201
[ "$(header Location)" = /volumes/q1/snapshots/s1 ] || fail "Location '$(header Location)'"
python3 - "$T/body" <<'PY' || fail "snapshot JSON: $API_BODY"
import json, re, sys
s = json.load(open(sys.argv[1]))
assert s["name"] == "s1" and s["volume"] == "q1", s
assert s["size"] == 4 << 20, s
assert type(s["io_paused_us"]) is int and s["io_paused_us"] >= 0, s
assert isinstance(s["id"], str) and s["id"], s
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["created_at"]), s
PY
api POST /volumes/q1/snapshots '{"name": "s1"}'
expect_problem 409 s1
api GET /volumes/q1/snapshots/s1
expect_status 200
[ "$(json_get name)" = s1 ] || fail "GET s1: $API_BODY"
api GET /volumes/q1/snapshots/nope
expect_problem 404 nope

put "$T/b" q1
api POST /volumes/q1/snapshots '{"name": "s2"}'
expect_status 201
api GET /volumes/q1/snapshots
expect_status 200
python3 -c 'import json,sys; n=[s["name"] for s in json.load(open(sys.argv[1]))["snapshots"]]; assert n == ["s1", "s2"], n' \
    "$T/body" || fail "list: $API_BODY"

# Revert: refused while the file is open, then s1's data is back.
exec 3<"$VD_MNT/q1"
api POST /volumes/q1/snapshots/s1/revert '{}'
expect_problem 409
exec 3<&-
first64k q1 | cmp -s - "$T/b" || fail "a refused revert changed the data"
api POST /volumes/q1/snapshots/s1/revert '{}'
expect_status 200
[ "$(json_get name)" = q1 ] || fail "revert answered: $API_BODY"
first64k q1 | cmp -s - "$T/a" || fail "after revert to s1 the data is not s1's"
api POST /volumes/q1/snapshots/s1/revert '{"force": "yes"}'
expect_problem 400 force
# No body is the same as {}; force may be given in the query, as for
# DELETE. A forced revert goes ahead with the file open.
put "$T/b" q1
exec 3<"$VD_MNT/q1"
http POST /volumes/q1/snapshots/s1/revert
expect_problem 409
http POST '/volumes/q1/snapshots/s1/revert?force=true'
expect_status 200
exec 3<&-
first64k q1 | cmp -s - "$T/a" || fail "after a forced revert the data is not s1's"

# Full clones are a job: 202, Location: /jobs/N, polled to success. (That
# the clone holds the snapshot's data is checked in
# tests/pending/api_clone_data.sh.)
api POST /volumes '{"name": "c1", "source": {"volume": "q1", "snapshot": "s2"}}'
expect_status 202
loc=$(header Location)
case "$loc" in
/jobs/[0-9]*) ;;
*) fail "clone Location '$loc'" ;;
esac
[ "$(json_get id)" = "${loc#/jobs/}" ] || fail "job id $(json_get id) vs Location $loc"
for ((i = 0; i < 100; i++)); do
    api GET "$loc"
    expect_status 200
    state=$(json_get state)
    [ "$state" = running ] || break
    sleep 0.1
done
[ "$state" = succeeded ] || fail "clone job ended $state: $API_BODY"
python3 - "$T/body" <<'PY' || fail "job JSON: $API_BODY"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["kind"] == "clone" and j["volume"] == "c1" and j["source"] == "q1/s2", j
assert j["progress"]["done"] == j["progress"]["total"] == 4 << 20, j
assert j["finished_at"] is not None and "error" not in j, j
PY
api GET /volumes/c1
expect_status 200
[ "$(json_get size)" = $((4 << 20)) ] || fail "clone size $(json_get size)"
api POST /volumes '{"name": "c1", "source": {"volume": "q1", "snapshot": "s2"}}'
expect_problem 409 c1
api POST /volumes '{"name": "c2", "source": {"volume": "q1", "snapshot": "nope"}}'
expect_problem 404 nope
api GET /jobs/987654
expect_problem 404

# Delete a snapshot.
api DELETE /volumes/q1/snapshots/s2
expect_status 204
api GET /volumes/q1/snapshots/s2
expect_problem 404
api DELETE /volumes/q1/snapshots/s2
expect_problem 404

# Bad requests change nothing.
api POST /volumes/q1/snapshots '{}'
expect_problem 400 "'name'"
api POST /volumes/q1/snapshots '{"name": "s3", "description": "x"}'
expect_problem 400 "'description'"
api POST /volumes/q1/snapshots '{"name": "../s3"}'
expect_problem 400
http POST /volumes/q1/snapshots -H 'Content-Type: text/plain' --data-binary '{"name": "s3"}'
expect_problem 415
api POST /volumes/nope/snapshots '{"name": "s3"}'
expect_problem 404 nope
http GET /volumes/q1/snapshots/s1/revert
expect_problem 405
[ "$(header Allow)" = POST ] || fail "Allow: $(header Allow)"
api GET /volumes/q1/snapshots
python3 -c 'import json,sys; n=[s["name"] for s in json.load(open(sys.argv[1]))["snapshots"]]; assert n == ["s1"], n' \
    "$T/body" || fail "list after refusals: $API_BODY"

# A raw volume has no snapshots: 422.
api POST /volumes '{"name": "r1", "size": "1M", "format": "raw"}'
expect_status 201
api POST /volumes/r1/snapshots '{"name": "s1"}'
expect_problem 422
api GET /volumes/r1/snapshots
expect_problem 422

[ "$(volume_names | tr '\n' ' ')" = "q1 c1 r1 " ] || fail "volumes: $(volume_names)"
stop_daemon
echo "api_snapshots_qcow2: ok"
