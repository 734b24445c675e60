#!/bin/bash
# clone_base_race.sh — while a client lists the mount, stats and opens a
# base volume, linked clones of it are created and deleted again, so the
# daemon reopens the base read-only and writable over and over. The base
# never vanishes from the mount, never fails a stat, open or read, and the
# daemon survives (a reopen used to leave a window in which the FUSE paths
# read a closed image, or found no image at all).
. "$(dirname "$0")/../functions.sh"
start_daemon

api POST /volumes '{"name":"base","size":"8M","format":"qcow2"}'
expect_status 201
qio "$VD_MNT/base" 'write -P 0x5a 0 512' >/dev/null || fail "writing the base"

# The client: readdir (never cached), stat, and now and then a read-only
# open and read. Every failure is written to $T/client.err.
python3 - "$VD_MNT" "$T/stop" >"$T/client.out" 2>"$T/client.err" <<'PY' &
import os, sys, time
mnt, stop = sys.argv[1], sys.argv[2]
n = bad = 0
while not os.path.exists(stop):
    n += 1
    try:
        if "base" not in os.listdir(mnt):
            bad += 1
            print("base missing from the listing", file=sys.stderr)
        st = os.stat(os.path.join(mnt, "base"))
        if st.st_size != 8 << 20:
            bad += 1
            print("base size", st.st_size, file=sys.stderr)
        if n % 20 == 0:
            fd = os.open(os.path.join(mnt, "base"), os.O_RDONLY)
            try:
                if os.pread(fd, 512, 0) != b"\x5a" * 512:
                    bad += 1
                    print("base data changed", file=sys.stderr)
            finally:
                os.close(fd)
    except OSError as e:
        bad += 1
        print("client:", e, file=sys.stderr)
print(n, bad)
PY
CLIENT=$!
on_exit "touch '$T/stop'; kill $CLIENT 2>/dev/null"

# A create meets the client's read-only open now and then: 409, retried.
pairs=0 busy=0
for ((i = 0; i < 300 && pairs < 40; i++)); do
    api POST /volumes '{"name":"clone","base":"base"}'
    if [ "$API_STATUS" = 409 ]; then
        busy=$((busy + 1))
        continue
    fi
    expect_status 201
    api DELETE /volumes/clone
    expect_status 204
    pairs=$((pairs + 1))
done
touch "$T/stop"
wait "$CLIENT" || fail "client exited with an error: $(cat "$T/client.err")"
read -r looks bad <"$T/client.out"
echo "clone_base_race: $pairs freeze/thaw pairs ($busy creates met an open), $looks client rounds, $bad failures"
[ "$pairs" -ge 40 ] || fail "only $pairs clone create/delete pairs succeeded"
[ "$bad" = 0 ] || fail "the base failed its client: $(head -5 "$T/client.err")"
[ "$looks" -gt 0 ] || fail "the client never ran"

kill -0 "$VD_PID" || fail "daemon died"
api GET /volumes/base
expect_status 200
[ "$(json_get state)" = ready ] || fail "base is not ready: $API_BODY"
qio "$VD_MNT/base" 'write -P 0x66 4096 512' >/dev/null ||
    fail "base not writable again after its last clone went"
stop_daemon
echo "clone_base_race: ok"
