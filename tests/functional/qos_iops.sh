#!/bin/bash
# qos_iops.sh — an IOPS limit holds under load: 4k random reads at queue
# depth 32 through the FUSE file of a volume limited to 2000 IOPS run at
# 2000 +- 5% over 10 s, on a raw and on a qcow2 volume (whose unallocated
# reads take the blocking path once released). The limit shows in GET
# and the waiting in the volume's stats and /metrics.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

start_daemon
for fmt in raw qcow2; do
    api POST /volumes "{\"name\":\"$fmt\",\"size\":\"64M\",\"format\":\"$fmt\",
                        \"qos\":{\"iops\":2000}}"
    expect_status 201
    [ "$(json_get qos)" = '{"iops": 2000, "read_iops": null, "write_iops": null, "bps": null, "read_bps": null, "write_bps": null, "burst_seconds": null}' ] ||
        fail "$fmt: qos shown as $(json_get qos)"
    fio_run "rr-$fmt" "$VD_MNT/$fmt" randread 4k 32 10
    iops=$(fio_get "rr-$fmt" read iops)
    within "$iops" 2000 5 || fail "$fmt: $iops IOPS under a 2000 IOPS limit"
    echo "$fmt: $iops IOPS (limit 2000)"
    [ "$(volume_stat "$fmt" throttled_requests)" -gt 1000 ] ||
        fail "$fmt: requests were not counted as held back"
done
api GET /metrics
grep -Eq '^vdiskd_volume_throttled_seconds_total\{volume="raw"\} [1-9]' "$T/body" ||
    fail "no throttled time in /metrics: $(grep throttled "$T/body")"
stop_daemon
