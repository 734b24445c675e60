#!/bin/bash
# api_stats.sh — I/O through a volume's file shows up in the volume JSON
# (stats, allocated) and in /metrics, counted per volume.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw --passthrough off # the daemon counts what it serves
api POST /volumes '{"name": "io", "size": "4M"}'
expect_status 201
api POST /volumes '{"name": "idle", "size": "4M"}'
expect_status 201

dd if=/dev/urandom of="$VD_MNT/io" bs=64k count=8 conv=notrunc,fsync status=none ||
    fail "write through the mount"
dd if="$VD_MNT/io" of=/dev/null bs=64k count=4 iflag=direct status=none ||
    fail "read through the mount"

api GET /volumes/io
python3 - "$T/body" <<'PY' || fail "stats after I/O: $API_BODY"
import json, sys
v = json.load(open(sys.argv[1]))
s = v["stats"]
assert s["writes"] > 0 and s["bytes_written"] >= 8 * 65536, s
assert s["reads"] > 0 and s["bytes_read"] >= 4 * 65536, s
assert s["errors"] == 0, s
assert s["async_requests"] > 0, s
assert v["allocated"] is None or v["allocated"] >= 8 * 65536, v["allocated"]
PY
written=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["bytes_written"])' "$T/body")

api GET /volumes/idle
[ "$(json_get stats)" = '{"reads": 0, "writes": 0, "bytes_read": 0, "bytes_written": 0, "errors": 0, "async_requests": 0, "throttled_requests": 0, "throttled_seconds": 0.0}' ] ||
    fail "idle volume has stats: $(json_get stats)"

api GET /metrics
grep -qx "vdiskd_volume_written_bytes_total{volume=\"io\"} $written" "$T/body" ||
    fail "metrics disagree with the volume ($written bytes written): $(grep written "$T/body")"
grep -qx 'vdiskd_volume_written_bytes_total{volume="idle"} 0' "$T/body" ||
    fail "idle volume in metrics: $(grep idle "$T/body")"
stop_daemon
echo "api_stats: ok"
