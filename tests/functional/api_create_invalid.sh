#!/bin/bash
# api_create_invalid.sh — every malformed POST /volumes gets a 4xx
# problem+json whose detail names what was wrong, and changes nothing:
# the list and the images directory are the same afterwards.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "keep", "size": "1M"}'
expect_status 201

snapshot() {
    volume_names
    find "$VD_DATA" -name '*.raw' -o -name '*.qcow2' | sort
}
snapshot >"$T/before"

# bad BODY CODE DETAIL-SUBSTRING
bad() {
    api POST /volumes "$1"
    expect_problem "$2" "$3"
}

# Malformed JSON: the detail says where.
bad '{"name": "a", "size": 512,}' 400 "line 1, column"
bad '{"name": "a" "size": 512}' 400 "line 1, column 19"
bad '' 400 "malformed JSON"
bad '{"name": "a", "size": 512} trailing' 400 "malformed JSON"
bad '{"name": "a", "name": "b", "size": 512}' 400 "duplicate"
bad '{"name": "a\u0000b", "size": 512}' 400 "malformed JSON"
bad "$(printf '{"name": "a\xff", "size": 512}')" 400 "malformed JSON"
bad "$(python3 -c 'print("[" * 10000)')" 400 "malformed JSON"

# Not an object; unknown members (top level and nested) are named.
bad '[]' 400 "JSON object"
bad '"v1"' 400 "malformed JSON"
bad '{"name": "a", "size": 512, "colour": "red"}' 400 "'colour'"
bad '{"name": "a", "size": 512, "backend": {"type": "file", "x": 1}}' 400 "'backend.x'"
bad '{"name": "a", "import": {"path": "/tmp/x", "mode": 1}}' 400 "'import.mode'"

# Names.
bad '{"size": 512}' 400 "'name' is required"
bad '{"name": 7, "size": 512}' 400 "'name' must be a string"
bad '{"name": "", "size": 512}' 400 "'name'"
bad '{"name": "..", "size": 512}' 400 "'name' must match"
bad '{"name": ".", "size": 512}' 400 "'name' must match"
bad '{"name": "a/b", "size": 512}' 400 "'name' must match"
bad '{"name": "../etc", "size": 512}' 400 "'name' must match"
bad '{"name": "Upper", "size": 512}' 400 "'name' must match"
bad '{"name": "-x", "size": 512}' 400 "'name' must match"
bad '{"name": "sp ace", "size": 512}' 400 "'name' must match"
bad "{\"name\": \"$(printf 'a%.0s' {1..65})\", \"size\": 512}" 400 "'name' must match"

# Sizes.
bad '{"name": "a"}' 400 "'size' is required"
bad '{"name": "a", "size": 0}' 400 "greater than zero"
bad '{"name": "a", "size": "0"}' 400 "greater than zero"
bad '{"name": "a", "size": -512}' 400 "negative"
bad '{"name": "a", "size": 1000}' 400 "multiple of 512"
bad '{"name": "a", "size": "1000"}' 400 "multiple of 512"
bad '{"name": "a", "size": 70368744178176}' 400 "64 TiB"
bad '{"name": "a", "size": "65T"}' 400 "64 TiB"
bad '{"name": "a", "size": "1P"}' 400 "64 TiB"
bad '{"name": "a", "size": "99999999999999999999"}' 400 "too large"
bad '{"name": "a", "size": 99999999999999999999}' 400 "malformed JSON"
bad '{"name": "a", "size": 1.5}' 400 "integer"
bad '{"name": "a", "size": 512.0}' 400 "integer"
bad '{"name": "a", "size": 1e3}' 400 "integer"
bad '{"name": "a", "size": "1.5G"}' 400 "'size'"
bad '{"name": "a", "size": "ten"}' 400 "'size'"
bad '{"name": "a", "size": "10 G"}' 400 "'size'"
bad '{"name": "a", "size": "-1G"}' 400 "'size'"
bad '{"name": "a", "size": ""}' 400 "'size'"
bad '{"name": "a", "size": true}' 400 "'size'"
bad '{"name": "a", "size": null}' 400 "'size'"
bad '{"name": "a", "size": [512]}' 400 "'size'"

# Other members: types and values.
bad '{"name": "a", "size": 512, "format": "vmdk"}' 400 "'format'"
bad '{"name": "a", "size": 512, "format": 1}' 400 "'format'"
bad '{"name": "a", "size": 512, "backend": "file"}' 400 "'backend'"
bad '{"name": "a", "size": 512, "backend": {}}' 400 "'backend.type' is required"
bad '{"name": "a", "size": 512, "backend": {"type": "iscsi"}}' 400 "'backend.type'"
bad '{"name": "a", "size": 512, "backend": {"type": "rbd", "pool": "rbd"}}' 400 "no RBD cluster is configured"
bad '{"name": "a", "size": 512, "backend": {"type": "rbd", "pool": 1}}' 400 "'backend.pool'"
bad '{"name": "a", "size": 512, "backend": {"type": "nbd", "uri": "nbd://x", "pool": "p"}}' 400 "'backend.pool'"
bad '{"name": "a", "size": 512, "backend": {"type": "nbd"}}' 400 "'backend.uri'"
bad '{"name": "a", "size": 512, "backend": {"type": "file", "uri": "nbd://x"}}' 400 "'backend.uri'"
bad '{"name": "a", "size": 512, "cluster_size": "64K"}' 400 "'cluster_size'"
bad '{"name": "a", "size": 512, "cluster_size": 0}' 400 "'cluster_size'"
bad '{"name": "a", "size": 512, "cluster_size": -65536}' 400 "'cluster_size'"
bad '{"name": "a", "size": 512, "format": "raw", "cluster_size": 65536}' 400 "no clusters"
bad '{"name": "a", "size": 512, "base": "../keep"}' 400 "'base'"
bad '{"name": "a", "size": 512, "base": 1}' 400 "'base'"
bad '{"name": "a", "import": "/tmp/x"}' 400 "'import'"
bad '{"name": "a", "import": {}}' 400 "'import.path' is required"
bad '{"name": "a", "import": {"path": "relative/x"}}' 400 "absolute"
bad '{"name": "a", "base": "keep", "import": {"path": "/tmp/x"}}' 400 "together"

# Refused by the volume manager, mapped by the API: an import from outside
# the allowed directories (403), a base that does not exist (404).
bad '{"name": "a", "import": {"path": "/etc/passwd"}}' 403 "/etc/passwd"
bad '{"name": "a", "base": "nosuch"}' 404 "nosuch"

snapshot >"$T/after"
diff -u "$T/before" "$T/after" || fail "a refused request changed the volumes"
stop_daemon
echo "api_create_invalid: ok"
