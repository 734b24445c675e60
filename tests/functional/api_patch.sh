#!/bin/bash
# api_patch.sh — PATCH /volumes/{name} grows a volume and refuses
# everything else: unknown members, missing or bad sizes, shrinking,
# unknown volumes — each with a problem and no change.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "v1", "size": "4M"}'
expect_status 201
image=$(json_get image)

size_is() {
    api GET /volumes/v1
    [ "$(json_get size)" = "$1" ] || fail "size is $(json_get size), want $1"
    [ "$(stat -c %s "$image")" = "$1" ] || fail "image is $(stat -c %s "$image") bytes, want $1"
}

# bad BODY CODE DETAIL-SUBSTRING
bad() {
    api PATCH /volumes/v1 "$1"
    expect_problem "$2" "$3"
    size_is $((4 << 20))
}
bad '{}' 400 "'size' is required"
bad '{"size": "8M", "name": "v2"}' 400 "'name'"
bad '{"format": "qcow2"}' 400 "'format'"
bad '{"size": 0}' 400 "greater than zero"
bad '{"size": 1000}' 400 "multiple of 512"
bad '{"size": "65T"}' 400 "64 TiB"
bad '{"size": 1.5}' 400 "integer"
bad '{"size": "big"}' 400 "'size'"
bad '{"size": -4194304}' 400 "negative"
bad '[]' 400 "JSON object"
bad '{"size": 8388608' 400 "malformed JSON"
bad '{"size": "2M"}' 400 "shrink"

api PATCH /volumes/nope '{"size": "8M"}'
expect_problem 404 nope

# Growing works with both spellings, and the same size is a no-op.
api PATCH /volumes/v1 '{"size": 8388608}'
expect_status 200
[ "$(json_get size)" = 8388608 ] || fail "PATCH answered size $(json_get size)"
size_is 8388608
http PATCH /volumes/v1 -H 'Content-Type: application/merge-patch+json' \
    --data-binary '{"size": "1G"}'
expect_status 200
size_is $((1 << 30))
api PATCH /volumes/v1 '{"size": "1G"}'
expect_status 200
size_is $((1 << 30))
stop_daemon
echo "api_patch: ok"
