#!/bin/bash
# import_fifo.sh — imports and backing files are regular files only, and
# are opened without blocking: importing a FIFO, a character device, a
# directory, or a qcow2 image whose backing file is a FIFO answers 4xx at
# once and creates nothing, the API keeps answering, and the daemon still
# stops on SIGTERM (opening a FIFO used to block an API thread forever,
# and shutdown with it).
. "$(dirname "$0")/../functions.sh"
IMP=$T/import
mkdir -p "$IMP/dir"
mkfifo "$IMP/pipe" "$IMP/backing.pipe"
# A character device too, where this user may make one.
CHR=
mknod "$IMP/zero" c 1 5 2>/dev/null && CHR=zero
qemu-img create -q -f qcow2 -u -b "$IMP/backing.pipe" -F raw \
    "$IMP/top.qcow2" 1M || fail "qemu-img create"

start_daemon --import-dir "$IMP"
n_images() { find "$VD_DATA/images" -type f | wc -l; }

for src in pipe $CHR dir top.qcow2; do
    # Bounded: a request that blocks fails the test instead of hanging it.
    api POST /volumes "{\"name\":\"i\",\"import\":{\"path\":\"$IMP/$src\"}}" \
        --max-time 15
    echo "import $src: $API_STATUS $API_BODY"
    echo "$API_BODY" | grep -qE "regular file|a directory" ||
        fail "the refusal of $src does not say why: $API_BODY"
    case "$API_STATUS" in
    4??) ;;
    *) fail "import of $src: HTTP $API_STATUS, want 4xx: $API_BODY" ;;
    esac
    api GET /volumes/i
    expect_status 404
    [ "$(n_images)" = 0 ] || fail "import of $src left an image file"
done
curl -fsS --max-time 5 "$VD_URL/health" >/dev/null || fail "/health after the imports"

# Nobody ever opened the FIFOs' other end: the daemon must still stop.
kill -TERM "$VD_PID"
for ((i = 0; i < 300; i++)); do
    kill -0 "$VD_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$VD_PID" 2>/dev/null && fail "the daemon did not stop within 30 s of SIGTERM"
rc=0
wait "$VD_PID" || rc=$?
[ "$rc" = 0 ] || fail "daemon exited with $rc on SIGTERM"
grep -q " $VD_MNT " /proc/mounts && fail "the mount is still there"
echo "import_fifo: ok"
