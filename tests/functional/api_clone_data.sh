#!/bin/bash
# api_clone_data.sh — a full clone of a snapshot must hold the
# snapshot's data, not the volume's current data (the clone job reads
# the source through a qcow2 snapshot view).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format qcow2
api POST /volumes '{"name": "q1", "size": "4M"}'
expect_status 201
head -c 65536 /dev/urandom >"$T/a"
head -c 65536 /dev/urandom >"$T/b"
put() { dd if="$1" of="$VD_MNT/$2" bs=64k count=1 conv=notrunc,fsync status=none || fail "write $2"; }
first64k() { dd if="$VD_MNT/$1" bs=64k count=1 iflag=direct status=none; }

put "$T/a" q1
api POST /volumes/q1/snapshots '{"name": "s1"}'
expect_status 201
put "$T/b" q1       # the volume moves on after the snapshot

api POST /volumes '{"name": "c1", "source": {"volume": "q1", "snapshot": "s1"}}'
expect_status 202
loc=$(header Location)
for ((i = 0; i < 100; i++)); do
    api GET "$loc"
    [ "$(json_get state)" = running ] || break
    sleep 0.1
done
[ "$(json_get state)" = succeeded ] || fail "clone job: $API_BODY"
first64k c1 | cmp -s - "$T/a" || fail "the clone of s1 does not hold s1's data"
first64k q1 | cmp -s - "$T/b" || fail "the source changed"
stop_daemon
echo "api_clone_data: ok"
