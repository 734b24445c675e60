#!/bin/bash
# grafana_dashboard.sh — deploy/grafana-dashboard.json only asks for what
# the daemon exports: every query names at least one metric and every
# metric it names is in a live /metrics (histogram series by their
# _bucket, _sum and _count). It has the panels operators need (IOPS,
# bandwidth, p50 and p99 from the histograms, throttled time, errors).
# Then a real Prometheus scrapes the daemon and runs every query (with
# Grafana's variables filled in): each one must parse, and IOPS and the
# p99 latency must come back with data for the volume that did I/O.
. "$(dirname "$0")/../functions.sh" || exit 1
SRC=${VD_SRCDIR:-$(dirname "$0")/../..}
DASH=$SRC/deploy/grafana-dashboard.json
command -v prometheus >/dev/null || fail "prometheus missing (deploy/install-deps.sh --test)"

start_daemon --format raw --passthrough off # the daemon times every request
api POST /volumes '{"name":"v1","size":16777216}'
expect_status 201
dd if=/dev/urandom of="$VD_MNT/v1" bs=4k count=256 oflag=direct conv=notrunc status=none ||
    fail "write through the mount"
api GET /metrics
expect_status 200
cp "$T/body" "$T/metrics.txt"

python3 - "$DASH" "$T/metrics.txt" "$T/queries" <<'PY' || fail "dashboard against /metrics (see above)"
import json, re, sys
dash = json.load(open(sys.argv[1]))
exported = set()
for line in open(sys.argv[2]):
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        exported.add(name)
        if kind == "histogram":
            exported |= {name + "_bucket", name + "_sum", name + "_count"}
exprs = []
ids = set()
for p in dash["panels"]:
    assert p["id"] not in ids, "duplicate panel id %r" % p["id"]
    ids.add(p["id"])
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
for v in dash["templating"]["list"]:
    q = v.get("query")
    if isinstance(q, dict):
        exprs.append(("variable " + v["name"], q["query"]))
assert len(exprs) >= 10, exprs
for title, e in exprs:
    names = set(re.findall(r"\b(vdiskd_[a-z0-9_]+)\b", e))
    assert names, "%s: query names no vdiskd metric: %s" % (title, e)
    missing = names - exported
    assert not missing, "%s: not exported: %s in %s" % (title, sorted(missing), e)
allq = "\n".join(e for _, e in exprs)
H = "vdiskd_volume_request_duration_seconds"
for want in ("histogram_quantile(0.5, sum by (le, volume) (rate(%s_bucket" % H,
             "histogram_quantile(0.99, sum by (le, volume) (rate(%s_bucket" % H,
             "rate(%s_count" % H, "vdiskd_volume_read_bytes_total",
             "vdiskd_volume_written_bytes_total",
             "vdiskd_volume_throttled_seconds_total",
             "vdiskd_volume_request_errors_total"):
    assert want in allq, "no query with " + want
with open(sys.argv[3], "w") as f:
    for _, e in exprs:
        if e.startswith("label_values("):  # Grafana's, not PromQL
            e = re.sub(r"label_values\((\w+), \w+\)", r"\1", e)
        e = e.replace("$__rate_interval", "1m").replace("$volume", ".*")
        f.write(e + "\n")
PY

# A Prometheus of the test's own, scraping the daemon every second.
PROM_PORT=$(free_port)
cat >"$T/prom.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: vdiskd
    static_configs:
      - targets: ['127.0.0.1:$VD_PORT']
YML
prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/prom" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prom.log" 2>&1 &
PROM_PID=$!
on_exit "kill $PROM_PID; wait $PROM_PID"
PROM=http://127.0.0.1:$PROM_PORT
query() { # query EXPR — JSON answer in $T/q.json
    curl -sS --get "$PROM/api/v1/query" --data-urlencode "query=$1" -o "$T/q.json"
}
results() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]["result"]))' "$T/q.json"; }
for ((i = 0; ; i++)); do
    query 'vdiskd_volumes' 2>/dev/null && [ "$(results 2>/dev/null)" = 1 ] && break
    kill -0 "$PROM_PID" 2>/dev/null || fail "prometheus exited: $(tail -5 "$T/prom.log")"
    [ $i -lt 600 ] || fail "prometheus never scraped the daemon: $(tail -5 "$T/prom.log")"
    sleep 0.1
done
# Reads between scrapes, so rates and quantiles have something to show.
for ((i = 0; i < 4; i++)); do
    dd if="$VD_MNT/v1" of=/dev/null bs=4k count=256 iflag=direct status=none ||
        fail "read through the mount"
    sleep 1
done
while read -r q; do
    query "$q" || fail "query failed: $q"
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["status"] == "success", j' \
        "$T/q.json" || fail "prometheus refused: $q: $(cat "$T/q.json")"
done <"$T/queries"
H=vdiskd_volume_request_duration_seconds
query "sum by (volume) (rate(${H}_count{volume=~\".*\",op=\"read\"}[1m]))"
[ "$(results)" = 1 ] || fail "no read IOPS for v1: $(cat "$T/q.json")"
query "histogram_quantile(0.99, sum by (le, volume) (rate(${H}_bucket{volume=~\".*\",op=\"read\"}[1m])))"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["data"]["result"]
assert len(r) == 1 and r[0]["metric"]["volume"] == "v1", r
v = float(r[0]["value"][1])
assert 0 < v <= 10.48576, v
' "$T/q.json" || fail "no read p99 for v1: $(cat "$T/q.json")"
kill "$PROM_PID"
wait "$PROM_PID" 2>/dev/null
stop_daemon
echo "grafana_dashboard: ok"
