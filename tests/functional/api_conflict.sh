#!/bin/bash
# api_conflict.sh — a name can be taken once: a second create with the
# same name is 409 and leaves the first volume as it was, also when many
# clients race for the same name at once.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
api POST /volumes '{"name": "v1", "size": "1M"}'
expect_status 201
uuid=$(json_get uuid)

api POST /volumes '{"name": "v1", "size": "2M"}'
expect_problem 409 v1
api GET /volumes/v1
expect_status 200
[ "$(json_get uuid)" = "$uuid" ] || fail "v1 was replaced"
[ "$(json_get size)" = 1048576 ] || fail "v1 changed size to $(json_get size)"
[ "$(volume_names)" = v1 ] || fail "list: $(volume_names)"

# Ten clients create "race" at once: exactly one 201, nine 409.
pids=()
for i in $(seq 10); do
    curl -sS -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
        --data-binary '{"name": "race", "size": "1M"}' "$VD_URL/volumes" >"$T/race.$i" &
    pids+=($!)
done
wait "${pids[@]}"   # not a bare wait: the daemon is a child too
codes=$(cat "$T"/race.* | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
[ "$codes" = "201x1 409x9 " ] || fail "racing creates answered: $codes"
[ "$(volume_names | tr '\n' ' ')" = "v1 race " ] || fail "list: $(volume_names)"
[ "$(find "$VD_DATA" -name '*.raw' | wc -l)" -eq 2 ] || fail "images: $(find "$VD_DATA" -name '*.raw')"
stop_daemon
echo "api_conflict: ok"
