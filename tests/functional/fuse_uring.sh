#!/bin/bash
# fuse_uring.sh — FUSE over io_uring (--fuse-uring): with the fuse module's
# enable_uring on, requests come through the ring, and data written through
# the mount (4k, 64k, 1M and queue depth 16) reads back and is what QEMU
# reads from the image; it survives a restart; a snapshot holds what was
# written before it; a volume held open cannot be deleted until closed.
# Fallbacks: with enable_uring off, and with every ring registration
# refused by the kernel (VDISKD_FUSE_URING_FAULT=register), the daemon
# says so and serves through /dev/fuse. Skips (77) where the kernel has
# no FUSE over io_uring. The module parameter is restored on exit.
. "$(dirname "$0")/../functions.sh" || exit 1

PARAM=/sys/module/fuse/parameters/enable_uring
if [ ! -w "$PARAM" ]; then
    echo "fuse_uring: SKIP: no $PARAM (kernel before 6.14) or not root"
    exit 77
fi
OLD=$(cat "$PARAM")
on_exit "echo '$OLD' >'$PARAM'"
cd "$T" || exit 1 # fio leaves verify state files in the working directory

qcheck() {
    timeout 120 qemu-io "$@" >"$T/qio.out" 2>&1 ||
        fail "qemu-io $*: $(cat "$T/qio.out")"
    if grep -q "verification failed" "$T/qio.out"; then
        fail "qemu-io $*: $(cat "$T/qio.out")"
    fi
}
# Requests the last daemon said came through the ring (logged at stop).
ring_count() {
    sed -n 's/.*FUSE over io_uring: \([0-9]*\) requests came.*/\1/p' "$VD_LOG" |
        tail -n 1
}

# --- through the ring ----------------------------------------------------
echo Y >"$PARAM"
start_daemon --fuse-uring
grep -q "FUSE over io_uring: [0-9]* queues" "$VD_LOG" ||
    fail "the ring was not set up"
api POST /volumes '{"name":"q","size":"16M","format":"qcow2"}'
expect_status 201
QIMG=$(json_get image)
api POST /volumes '{"name":"r","size":"16M","format":"raw"}'
expect_status 201
Q=$VD_MNT/q
R=$VD_MNT/r

head -c 16M /dev/urandom >"$T/ref"
# 4k requests take the I/O thread's fast path, 64k too once allocated, 1M
# goes to the workers: every kind of answer is committed to the ring.
for f in "$Q" "$R"; do
    timeout 120 dd if="$T/ref" of="$f" bs=4k count=1024 oflag=direct \
        conv=notrunc status=none || fail "4k writes to $f"
    timeout 120 dd if="$T/ref" of="$f" bs=64k skip=64 seek=64 count=64 \
        oflag=direct conv=notrunc status=none || fail "64k writes to $f"
    timeout 120 dd if="$T/ref" of="$f" bs=1M skip=8 seek=8 count=8 \
        oflag=direct conv=notrunc status=none || fail "1M writes to $f"
    timeout 120 dd if="$f" of="$T/back" bs=4k iflag=direct status=none ||
        fail "4k reads of $f"
    cmp "$T/ref" "$T/back" || fail "$f does not read back what was written"
done
# Many requests in flight at once, checked by fio.
timeout 300 fio --name=qd --filename="$Q" --rw=randwrite --bs=4k \
    --iodepth=16 --ioengine=io_uring --direct=1 --size=4M --offset=4M \
    --verify=crc32c --verify_fatal=1 --output="$T/fio.out" ||
    fail "fio at QD16: $(cat "$T/fio.out")"
timeout 120 dd if="$Q" of="$T/ref" bs=1M iflag=direct status=none ||
    fail "read q"

# Snapshot: taken while the file is open, holds what came before it.
qcheck -f raw -c 'write -P 0xa1 0 64k' "$Q"
api POST /volumes/q/snapshots '{"name":"s1"}'
expect_status 201
qcheck -f raw -c 'write -P 0xb2 0 64k' "$Q"
qcheck -f raw -r -c 'read -P 0xa1 0 64k' "$VD_MNT/.snapshots/q/s1"
qcheck -f raw -r -c 'read -P 0xb2 0 64k' "$Q"
timeout 60 dd if="$Q" of="$T/ref" bs=64k count=1 conv=notrunc iflag=direct \
    status=none || fail "read q"

# Delete while open: refused while held, done once closed.
exec 7<"$R"
api DELETE /volumes/r
expect_status 409
exec 7<&-
for ((i = 0; i < 50; i++)); do
    api DELETE /volumes/r
    [ "$API_STATUS" = 409 ] || break
    sleep 0.1
done
expect_status 204
[ ! -e "$R" ] || fail "r still on the mount after DELETE"

stop_daemon
n=$(ring_count)
[ "${n:-0}" -gt 1000 ] || fail "only '${n:-}' requests came through the ring"
qemu-img compare -q -f raw "$T/ref" "$QIMG" ||
    fail "the qcow2 image does not hold what was written through the ring"

# --- restart on the same state, still through the ring; a stop while a
# client holds the file open ends at once --------------------------------
start_daemon --fuse-uring
timeout 120 dd if="$Q" of="$T/back" bs=64k iflag=direct status=none ||
    fail "read q after restart"
cmp "$T/ref" "$T/back" || fail "q differs after a restart"
exec 8<"$Q"
t0=$(date +%s%N)
stop_daemon
exec 8<&-
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "still running after unmount" "$VD_LOG" &&
    fail "stop with an open file waited for the loop (${ms} ms)"
echo "stop with an open file: ${ms} ms"
[ "$(ring_count)" -gt 0 ] || fail "nothing came through the ring after restart"

# --- SIGKILL with the ring on leaves a dead mount the next start cleans ---
start_daemon --fuse-uring
qcheck -f raw -c 'read -P 0xb2 0 64k' "$Q"
kill -9 "$VD_PID"
wait "$VD_PID" 2>/dev/null || true
for ((i = 0; i < 50; i++)); do
    timeout 5 stat "$Q" >/dev/null 2>&1 || break
    sleep 0.1
done
timeout 5 stat "$Q" >/dev/null 2>&1 && fail "a killed daemon's mount still answers"
: >"$T/daemon.log"
start_daemon --fuse-uring
grep -q "cleaned up a dead FUSE mount" "$VD_LOG" ||
    fail "start did not clean the killed daemon's mount"
qcheck -f raw -c 'read -P 0xb2 0 64k' "$Q"
stop_daemon

# --- fallback: the kernel does not offer the ring -------------------------
echo N >"$PARAM"
: >"$T/daemon.log"
start_daemon --fuse-uring
qcheck -f raw -c 'write -P 0xc3 4k 4k' -c 'read -P 0xc3 4k 4k' "$Q"
grep -q "the kernel does not offer it" "$VD_LOG" ||
    fail "no word of the missing kernel support"
stop_daemon
[ -z "$(ring_count)" ] || fail "a ring was used although the kernel has it off"

# --- fallback: every registration refused ---------------------------------
echo Y >"$PARAM"
: >"$T/daemon.log"
VDISKD_FUSE_URING_FAULT=register start_daemon --fuse-uring
qcheck -f raw -c 'write -P 0xd4 8k 4k' -c 'read -P 0xd4 8k 4k' \
    -c 'read -P 0xc3 4k 4k' "$Q"
grep -q "the kernel refused queue" "$VD_LOG" ||
    fail "no word of the refused registration"
stop_daemon
[ "$(ring_count)" = 0 ] || fail "requests came through a refused ring"
echo "fuse_uring: ok"
