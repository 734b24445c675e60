#!/bin/bash
# shellcheck disable=SC2010  # ls is the point: it lists through readdir
# fuse_open_delete.sh — a volume whose file a process holds open cannot be
# deleted (409, still listed, still served); once the last opener has closed
# it, DELETE answers 204 and the file is gone from the mount at once.
. "$(dirname "$0")/../functions.sh" || exit 1

start_daemon
api POST /volumes '{"name":"v1","size":16777216,"format":"raw"}'
expect_status 201
api POST /volumes '{"name":"v2","size":16777216,"format":"raw"}'
expect_status 201
F=$VD_MNT/v1
stat "$F" >/dev/null || fail "v1 not on the mount"   # the kernel caches it now

# A holder process: opens v1 read-write, says so, waits for the word to close.
mkfifo "$T/go"
python3 - "$F" "$T/ready" "$T/go" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"held" * 1024, 0)
open(sys.argv[2], "w").close()
open(sys.argv[3]).read()          # blocks until the test writes to the fifo
os.close(fd)
PY
HOLDER=$!
on_exit "kill $HOLDER"
for ((i = 0; i < 100; i++)); do [ -e "$T/ready" ] && break; sleep 0.05; done
[ -e "$T/ready" ] || fail "holder did not open the file"

api GET /volumes/v1
expect_status 200
[ "$(json_get open_count)" = 1 ] || fail "open_count while held: $(json_get open_count)"
api DELETE /volumes/v1
expect_status 409
ls "$VD_MNT" | grep -qx v1 || fail "v1 left the listing after a refused delete"
qio "$F" 'read -P 0x68 0 1' >/dev/null 2>&1 || fail "v1 not served after a refused delete"

echo close >"$T/go"
wait "$HOLDER" || fail "holder failed"
# The kernel sends RELEASE asynchronously after the last close: allow it a
# moment to arrive, but no more. Each try first looks v1 up, so the kernel
# holds a fresh entry that only the daemon's invalidation can drop.
for ((i = 0; i < 50; i++)); do
    stat "$F" >/dev/null || fail "v1 vanished before it was deleted"
    api DELETE /volumes/v1
    [ "$API_STATUS" = 409 ] || break
    sleep 0.1
done
expect_status 204
[ -z "$(ls "$VD_MNT" | grep -x v1)" ] || fail "v1 still listed after delete"
[ ! -e "$F" ] || fail "v1 still resolves after delete"
[ "$(ls "$VD_MNT")" = "v2" ] || fail "listing after delete: $(ls "$VD_MNT")"
api GET /volumes/v1
expect_status 404
stop_daemon
echo "fuse_open_delete: ok"
