#!/bin/bash
# fsync_frees_stress.sh — fsync hammered on one handle of a qcow2 volume
# whose flushes have frees to apply, while other threads write, read and
# punch holes in the same 1 MiB and snapshots are taken over REST. A
# flush that applies frees drains the image's asynchronous requests; run
# on the I/O thread, which alone completes them, it can wait for itself
# (a worker may submit between the decision to flush there and the
# drain). A watchdog turns a hang (no thread making progress for 15 s)
# into a failure; in builds with assertions (VD_ASSERT, VD_SANITIZE) a
# drain on the I/O thread aborts the daemon at once. Afterwards the
# volume counted no errors and the image passes qemu-img check.
# STRESS_SECS (default 20) and STRESS_REGION (bytes, default 1 MiB).
. "$(dirname "$0")/../functions.sh" || exit 1
. "$(dirname "$0")/../qcow2-functions.sh" || exit 1

SECS=${STRESS_SECS:-20}
cd "$T" || exit 1
start_daemon
api POST /volumes '{"name":"v","size":"16M","format":"qcow2"}'
expect_status 201
IMG=$(json_get image)
F=$VD_MNT/v

(
    # Snapshots make every cluster shared: the next overwrite copies it
    # and queues a free of the old one for the next flush.
    i=0
    end=$((SECONDS + SECS))
    while [ $SECONDS -lt $end ]; do
        i=$((i + 1))
        curl -sS -m 60 -o /dev/null -X POST -H 'Content-Type: application/json' \
            --data-binary "{\"name\":\"s$i\"}" "$VD_URL/volumes/v/snapshots" ||
            exit 1
        [ $i -gt 3 ] && { curl -sS -m 60 -o /dev/null -X DELETE \
            "$VD_URL/volumes/v/snapshots/s$((i - 3))" || exit 1; }
        sleep 0.1
    done
) >"$T/snap.out" 2>&1 &
snapper=$!
on_exit "kill $snapper"

python3 - "$F" "$SECS" >"$T/stress.out" 2>&1 <<'PY'
import ctypes, mmap, os, random, sys, threading, time

path, secs = sys.argv[1], int(sys.argv[2])
size = min(os.path.getsize(path), int(os.environ.get("STRESS_REGION", 1 << 20)))
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
PUNCH = 0x01 | 0x02   # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
BS, CL = 4096, 65536
progress = {}
errors = []
stop = time.monotonic() + secs

shared = os.open(path, os.O_RDWR | os.O_DIRECT)   # the fsyncers' handle

def worker(name, body):
    fd = shared if name.startswith("fsync") else os.open(path, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, BS)
    buf.write(os.urandom(BS))
    rnd = random.Random(name)
    try:
        while time.monotonic() < stop:
            body(fd, buf, rnd)
            progress[name] = progress.get(name, 0) + 1
            if rnd.random() < 0.3:   # let the volume go idle now and then
                time.sleep(rnd.random() / 2000)
    except OSError as e:
        errors.append(f"{name}: {e}")
    finally:
        if fd != shared:
            os.close(fd)

def block(rnd):
    return rnd.randrange(size // BS) * BS

def fsyncer(fd, buf, rnd):
    os.pwrite(fd, buf, block(rnd))
    os.fsync(fd)

def writer(fd, buf, rnd):
    os.pwrite(fd, buf, block(rnd))

def reader(fd, buf, rnd):
    os.preadv(fd, [buf], block(rnd))

def puncher(fd, buf, rnd):
    off = rnd.randrange(size // CL) * CL
    if libc.fallocate(fd, PUNCH, off, CL) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")
    time.sleep(0.002)

jobs = [(f"fsync{i}", fsyncer) for i in range(3)] + \
       [(f"w{i}", writer) for i in range(4)] + \
       [(f"r{i}", reader) for i in range(3)] + [("punch", puncher)]
threads = [threading.Thread(target=worker, args=j, daemon=True) for j in jobs]
for t in threads:
    t.start()
last, idle = None, 0
while any(t.is_alive() for t in threads):
    time.sleep(1)
    now = dict(progress)
    idle = idle + 1 if now == last else 0
    last = now
    if idle >= 15:
        print(f"HANG: no thread progressed for {idle} s; counts {now}", flush=True)
        os._exit(3)
if errors:
    print("errors:", errors, flush=True)
    sys.exit(1)
print("ops", progress, flush=True)
PY
rc=$?
cat "$T/stress.out"
[ $rc -eq 0 ] || fail "stress run failed (rc $rc): $(cat "$T/stress.out")"
wait $snapper || fail "snapshots failed: $(cat "$T/snap.out")"
api GET /volumes/v
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"]["errors"])' "$T/body")" = 0 ] ||
    fail "errors counted: $API_BODY"
stop_daemon
qemu-img check "$IMG" >"$T/check.out" 2>&1 ||
    fail "qemu-img check: $(head -20 "$T/check.out")"
