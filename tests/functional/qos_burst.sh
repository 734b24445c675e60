#!/bin/bash
# qos_burst.sh — a burst allowance lets a short spike through, then the
# limit holds: a volume limited to 500 IOPS with burst_seconds 4 serves
# its first 1900 random reads much faster than 500 IOPS would (3.8 s),
# and the reads right after it run at 500 IOPS (after a second in which
# the rest of the allowance goes). Without the allowance the same spike
# takes the full time.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

start_daemon
api POST /volumes '{"name":"b","size":"64M","format":"raw",
                    "qos":{"iops":500,"burst_seconds":4}}'
expect_status 201
api POST /volumes '{"name":"n","size":"64M","format":"raw",
                    "qos":{"iops":500}}'
expect_status 201

# 1900 x 4k: within the 2000 requests b saved up.
fio_once spike-b "$VD_MNT/b" randread 4k 32 7600k
ms_b=$(fio_get spike-b read runtime)
fio_run hold-b "$VD_MNT/b" randread 4k 32 4 --ramp_time=1
iops_b=$(fio_get hold-b read iops)
fio_once spike-n "$VD_MNT/n" randread 4k 32 7600k
ms_n=$(fio_get spike-n read runtime)
echo "spike: ${ms_b} ms with a burst, ${ms_n} ms without; then $iops_b IOPS"

[ "$ms_b" -lt 1900 ] || fail "the spike took $ms_b ms despite the burst allowance"
[ "$ms_n" -gt 3300 ] || fail "without a burst allowance the spike took only $ms_n ms"
within "$iops_b" 500 10 || fail "after the spike: $iops_b IOPS, not 500"
stop_daemon
