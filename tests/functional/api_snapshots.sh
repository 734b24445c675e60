#!/bin/bash
# api_snapshots.sh — the snapshot, revert, changes, clone and job routes
# refusing what they must: requests are validated (400/415/405), unknown
# volumes and jobs are 404, a volume whose format has no snapshots (raw)
# is 422 — and nothing changes. The success paths are in
# api_snapshots_qcow2.sh.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "r1", "size": "1M"}'
expect_status 201
volume_names >"$T/before"

# Bodies are checked before the volume manager is asked.
api POST /volumes/r1/snapshots '{}'
expect_problem 400 "'name'"
api POST /volumes/r1/snapshots '{"name": 5}'
expect_problem 400 "'name'"
api POST /volumes/r1/snapshots '{"name": "s1", "description": "x"}'
expect_problem 400 "'description'"
api POST /volumes/r1/snapshots '{"name": "s1"'
expect_problem 400 "malformed JSON"
api POST /volumes/r1/snapshots '[]'
expect_problem 400 "object"
http POST /volumes/r1/snapshots -H 'Content-Type: text/plain' --data-binary '{"name": "s1"}'
expect_problem 415
api POST /volumes/r1/snapshots/s1/revert '{"force": "yes"}'
expect_problem 400 "'force'"
api POST /volumes/r1/snapshots/s1/revert '{"hard": true}'
expect_problem 400 "'hard'"
http POST '/volumes/r1/snapshots/s1/revert?force=maybe'
expect_problem 400 "'force'"
http POST '/volumes/r1/snapshots/s1/revert?hard=true'
expect_problem 400 "'hard'"

# raw has no snapshots: 422 from the volume manager's -ENOTSUP.
api POST /volumes/r1/snapshots '{"name": "s1"}'
expect_problem 422 "snapshots"
api GET /volumes/r1/snapshots
expect_problem 422
api GET /volumes/r1/snapshots/s1
expect_problem 422
api DELETE /volumes/r1/snapshots/s1
expect_problem 422
api POST /volumes/r1/snapshots/s1/revert '{}'
expect_problem 422
api GET '/volumes/r1/snapshots/s1/changes?since=s0'
expect_problem 422

# Unknown volumes; names in paths and queries; methods.
api GET /volumes/nope/snapshots
expect_problem 404 nope
api POST /volumes/nope/snapshots '{"name": "s1"}'
expect_problem 404 nope
http GET /volumes/r1/snapshots/%2e%2e --path-as-is
expect_problem 400 "snapshot"
http GET /volumes/r1/snapshots/a%2fb
expect_problem 400
http GET '/volumes/r1/snapshots/s1/changes?since=..'
expect_problem 400 since
http GET '/volumes/r1/snapshots/s1/changes?until=s2'
expect_problem 400 "'until'"
http GET /volumes/r1/snapshots/s1/revert
expect_problem 405
[ "$(header Allow)" = POST ] || fail "Allow: $(header Allow)"
http PUT /volumes/r1/snapshots/s1
expect_problem 405
http POST /volumes/r1/snapshots/s1/changes
expect_problem 405

# Full clones: the body, then the volume manager's answer.
api POST /volumes '{"name": "c1", "source": {"volume": "r1"}}'
expect_problem 400 "'snapshot'"
api POST /volumes '{"name": "c1", "source": {"volume": "r1", "snapshot": "s1", "x": 1}}'
expect_problem 400 "'source.x'"
api POST /volumes '{"name": "c1", "size": "1M", "source": {"volume": "r1", "snapshot": "s1"}}'
expect_problem 400 "size"
api POST /volumes '{"name": "c1", "base": "r1", "source": {"volume": "r1", "snapshot": "s1"}}'
expect_problem 400 "together"
api POST /volumes '{"name": "c1", "source": {"volume": "r1", "snapshot": "s1"}}'
expect_problem 422
api POST /volumes '{"name": "c1", "source": {"volume": "nope", "snapshot": "s1"}}'
expect_problem 404 nope

# Jobs.
api GET /jobs/123456
expect_problem 404 123456
http GET /jobs/abc
expect_problem 404
http DELETE /jobs/1
expect_problem 405

volume_names >"$T/after"
diff -u "$T/before" "$T/after" || fail "refused requests changed the volumes"
stop_daemon
echo "api_snapshots: ok"
