#!/bin/bash
# api_snapshots.sh — the snapshot, revert, clone and job routes as far as
# raw volumes reach: requests are validated (400/415/405), unknown
# volumes, snapshots and jobs are 404, and a format without snapshots is
# 422 — with nothing changed. (Taking snapshots needs qcow2.)
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "r1", "size": "1M"}'
expect_status 201
volume_names >"$T/before"

# Bodies are checked before the volume manager is asked.
api POST /volumes/r1/snapshots '{}'
expect_problem 400 "'name' is required"
api POST /volumes/r1/snapshots '{"name": "../s"}'
expect_problem 400 "'name' must match"
api POST /volumes/r1/snapshots '{"name": "s1", "description": "x"}'
expect_problem 400 "'description'"
api POST /volumes/r1/snapshots '{"name": "s1"'
expect_problem 400 "malformed JSON"
http POST /volumes/r1/snapshots -H 'Content-Type: text/plain' --data-binary '{"name": "s1"}'
expect_problem 415

# raw has no snapshots: 422 from the volume manager's -ENOTSUP.
api POST /volumes/r1/snapshots '{"name": "s1"}'
expect_problem 422 "snapshots"
api GET /volumes/r1/snapshots
expect_problem 422
api GET /volumes/r1/snapshots/s1
expect_problem 422
api DELETE /volumes/r1/snapshots/s1
expect_problem 422
http POST /volumes/r1/snapshots/s1/revert
expect_problem 422

# Unknown volumes; names in paths; methods.
api GET /volumes/nope/snapshots
expect_problem 404 nope
api POST /volumes/nope/snapshots '{"name": "s1"}'
expect_problem 404 nope
http GET /volumes/r1/snapshots/%2e%2e --path-as-is
expect_problem 400 "snapshot"
http GET /volumes/r1/snapshots/s1/revert
expect_problem 405
[ "$(header Allow)" = POST ] || fail "Allow: $(header Allow)"
http PUT /volumes/r1/snapshots/s1
expect_problem 405
http POST '/volumes/r1/snapshots/s1/revert?force=perhaps'
expect_problem 400 force

# Full clones: the body, then the volume manager's answer for raw.
api POST /volumes '{"name": "c1", "clone": {"volume": "r1"}}'
expect_problem 400 "'snapshot'"
api POST /volumes '{"name": "c1", "size": "1M", "clone": {"volume": "r1", "snapshot": "s1"}}'
expect_problem 400 "'size' cannot be used with 'clone'"
api POST /volumes '{"name": "c1", "clone": {"volume": "r1", "snapshot": "s1"}}'
expect_problem 422
api POST /volumes '{"name": "c1", "clone": {"volume": "nope", "snapshot": "s1"}}'
expect_problem 404

# Jobs.
api GET /jobs/123456
expect_problem 404 123456
http GET /jobs/abc
expect_problem 400
http DELETE /jobs/1
expect_problem 405

volume_names >"$T/after"
diff -u "$T/before" "$T/after" || fail "refused requests changed the volumes"
stop_daemon
echo "api_snapshots: ok"
