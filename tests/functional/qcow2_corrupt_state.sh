# A volume whose qcow2 image turns out to be damaged says so: the read
# that finds the damage fails with EIO through the FUSE file, GET shows
# state "corrupt" with the reason, /metrics counts it, the daemon logs it
# once, the image gets its corrupt bit, and after a restart the volume
# still shows why it cannot be trusted.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../qcow2-functions.sh"

start_daemon --format qcow2
api POST /volumes '{"name":"c1","size":"4M"}'
expect_status 201
img=$(json_get image)
qio "$VD_MNT/c1" 'write -P 0x5a 0 64k' 'flush' >/dev/null || fail "write"
api GET /volumes/c1
[ "$(json_get state)" = ready ] || fail "state before damage: $API_BODY"
[ "$(json_get state_reason)" = None ] || fail "state_reason before: $API_BODY"
stop_daemon

# Point the first L2 entry 1 TiB past the end of the file.
python3 - "$img" <<'PY' || fail "patch"
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(104)
l1 = struct.unpack('>Q', h[40:48])[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
assert l2 != 0
f.seek(l2); e = struct.unpack('>Q', f.read(8))[0]
assert e & 0x00fffffffffffe00
f.seek(l2); f.write(struct.pack('>Q', (1 << 63) | (1 << 40)))
PY

start_daemon --format qcow2
api GET /volumes/c1
[ "$(json_get state)" = ready ] || fail "damage seen before any read: $API_BODY"
if out=$(qio "$VD_MNT/c1" 'read -P 0x5a 0 4k' 2>&1) &&
    ! echo "$out" | grep -qiE 'error|fail'; then
    fail "read of the damaged cluster succeeded: $out"
fi
echo "$out" | grep -q 'Input/output error' || fail "no EIO: $out"
api GET /volumes/c1
expect_status 200
[ "$(json_get state)" = corrupt ] || fail "state after damage: $API_BODY"
reason=$(json_get state_reason)
echo "$reason" | grep -q 'past the end of the file' || fail "reason: $reason"
api GET /volumes
grep -q '"corrupt"' "$T/body" || fail "list does not show corrupt: $API_BODY"
curl -fsS "$VD_URL/metrics" | grep -q '^vdiskd_volume_corrupt{volume="c1"} 1' ||
    fail "metrics: $(curl -sS "$VD_URL/metrics" | grep corrupt)"
# Writes elsewhere no longer reach the damaged image.
qio "$VD_MNT/c1" 'write -P 0x11 1M 4k' >/dev/null 2>&1 &&
    fail "write to a corrupt volume succeeded"
n=$(grep -c 'past the end of the file' "$VD_LOG")
[ "$n" -eq 1 ] || fail "reason logged $n times, want 1"
stop_daemon

qemu-img info -U "$img" | grep -q 'corrupt: true' || fail "corrupt bit not set"

# After a restart the image opens read-only, and the volume says why.
start_daemon --format qcow2
api GET /volumes/c1
[ "$(json_get state)" = corrupt ] || fail "state after restart: $API_BODY"
json_get state_reason | grep -q 'marked corrupt' || fail "reason after restart: $API_BODY"
stop_daemon
echo "ok"
