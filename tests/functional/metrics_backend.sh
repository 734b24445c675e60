#!/bin/bash
# metrics_backend.sh — /metrics follows a remote backend through an outage:
# while its NBD server is gone the volume's state gauge says disconnected
# and its link gauge says so too, the failed read is counted by errno; once
# the server is back the state is ready again, the link connected, and the
# reconnect counted. Each scrape passes promtool check metrics.
. "$(dirname "$0")/../functions.sh" || exit 1
command -v promtool >/dev/null || fail "promtool missing (deploy/install-deps.sh --test)"

export VD_NBD_TIMEOUT_MS=2000 VD_NBD_RECONNECT_MAX_MS=300
export VDISKD_NBD_SOCKET_DIR=$T

start_nbd() { # start_nbd SOCKET — nbdkit memory 64M; sets NBD_PID
    rm -f "$1"
    nbdkit --exit-with-parent -f -U "$1" memory 64M &
    NBD_PID=$!
    on_exit "kill -9 $NBD_PID"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -S "$1" ] && return 0
        sleep 0.05
    done
    fail "nbdkit did not create $1"
}

# scrape — /metrics into $T/m.txt, checked by promtool.
scrape() {
    api GET /metrics
    expect_status 200
    cp "$T/body" "$T/m.txt"
    promtool check metrics <"$T/m.txt" >"$T/promtool.out" 2>&1 ||
        fail "promtool: $(cat "$T/promtool.out")"
}
# metric NAME LABELS — the sample's value, or "absent".
metric() {
    awk -v k="$1{$2}" '$1 == k { print $2; found = 1 } END { if (!found) print "absent" }' "$T/m.txt"
}

start_nbd "$T/n.sock"
start_daemon
api POST /volumes "{\"name\":\"n\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd+unix:///?socket=$T/n.sock\"}}"
expect_status 201
qio "$VD_MNT/n" "write -P 0x11 0 64k" >/dev/null || fail "write to n"
scrape
[ "$(metric vdiskd_volume_state 'volume="n",state="ready"')" = 1 ] || fail "n not ready: $(grep _state "$T/m.txt")"
[ "$(metric vdiskd_volume_backend_link 'volume="n",link="connected"')" = 1 ] ||
    fail "link before the outage: $(grep backend "$T/m.txt")"
[ "$(metric vdiskd_volume_backend_connections 'volume="n"')" -ge 1 ] || fail "no connections"
[ "$(metric vdiskd_volume_backend_reconnects_total 'volume="n"')" = 0 ] || fail "reconnects before the outage"

kill -9 "$NBD_PID"
wait "$NBD_PID" 2>/dev/null
qio "$VD_MNT/n" "read 0 64k" >"$T/out" 2>&1
grep -q "Input/output error" "$T/out" || fail "read during outage: $(cat "$T/out")"
scrape
[ "$(metric vdiskd_volume_state 'volume="n",state="disconnected"')" = 1 ] ||
    fail "state during the outage: $(grep _state "$T/m.txt")"
[ "$(metric vdiskd_volume_state 'volume="n",state="ready"')" = 0 ] || fail "ready during the outage"
[ "$(metric vdiskd_volume_backend_link 'volume="n",link="connected"')" = 0 ] ||
    fail "link during the outage: $(grep backend "$T/m.txt")"
errs=$(grep '^vdiskd_volume_request_errors_total{volume="n",' "$T/m.txt" | awk '{ s += $2 } END { print s + 0 }')
[ "$errs" -ge 1 ] || fail "the failed read is not counted: $(grep errors "$T/m.txt")"

start_nbd "$T/n.sock"
for ((i = 0; ; i++)); do
    qio "$VD_MNT/n" "write -P 0x22 0 64k" 2>&1 | grep -q "^wrote" && break
    [ $i -lt 100 ] || fail "n did not come back after its server"
    sleep 0.1
done
scrape
[ "$(metric vdiskd_volume_state 'volume="n",state="ready"')" = 1 ] ||
    fail "state after the outage: $(grep _state "$T/m.txt")"
[ "$(metric vdiskd_volume_backend_link 'volume="n",link="connected"')" = 1 ] ||
    fail "link after the outage: $(grep backend "$T/m.txt")"
[ "$(metric vdiskd_volume_backend_reconnects_total 'volume="n"')" -ge 1 ] ||
    fail "reconnect not counted: $(grep reconnects "$T/m.txt")"
stop_daemon
echo "metrics_backend: ok"
