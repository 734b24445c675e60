#!/bin/bash
# api_lifecycle.sh — a volume's life through the REST API: create (201,
# Location, full JSON), show, list, grow, delete (204), then gone (404).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw

api GET /volumes
expect_status 200
[ "$(json_get volumes)" = "[]" ] || fail "fresh daemon lists volumes: $API_BODY"

api POST /volumes '{"name": "v1", "size": "16M"}'
expect_status 201
[ "$(header Location)" = "/volumes/v1" ] || fail "Location is '$(header Location)'"
case "$(header Content-Type)" in
application/json*) ;;
*) fail "201 Content-Type is '$(header Content-Type)'" ;;
esac
cp "$T/body" "$T/created.json"

# Every documented member, with its type and value.
python3 - "$T/created.json" "$VD_MNT" "$VD_DATA" <<'PY' || fail "volume JSON: $API_BODY"
import json, re, sys, time, calendar
v = json.load(open(sys.argv[1]))
mnt, data = sys.argv[2], sys.argv[3]
want = {"name", "uuid", "size", "format", "backend", "path", "image",
        "allocated", "state", "state_reason", "open_count", "passthrough",
        "created_at", "base", "stats", "owner", "uid", "gid", "mode", "qos",
        "qos_group"}
assert set(v) == want, "members %s" % sorted(set(v) ^ want)
assert v["name"] == "v1"
assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", v["uuid"]), v["uuid"]
assert v["size"] == 16 << 20 and type(v["size"]) is int
assert v["format"] == "raw"
assert v["backend"] == {"type": "file"}
assert v["path"] == mnt + "/v1", v["path"]
assert isinstance(v["image"], str) and v["image"].startswith(data + "/"), v["image"]
assert v["allocated"] is None or (type(v["allocated"]) is int and v["allocated"] >= 0)
assert v["state"] == "ready"
assert v["state_reason"] is None
assert v["passthrough"] is False  # nothing has the file open
assert v["open_count"] == 0
assert v["base"] is None
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["created_at"]), v["created_at"]
t = calendar.timegm(time.strptime(v["created_at"], "%Y-%m-%dT%H:%M:%SZ"))
assert abs(t - time.time()) < 120, "created_at %s is not now" % v["created_at"]
assert v["stats"] == {"reads": 0, "writes": 0, "bytes_read": 0,
                      "bytes_written": 0, "errors": 0,
                      "async_requests": 0, "throttled_requests": 0,
                      "throttled_seconds": 0.0}, v["stats"]
assert (v["owner"], v["uid"], v["gid"], v["mode"]) == ("root:root", 0, 0, "0660"), v
assert v["qos"] == {k: None for k in ("iops", "read_iops", "write_iops", "bps",
                                      "read_bps", "write_bps",
                                      "burst_seconds")}, v["qos"]
assert v["qos_group"] is None
PY
image=$(json_get image)
[ -f "$image" ] || fail "image file $image does not exist"
[ "$(stat -c %s "$image")" -eq $((16 << 20)) ] || fail "image is $(stat -c %s "$image") bytes"

# GET shows the same volume.
api GET /volumes/v1
expect_status 200
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert a == b, (a, b)' \
    "$T/created.json" "$T/body" || fail "GET differs from the 201 body: $API_BODY"

# A second volume, size as an integer, listed after the first.
api POST /volumes '{"name": "v2", "size": 1048576, "format": "raw"}'
expect_status 201
[ "$(json_get size)" = 1048576 ] || fail "v2 size $(json_get size)"
[ "$(volume_names | tr '\n' ' ')" = "v1 v2 " ] || fail "list: $(volume_names)"

# Grow v1 to 32 MiB, with a suffixed string.
api PATCH /volumes/v1 '{"size": "32M"}'
expect_status 200
[ "$(json_get size)" = $((32 << 20)) ] || fail "PATCH answered size $(json_get size)"
api GET /volumes/v1
[ "$(json_get size)" = $((32 << 20)) ] || fail "GET after PATCH: size $(json_get size)"
[ "$(stat -c %s "$image")" -eq $((32 << 20)) ] || fail "image not grown"

# Delete: 204 with no body, then 404, and only v2 is left.
api DELETE /volumes/v1
expect_status 204
[ -z "$API_BODY" ] || fail "204 with a body: $API_BODY"
api GET /volumes/v1
expect_problem 404 v1
[ "$(volume_names)" = v2 ] || fail "after delete the list is: $(volume_names)"
[ ! -e "$image" ] || fail "image $image left behind"
api DELETE /volumes/v1
expect_problem 404

# It survives a restart.
stop_daemon
start_daemon --format raw
[ "$(volume_names)" = v2 ] || fail "after restart the list is: $(volume_names)"
stop_daemon
echo "api_lifecycle: ok"
