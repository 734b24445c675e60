#!/bin/bash
# log_json.sh — --log-format json writes one JSON object a line with the
# keys ts, level and msg (in that order) for every event, even when a
# message holds quotes, backslashes, control characters or bytes that are
# not UTF-8 (here the data directory's name); VDISKD_LOG_FORMAT does the
# same; text stays the default; a bad format is refused.
. "$(dirname "$0")/../functions.sh" || exit 1

"$VDISKD" --log-format xml --help >"$T/bad.out" 2>&1
[ $? -eq 2 ] || fail "--log-format xml was accepted: $(cat "$T/bad.out")"

check_json() { # check_json LOGFILE — every line an object; prints msgs
    python3 - "$1" <<'PY'
import json, re, sys
raw = open(sys.argv[1], "rb").read()
lines = raw.split(b"\n")
assert lines[-1] == b"", "log does not end with a newline"
assert len(lines) > 3, "too few lines: %r" % raw
for b in lines[:-1]:
    s = b.decode("utf-8")  # must be valid UTF-8
    o = json.loads(s, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in o]
    assert keys == ["ts", "level", "msg"], (keys, s)
    d = dict(o)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["ts"]), s
    assert d["level"] in ("debug", "info", "warn", "error"), s
    assert isinstance(d["msg"], str) and d["msg"], s
    print(d["msg"])
PY
}

# A data directory whose name needs escaping: a quote, a backslash, a tab
# and a byte that is not UTF-8. The created volume's log line names it.
VD_DATA=$T/$'da"t\\a\t\xff'
start_daemon --log-format json --format raw
api POST /volumes '{"name":"v1","size":1048576}'
expect_status 201
stop_daemon
check_json "$VD_LOG" >"$T/msgs" || fail "JSON log: $(head -c 2000 "$VD_LOG")"
grep -q "created volume 'v1'" "$T/msgs" || fail "no create event: $(cat "$T/msgs")"
python3 - "$T/msgs" <<'PY' || fail "escaped characters lost: $(grep created "$T/msgs")"
import sys
line = [l for l in open(sys.argv[1], encoding="utf-8") if "created volume" in l][0]
assert 'da"t\\a\t\ufffd' in line, repr(line)
PY

# The environment variable, with the default data directory name.
rm -f "$VD_LOG"
unset VD_DATA
VDISKD_LOG_FORMAT=json start_daemon --format raw
stop_daemon
check_json "$VD_LOG" >/dev/null || fail "VDISKD_LOG_FORMAT=json: $(head -c 2000 "$VD_LOG")"

# Text stays the default.
rm -f "$VD_LOG"
start_daemon --format raw
stop_daemon
grep -Ev '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z vdiskd\[(debug|info|warn|error)\]: ' "$VD_LOG" &&
    fail "default log lines are not text"
grep -q 'vdiskd\[info\]' "$VD_LOG" || fail "no text log lines"
echo "log_json: ok"
