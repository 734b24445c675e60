#!/bin/bash
# fuse_passthrough.sh — a raw volume's open file is served by kernel
# passthrough (--passthrough auto, the default): GET says so and the
# daemon's counters see none of its reads and writes; data written through
# the mount is the image's, O_DIRECT I/O leaves the image's page cache
# empty, punch hole and fsync still reach the daemon, a write past the end
# is cut off when the file closes, data survives a restart, a qcow2 volume
# is served normally, a stop leaves a holder on the image, and a forced delete leaves the holder on the removed
# image (reads and writes work, fsync fails) as README documents. Raw
# volumes cannot be snapshotted (422), with or without passthrough.
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../api_functions.sh" || exit 1

SIZE=$((16 << 20))
start_daemon
api POST /volumes "{\"name\":\"r\",\"size\":$SIZE,\"format\":\"raw\"}"
expect_status 201
IMG=$(json_get image)
api POST /volumes "{\"name\":\"q\",\"size\":$SIZE,\"format\":\"qcow2\"}"
expect_status 201
api GET /volumes/r
[ "$(json_get passthrough)" = False ] || fail "passthrough before any open"

# A holder: opens the file, says so, closes when told (fifo).
hold() { # hold FILE MODE TAG
    mkfifo "$T/go.$3"
    python3 - "$1" "$2" "$T/ready.$3" "$T/go.$3" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR if sys.argv[2] == "rw" else os.O_RDONLY)
open(sys.argv[3], "w").close()
open(sys.argv[4]).read()
os.close(fd)
PY
    HOLDER=$!
    on_exit "kill $HOLDER"
    for ((i = 0; i < 100; i++)); do [ -e "$T/ready.$3" ] && return; sleep 0.05; done
    fail "holder $3 did not open $1"
}
release() { # release TAG
    echo close >"$T/go.$1"
    wait "$HOLDER" || fail "holder $1 failed"
    # RELEASE reaches the daemon asynchronously after the close.
    for ((i = 0; i < 50; i++)); do
        api GET "/volumes/$2"
        [ "$(json_get passthrough)" = False ] && return
        sleep 0.1
    done
    fail "$2 still on passthrough after its last close"
}

hold "$VD_MNT/r" rw a
api GET /volumes/r
[ "$(json_get passthrough)" = True ] || fail "open raw volume not on passthrough: $API_BODY"
qio "$VD_MNT/r" 'write -P 0x5a 0 1M' 'write -P 0xa5 4M 64k' 'flush' >/dev/null ||
    fail "writes through the mount"
qio_ro "$VD_MNT/r" 'read -P 0x5a 0 1M' 'read -P 0xa5 4M 64k' >/dev/null ||
    fail "reads through the mount"
cmp "$VD_MNT/r" "$IMG" || fail "the mount and the image differ"
api GET /volumes/r
python3 - "$T/body" <<'PY' || fail "the daemon served passthrough I/O: $API_BODY"
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
sys.exit(0 if s["writes"] == 0 and s["bytes_written"] == 0 else 1)
PY

# O_DIRECT clients bypass every page cache, the image's included.
python3 - "$IMG" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
PY
qio "$VD_MNT/r" 'write -P 0x11 2M 1M' 'read -P 0x11 2M 1M' 'read -P 0x5a 0 1M' >/dev/null ||
    fail "O_DIRECT I/O"
pages=$(fincore --noheadings --output PAGES "$IMG" | tr -d ' ')
[ "$pages" = 0 ] || fail "O_DIRECT I/O through passthrough left $pages pages cached"

# fallocate and fsync still reach the daemon.
fallocate -p -o $((2 << 20)) -l 65536 "$VD_MNT/r" || fail "punch hole"
qio_ro "$VD_MNT/r" 'read -P 0 2M 64k' 'read -P 0x11 2112k 960k' >/dev/null ||
    fail "punched range does not read back as zeroes"
python3 - "$VD_MNT/r" <<'PY' || fail "fsync through passthrough"
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"s" * 4096, 8 << 20)
os.fdatasync(fd)
os.close(fd)
PY
# A write past the end grows the image until the last close cuts it back.
python3 - "$VD_MNT/r" "$SIZE" <<'PY' || fail "write past the end"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"x" * 4096, int(sys.argv[2]))
os.close(fd)
PY
# Raw volumes have no snapshots to quiesce for: refused, passthrough stays.
api POST /volumes/r/snapshots '{"name":"s1"}'
expect_status 422
api GET /volumes/r
[ "$(json_get passthrough)" = True ] || fail "passthrough lost by a refused snapshot"
# A read-only open joins the read-write one's backing.
qio_ro "$VD_MNT/r" 'read -P 0x5a 0 1M' >/dev/null || fail "read-only open beside a writer"
release a r
[ "$(stat -c %s "$IMG")" = "$SIZE" ] || fail "image not cut back: $(stat -c %s "$IMG")"

# qcow2 is not a host file byte for byte: served by the daemon.
hold "$VD_MNT/q" rw b
qio "$VD_MNT/q" 'write -P 0x33 0 64k' >/dev/null || fail "qcow2 write"
api GET /volumes/q
[ "$(json_get passthrough)" = False ] || fail "qcow2 on passthrough"
release b q

# Stop while a passthrough file is open: the daemon exits cleanly, and the
# client keeps reading the image until it closes (README).
mkfifo "$T/stopped" "$T/outcome"
python3 - "$VD_MNT/r" "$T/stopped" "$T/outcome" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
with open(sys.argv[3], "w") as f:
    f.write("open\n")
open(sys.argv[2]).read()
try:
    r = "read=%s" % (os.pread(fd, 4, 0) == b"\x5a" * 4)
except OSError as e:
    r = "read=errno%d" % e.errno
try:
    os.close(fd)  # the FLUSH finds no daemon: ENOTCONN
except OSError:
    pass
with open(sys.argv[3], "w") as f:
    f.write(r + "\n")
PY
SH=$!
on_exit "kill $SH"
w=$(timeout 30 cat "$T/outcome")
[ "$w" = open ] || fail "stop holder: $w"
kill -TERM "$VD_PID"
rc=0
wait "$VD_PID" || rc=$?
[ "$rc" = 0 ] || fail "daemon exited with $rc on SIGTERM with a passthrough file open"
timeout 30 sh -c "echo go >'$T/stopped'" || fail "stop holder is gone"
w=$(timeout 30 cat "$T/outcome")
wait "$SH" || fail "stop holder failed"
[ "$w" = "read=True" ] || fail "passthrough file after stop: $w"
umount -l "$VD_MNT" 2>/dev/null

# Restart: the data is there, served again by passthrough.
start_daemon
hold "$VD_MNT/r" ro c
api GET /volumes/r
[ "$(json_get passthrough)" = True ] || fail "not on passthrough after restart"
[ "$(json_get size)" = "$SIZE" ] || fail "size after restart: $(json_get size)"
qio_ro "$VD_MNT/r" 'read -P 0x5a 0 1M' 'read -P 0 2M 64k' 'read -P 0xa5 4M 64k' >/dev/null ||
    fail "data after restart"
release c r

# Delete while open: refused (409); forced, the holder keeps the removed
# image until it closes, and its fsync fails.
mkfifo "$T/step" "$T/said"
python3 - "$VD_MNT/r" "$T/step" "$T/said" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
def say(w):
    with open(sys.argv[3], "w") as f:
        f.write(w + "\n")
say("open")
open(sys.argv[2]).read()  # deleted now
out = []
out.append("read=%s" % (os.pread(fd, 4, 0) == b"\x5a" * 4))
out.append("write=%d" % os.pwrite(fd, b"w" * 4096, 0))
try:
    os.fsync(fd)
    out.append("fsync=ok")
except OSError as e:
    out.append("fsync=%d" % e.errno)
try:
    os.close(fd)
except OSError:
    pass
say(" ".join(out))
PY
DH=$!
on_exit "kill $DH"
w=$(timeout 30 cat "$T/said")
[ "$w" = open ] || fail "delete holder: $w"
api DELETE /volumes/r
expect_problem 409 "open"
http DELETE '/volumes/r?force=true'
expect_status 204
[ ! -e "$IMG" ] || fail "image still there after a forced delete"
timeout 30 sh -c "echo go >'$T/step'" || fail "delete holder is gone"
w=$(timeout 30 cat "$T/said")
wait "$DH" || fail "delete holder failed"
[ "$w" = "read=True write=4096 fsync=5" ] || fail "after a forced delete: $w"
stop_daemon
echo "fuse_passthrough: ok"
