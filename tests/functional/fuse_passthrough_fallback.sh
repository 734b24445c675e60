#!/bin/bash
# fuse_passthrough_fallback.sh — where passthrough is not to be had, raw
# volumes are served by the daemon as before: with --passthrough off (the
# kernel is never offered it, as on a kernel without the feature), and when
# the kernel refuses the image (simulated: VDISKD_FAULT_PASSTHROUGH=refuse
# hands it a bad descriptor), which is logged once, not per open.
. "$(dirname "$0")/../functions.sh" || exit 1

SIZE=$((8 << 20))

# check_served: the open file is served by the daemon, data intact.
check_served() {
    python3 - "$VD_MNT/r" "$VD_URL" "$1" <<'PY' || fail "$1: not served by the daemon: $(cat "$T/out")"
import json, os, sys, urllib.request
f, url, tag = sys.argv[1:]
fd = os.open(f, os.O_RDWR)
fd2 = os.open(f, os.O_RDONLY)
os.pwrite(fd, tag.encode() * 1024, 65536)
os.fdatasync(fd)
ok = os.pread(fd2, len(tag), 65536) == tag.encode()
v = json.load(urllib.request.urlopen(url + "/volumes/r"))
os.close(fd2)
os.close(fd)
open(os.environ["T"] + "/out", "w").write(json.dumps(v))
sys.exit(0 if ok and v["passthrough"] is False and v["stats"]["writes"] >= 1 else 1)
PY
    IMG_NOW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"])' "$T/out")
    cmp "$VD_MNT/r" "$IMG_NOW" || fail "$1: the mount and the image differ"
}
export T

start_daemon --passthrough off
api POST /volumes "{\"name\":\"r\",\"size\":$SIZE,\"format\":\"raw\"}"
expect_status 201
check_served off
stop_daemon

VDISKD_FAULT_PASSTHROUGH=refuse start_daemon
check_served refused
check_served again
n=$(grep -c "passthrough refused" "$VD_LOG")
[ "$n" = 1 ] || fail "refusal logged $n times"
stop_daemon

# And with nothing in the way, the same volume goes on passthrough.
start_daemon
python3 - "$VD_MNT/r" "$VD_URL" <<'PY' || fail "no passthrough once allowed"
import json, os, sys, urllib.request
fd = os.open(sys.argv[1], os.O_RDONLY)
v = json.load(urllib.request.urlopen(sys.argv[2] + "/volumes/r"))
ok = v["passthrough"] is True and os.pread(fd, 7, 65536) == b"againag"
os.close(fd)
sys.exit(0 if ok else 1)
PY
stop_daemon
echo "fuse_passthrough_fallback: ok"
