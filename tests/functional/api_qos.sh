#!/bin/bash
# api_qos.sh — the QoS members of volumes and the /qos-groups resource:
# validation (every bad value is a 4xx naming the member), partial
# updates and null clearing, persistence across a restart, group
# lifecycle (409 while used, 404 once gone), and cascading with the
# volume's deletion.
. "$(dirname "$0")/../functions.sh" || exit 1

# expect_4xx STATUS_RE: after api, a client error whose body names $2.
expect_4xx() {
    [[ "$API_STATUS" =~ ^($1)$ ]] || fail "expected HTTP $1, got $API_STATUS: $API_BODY"
    [[ "$API_BODY" == *"$2"* ]] || fail "the problem does not name $2: $API_BODY"
}

qos_of() {   # qos_of VOLUME MEMBER
    api GET "/volumes/$1"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["qos"][sys.argv[2]])' \
        "$T/body" "$2"
}

start_daemon
for bad in '{"iops":-1}' '{"iops":0}' '{"iops":"fast"}' '{"iops":1.5}' \
    '{"read_bps":true}' '{"burst_seconds":-1}' '{"burst_seconds":0}' \
    '{"burst_seconds":"1s"}'; do
    api POST /volumes "{\"name\":\"x\",\"size\":\"1M\",\"qos\":$bad}"
    expect_4xx '400|422' "qos."
done
api POST /volumes '{"name":"x","size":"1M","qos":{"iops":2,"fast":1}}'
expect_4xx 400 "qos.fast"
api POST /volumes '{"name":"x","size":"1M","qos":[1]}'
expect_4xx 400 "'qos'"
api POST /volumes '{"name":"x","size":"1M","qos":{"iops":1152921504606846976}}'
expect_4xx '400|422' "qos.iops"
api POST /volumes '{"name":"x","size":"1M","qos":{"burst_seconds":86400}}'
expect_4xx '400|422' "qos.burst_seconds"
api POST /volumes '{"name":"x","size":"1M","qos_group":"Not A Name"}'
expect_4xx 400 "qos_group"
api POST /volumes '{"name":"x","size":"1M","qos_group":"nosuch"}'
expect_4xx 422 "nosuch"
api GET /volumes/x
expect_status 404 # nothing half-created

api POST /volumes '{"name":"v","size":"1M","qos":{"iops":100,"write_bps":1048576,"burst_seconds":2.5}}'
expect_status 201
api PATCH /volumes/v '{"qos":{"iops":-5}}'
expect_4xx 400 "qos.iops"
api PATCH /volumes/v '{}'
expect_4xx 400 "size"
# A size and QoS together: nothing changes unless both can.
for bad in '"qos_group":"nosuch"' '"qos":{"bps":1152921504606846976}'; do
    api PATCH /volumes/v "{\"size\":\"2M\",$bad}"
    expect_4xx '400|422' "qos"
    api GET /volumes/v
    [ "$(json_get size)" = 1048576 ] || fail "resized by a refused PATCH ($bad)"
done
api PATCH /volumes/v '{"qos":{"read_iops":50,"iops":null}}'
expect_status 200
[ "$(qos_of v iops)" = None ] || fail "iops not cleared"
[ "$(qos_of v read_iops)" = 50 ] || fail "read_iops not set"
[ "$(qos_of v write_bps)" = 1048576 ] || fail "write_bps lost by a partial update"
[ "$(qos_of v burst_seconds)" = 2.5 ] || fail "burst_seconds lost"

# Groups.
api POST /qos-groups '{"name":"g1","qos":{"bps":10485760}}'
expect_status 201
grep -qi '^location: /qos-groups/g1' "$T/headers" || fail "no Location"
api POST /qos-groups '{"name":"g1"}'
expect_status 409
for bad in '{"qos":{}}' '{"name":"Bad"}' '{"name":"g2","qos":{"iops":0}}' \
    '{"name":"g2","qos_group":"g1"}'; do
    api POST /qos-groups "$bad"
    expect_4xx '400|422' "'"
done
api PATCH /qos-groups/g1 '{"qos":{"iops":500}}'
expect_status 200
[ "$(json_get qos)" = '{"iops": 500, "read_iops": null, "write_iops": null, "bps": 10485760, "read_bps": null, "write_bps": null, "burst_seconds": null}' ] ||
    fail "group limits: $(json_get qos)"
api PATCH /qos-groups/g1 '{"name":"g9"}'
expect_4xx 400 "name"
api GET /qos-groups/nosuch
expect_status 404
api PATCH /volumes/v '{"qos_group":"g1"}'
expect_status 200
[ "$(json_get qos_group)" = g1 ] || fail "group not joined"
api DELETE /qos-groups/g1
expect_status 409
api GET /qos-groups
expect_status 200
[ "$(json_get qos_groups)" = '[{"name": "g1", "qos": {"iops": 500, "read_iops": null, "write_iops": null, "bps": 10485760, "read_bps": null, "write_bps": null, "burst_seconds": null}, "volumes": 1}]' ] ||
    fail "group list: $(json_get qos_groups)"

# Everything survives a restart.
stop_daemon
start_daemon
api GET /volumes/v
[ "$(json_get qos_group)" = g1 ] || fail "group lost by a restart"
[ "$(qos_of v read_iops)" = 50 ] || fail "limits lost by a restart"
api GET /qos-groups/g1
[ "$(json_get volumes)" = 1 ] || fail "group lost by a restart"

# "qos": null clears every limit; deleting the volume frees the group.
api PATCH /volumes/v '{"qos":null}'
expect_status 200
[ "$(qos_of v read_iops)" = None ] && [ "$(qos_of v write_bps)" = None ] ||
    fail "qos: null left limits"
api DELETE /volumes/v
expect_status 204
api DELETE /qos-groups/g1
expect_status 204
api GET /qos-groups/g1
expect_status 404
stop_daemon
