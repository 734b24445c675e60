#!/bin/bash
# metrics_promtool.sh — /metrics after real I/O through the mount is valid
# Prometheus exposition (promtool check metrics, lint included), and what
# it says is right: per-volume latency histograms of reads, writes and
# flushes that agree with the request counters, an injected ENOSPC
# counted under its errno, the state as a labelled gauge, API requests
# counted by route template (never the raw path), the daemon's own
# figures (a finished clone job among them), and every family documented
# in README.md.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../api_functions.sh" || exit 1
command -v promtool >/dev/null || fail "promtool missing (deploy/install-deps.sh --test)"

# The second guest data write of the daemon fails with ENOSPC.
# (--passthrough off: the daemon serves the raw volume, so its data path
# and its fault point see every write.)
VDISKD_FAULT="data-write:2:ENOSPC" start_daemon --format raw --passthrough off
api POST /volumes '{"name":"v1","size":16777216}'
expect_status 201
api POST /volumes '{"name":"idle","size":1048576}'
expect_status 201
F=$VD_MNT/v1

qio "$F" 'write -P 0x31 0 64k' >"$T/w1.out" 2>&1 ||
    fail "first write failed: $(cat "$T/w1.out")"
qio "$F" 'write -P 0x32 64k 64k' >"$T/w2.out" 2>&1 &&
    fail "the write armed to fail succeeded: $(cat "$T/w2.out")"
qio "$F" 'write -P 0x33 1M 4k' 'flush' 'read -P 0x31 0 64k' \
    'read -P 0x33 1M 4k' 'read 2M 4k' >"$T/qio.out" 2>&1 ||
    fail "I/O after the fault: $(cat "$T/qio.out")"

# A finished job: a full clone of a qcow2 volume's snapshot.
api POST /volumes '{"name":"q","size":1048576,"format":"qcow2"}'
expect_status 201
api POST /volumes/q/snapshots '{"name":"s1"}'
expect_status 201
api POST /volumes '{"name":"c1","source":{"volume":"q","snapshot":"s1"}}'
expect_status 202
for ((i = 0; ; i++)); do
    api GET /jobs/1
    expect_status 200
    [ "$(json_get state)" = running ] || break
    [ $i -lt 300 ] || fail "clone job still running"
    sleep 0.1
done
[ "$(json_get state)" = succeeded ] || fail "clone job: $API_BODY"

api GET /volumes/v1
expect_status 200
api GET /volumes/v1
expect_status 200
api GET /volumes/nosuch
expect_status 404
http GET /no/such/path
expect_status 404

api GET /metrics
expect_status 200
cp "$T/body" "$T/metrics.txt"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$T/promtool.out")"

python3 - "$T/metrics.txt" "${VD_SRCDIR:-$(dirname "$0")/../..}/README.md" <<'PY' ||
import re, sys
text = open(sys.argv[1]).read()
samples = {}
types = {}
for line in text.splitlines():
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        types[name] = kind
        continue
    if line.startswith("#"):
        continue
    m = re.fullmatch(r'([a-z_]+)(\{(.*)\})? (\S+)', line)
    assert m, "bad line %r" % line
    labels = tuple(sorted(re.findall(r'([a-z_]+)="([^"]*)"', m.group(3) or "")))
    samples[(m.group(1), labels)] = float(m.group(4))

def get(name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))

H = "vdiskd_volume_request_duration_seconds"
assert types[H] == "histogram", types.get(H)
for vol in ("v1", "idle"):
    for op in ("read", "write", "flush"):
        les = [(l, v) for (n, ls), v in samples.items()
               if n == H + "_bucket" and dict(ls).get("volume") == vol
               and dict(ls).get("op") == op
               for l in [dict(ls)["le"]]]
        assert len(les) == 22, (vol, op, len(les))
        finite = sorted((float(l), v) for l, v in les if l != "+Inf")
        assert finite[0][0] == 1e-05 and abs(finite[-1][0] - 10.48576) < 1e-9, finite
        counts = [v for _, v in finite] + [get(H + "_bucket", volume=vol, op=op, le="+Inf")]
        assert counts == sorted(counts), ("buckets not cumulative", vol, op, counts)
        assert counts[-1] == get(H + "_count", volume=vol, op=op), (vol, op)
        if vol == "idle":
            assert counts[-1] == 0 and get(H + "_sum", volume=vol, op=op) == 0

# Every read the volume served is in the histogram once.
reads = get("vdiskd_volume_reads_total", volume="v1")
assert reads >= 3 and get(H + "_count", volume="v1", op="read") == reads, \
    (reads, get(H + "_count", volume="v1", op="read"))
assert get(H + "_count", volume="v1", op="write") >= 3
assert get(H + "_count", volume="v1", op="flush") >= 1
assert get(H + "_sum", volume="v1", op="read") > 0

E = "vdiskd_volume_request_errors_total"
assert types[E] == "counter"
assert get(E, volume="v1", errno="ENOSPC") >= 1, [k for k in samples if k[0] == E]
assert not [k for k in samples if k[0] == E and dict(k[1])["volume"] == "idle"]

for vol in ("v1", "idle"):
    assert get("vdiskd_volume_state", volume=vol, state="ready") == 1
    for s in ("missing", "corrupt", "deleting", "disconnected"):
        assert get("vdiskd_volume_state", volume=vol, state=s) == 0, (vol, s)
assert get("vdiskd_volume_in_flight", volume="v1") == 0
assert get("vdiskd_volume_throttled_seconds_total", volume="v1") is not None

R = "vdiskd_api_requests_total"
assert get(R, route="/volumes/{volume}", method="GET", status="200") == 2
assert get(R, route="/volumes/{volume}", method="GET", status="404") == 1
assert get(R, route="unmatched", method="GET", status="404") == 1
assert get(R, route="/volumes", method="POST", status="201") == 3
assert get(R, route="/volumes", method="POST", status="202") == 1
routes = {dict(ls)["route"] for (n, ls) in samples if n.startswith("vdiskd_api_")}
assert not [r for r in routes if "v1" in r or "nosuch" in r or "/no/" in r], routes
D = "vdiskd_api_request_duration_seconds"
assert types[D] == "histogram"
assert get(D + "_count", route="/volumes/{volume}", method="GET") == 3

assert get("vdiskd_open_fds") > 3
assert get("vdiskd_threads") > 1
assert get("vdiskd_io_thread_busy_seconds_total") > 0
assert get("vdiskd_jobs", state="running") == 0
assert get("vdiskd_jobs", state="succeeded") == 1
assert get("vdiskd_jobs", state="failed") == 0
assert get(R, route="/jobs/{id}", method="GET", status="200") >= 1

# Every family is documented in the README's metrics section.
readme = open(sys.argv[2]).read()
undocumented = [n for n in types if "`%s`" % n not in readme]
assert not undocumented, "not in README.md: %s" % undocumented
PY
    fail "metrics content (see above)"
stop_daemon
echo "metrics_promtool: ok"
