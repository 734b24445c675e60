#!/bin/bash
# qos_group.sh — volumes of a QoS group share its budget: two volumes in
# group "vm42" (limit 2000 IOPS), each read by its own fio at queue depth
# 16 for 8 s, together run at 2000 IOPS (+-7%), each at least 30% of it.
# Raising the group's limit raises what they get together. The group
# cannot be deleted while they use it.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qos-functions.sh" || exit 1

# both SECONDS: fio on a and b at once; sets A, B (their IOPS).
both() {
    fio_run ga "$VD_MNT/a" randread 4k 16 "$1" --ramp_time=1 &
    local pa=$!
    fio_run gb "$VD_MNT/b" randread 4k 16 "$1" --ramp_time=1
    wait $pa || fail "fio on a"
    A=$(fio_get ga read iops)
    B=$(fio_get gb read iops)
}

start_daemon
api POST /qos-groups '{"name":"vm42","qos":{"iops":2000}}'
expect_status 201
for v in a b; do
    api POST /volumes "{\"name\":\"$v\",\"size\":\"64M\",\"format\":\"raw\",
                        \"qos_group\":\"vm42\"}"
    expect_status 201
    [ "$(json_get qos_group)" = vm42 ] || fail "$v: group not shown"
done
api GET /qos-groups/vm42
expect_status 200
[ "$(json_get volumes)" = 2 ] || fail "group shows $(json_get volumes) volumes"

both 8
echo "group of 2000 IOPS: a $A + b $B = $((A + B))"
within $((A + B)) 2000 7 || fail "the group ran at $((A + B)) IOPS, not 2000"
[ "$A" -gt 600 ] && [ "$B" -gt 600 ] || fail "unfair share: a $A, b $B"

api PATCH /qos-groups/vm42 '{"qos":{"iops":3000}}'
expect_status 200
both 4
echo "group of 3000 IOPS: a $A + b $B = $((A + B))"
within $((A + B)) 3000 10 || fail "the group ran at $((A + B)) IOPS, not 3000"

api DELETE /qos-groups/vm42
expect_status 409
api PATCH /volumes/a '{"qos_group":null}'
expect_status 200
api PATCH /volumes/b '{"qos_group":null}'
expect_status 200
api DELETE /qos-groups/vm42
expect_status 204
stop_daemon
