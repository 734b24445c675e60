#!/bin/bash
# api_service.sh — /health, /openapi.json (the checked-in api/openapi.json,
# byte for byte) and /metrics (Prometheus text that follows the volumes).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw

api GET /health
expect_status 200
[ "$(json_get status)" = ok ] || fail "health: $API_BODY"

api GET /openapi.json
expect_status 200
case "$(header Content-Type)" in
application/json*) ;;
*) fail "openapi Content-Type '$(header Content-Type)'" ;;
esac
cmp -s "$T/body" "$VD_SRCDIR/api/openapi.json" || fail "served OpenAPI differs from api/openapi.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["openapi"].startswith("3."); assert "/volumes/{name}" in d["paths"]' \
    "$T/body" || fail "OpenAPI document: $(head -c 200 "$T/body")"

# metric NAME [LABELS] — its value in the last /metrics answer, or "absent".
metric() {
    python3 - "$T/body" "$1" "${2:-}" <<'PY'
import sys
name, labels = sys.argv[2], sys.argv[3]
want = name + ("{" + labels + "}" if labels else "")
vals = [l.rsplit(" ", 1)[1] for l in open(sys.argv[1]) if l.rsplit(" ", 1)[0] == want]
print(vals[0] if len(vals) == 1 else "absent" if not vals else "duplicate")
PY
}
api GET /metrics
expect_status 200
case "$(header Content-Type)" in
text/plain*) ;;
*) fail "metrics Content-Type '$(header Content-Type)'" ;;
esac
[ "$(metric vdiskd_volumes)" = 0 ] || fail "vdiskd_volumes: $API_BODY"
grep -q '^# TYPE vdiskd_volume_reads_total counter$' "$T/body" || fail "no TYPE line: $API_BODY"

api POST /volumes '{"name": "m1", "size": "1M"}'
expect_status 201
api POST /volumes '{"name": "m2", "size": "2M"}'
expect_status 201
api GET /metrics
[ "$(metric vdiskd_volumes)" = 2 ] || fail "vdiskd_volumes after 2 creates: $API_BODY"
for v in m1 m2; do
    for m in reads_total writes_total read_bytes_total written_bytes_total \
             errors_total async_requests_total open_handles; do
        [ "$(metric vdiskd_volume_$m "volume=\"$v\"")" = 0 ] ||
            fail "vdiskd_volume_$m for $v: $(metric vdiskd_volume_$m "volume=\"$v\"")"
    done
done
# The line shape below is that of the plain per-volume families; the
# ones with more labels, or seconds, are promtool's (metrics_promtool.sh).
grep -Ev '^vdiskd_(volume_(request_|state|backend_|throttled)|api_|jobs|io_thread)' \
    "$T/body" >"$T/plain" && cp "$T/plain" "$T/body"
[ "$(metric vdiskd_volume_size_bytes 'volume="m2"')" = 2097152 ] || fail "m2 size metric"
# Every sample line is NAME{labels} NUMBER or NAME NUMBER (seconds have
# a fraction).
grep -v '^#' "$T/body" | grep -Ev '^[a-z_]+(\{volume="[a-z0-9_.-]+"\})? [0-9]+(\.[0-9]+)?$' &&
    fail "malformed metric lines"

api DELETE /volumes/m1
expect_status 204
api GET /metrics
[ "$(metric vdiskd_volumes)" = 1 ] || fail "vdiskd_volumes after delete"
[ "$(metric vdiskd_volume_reads_total 'volume="m1"')" = absent ] || fail "m1 still in metrics"
stop_daemon
echo "api_service: ok"
