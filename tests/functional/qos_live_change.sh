#!/bin/bash
# qos_live_change.sh — a new limit reaches a volume under load within a
# second: while fio reads at queue depth 32, the limit goes from 500 to
# 2000 IOPS and then down to 300. The volume's own read counter, sampled
# over the second that starts one second after each change, shows the new
# rate (+-15%), in both directions; so do the requests queued when the
# limit drops.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

# rate_over FROM_MS TO_MS: reads per second of volume v in that window.
rate_over() {
    sleep_until_ms "$1"
    local r0 t0 r1 t1
    t0=$(now_ms)
    r0=$(volume_stat v reads)
    sleep_until_ms "$2"
    t1=$(now_ms)
    r1=$(volume_stat v reads)
    echo $(((r1 - r0) * 1000 / (t1 - t0)))
}

start_daemon
api POST /volumes '{"name":"v","size":"64M","format":"raw","qos":{"iops":500}}'
expect_status 201
fio_run load "$VD_MNT/v" randread 4k 32 9 &
fio=$!
on_exit "kill $fio"
t=$(now_ms)
r_500=$(rate_over $((t + 1000)) $((t + 2000)))
api PATCH /volumes/v '{"qos":{"iops":2000}}'
expect_status 200
t=$(now_ms)
r_2000=$(rate_over $((t + 1000)) $((t + 2000)))
api PATCH /volumes/v '{"qos":{"iops":300}}'
expect_status 200
t=$(now_ms)
r_300=$(rate_over $((t + 1000)) $((t + 2000)))
wait $fio || fail "fio under changing limits"
echo "reads/s: $r_500 at 500, $r_2000 one second after 2000, $r_300 after 300"
within "$r_500" 500 15 || fail "$r_500 reads/s under a 500 IOPS limit"
within "$r_2000" 2000 15 || fail "$r_2000 reads/s one second after raising to 2000"
within "$r_300" 300 15 || fail "$r_300 reads/s one second after lowering to 300"
stop_daemon
