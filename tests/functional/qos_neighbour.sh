#!/bin/bash
# qos_neighbour.sh — a limited volume does not slow the others: 4k random
# reads at queue depth 32 on an unlimited volume keep at least 90% of
# their IOPS while a volume beside it, limited to 1000 IOPS, is driven
# at queue depth 32 (its held-back requests must not take the workers or
# the I/O thread from its neighbour). The reference is the same
# neighbour load without a limit: an unlimited volume that fio itself
# paces to 1000 IOPS, measured before and after in the same run and
# averaged, so the CPU that 1000 IOPS cost on this small machine counts
# on both sides and only the daemon's holding back differs. On a loaded
# machine one retry. The unlimited volume's IOPS alone are shown too.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

start_daemon
api POST /volumes '{"name":"free","size":"64M","format":"raw"}'
expect_status 201
api POST /volumes '{"name":"paced","size":"64M","format":"raw"}'
expect_status 201
api POST /volumes '{"name":"held","size":"64M","format":"raw",
                    "qos":{"iops":1000}}'
expect_status 201

# beside NAME VOLUME [fio args]: fio on VOLUME for 6 s; 1 s in, 4 s of
# fio on free, whose IOPS go to $T/NAME.json.
beside() {
    local name=$1 vol=$2
    shift 2
    fio_run "load-$name" "$VD_MNT/$vol" randread 4k 32 6 "$@" &
    local pid=$!
    sleep 1
    fio_run "$name" "$VD_MNT/free" randread 4k 32 4
    wait $pid || fail "fio on $vol"
}

attempt() {
    fio_run solo "$VD_MNT/free" randread 4k 32 4
    beside ref1 paced --rate_iops=1000
    beside test held
    beside ref2 paced --rate_iops=1000
    ref=$((($(fio_get ref1 read iops) + $(fio_get ref2 read iops)) / 2))
    got=$(fio_get test read iops)
    held_iops=$(fio_get load-test read iops)
    echo "unlimited volume: $(fio_get solo read iops) IOPS alone, $ref beside" \
        "1000 IOPS paced by fio, $got beside a volume held at $held_iops"
    within "$held_iops" 1000 10 || fail "the limited volume ran at $held_iops IOPS"
    [ $((got * 100)) -ge $((ref * 90)) ]
}
attempt || attempt || fail "the unlimited volume lost more than 10% beside a limited one"
stop_daemon
