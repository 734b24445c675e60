#!/bin/bash
# qos_neighbour.sh — a limited volume does not slow the others: 4k random
# reads at queue depth 32 on an unlimited volume keep at least 90% of
# their IOPS while a volume beside it, limited to 1000 IOPS, is driven
# just as hard (its held-back requests must not take the workers or the
# I/O thread from its neighbour). The solo figure is measured before and
# after in the same run and averaged; on a loaded machine one retry.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

start_daemon
api POST /volumes '{"name":"free","size":"64M","format":"raw"}'
expect_status 201
api POST /volumes '{"name":"held","size":"64M","format":"raw",
                    "qos":{"iops":1000}}'
expect_status 201

attempt() {
    fio_run solo1 "$VD_MNT/free" randread 4k 32 4
    fio_run held "$VD_MNT/held" randread 4k 32 6 &
    local held=$!
    sleep 1
    fio_run beside "$VD_MNT/free" randread 4k 32 4
    wait $held || fail "fio on the limited volume"
    fio_run solo2 "$VD_MNT/free" randread 4k 32 4
    solo=$((($(fio_get solo1 read iops) + $(fio_get solo2 read iops)) / 2))
    beside=$(fio_get beside read iops)
    held_iops=$(fio_get held read iops)
    echo "unlimited volume: $solo IOPS alone, $beside beside one held at $held_iops"
    within "$held_iops" 1000 10 || fail "the limited volume ran at $held_iops IOPS"
    [ $((beside * 100)) -ge $((solo * 90)) ]
}
attempt || attempt || fail "the unlimited volume lost more than 10% beside a limited one"
stop_daemon
