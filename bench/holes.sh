#!/bin/bash
# holes.sh — how long reading a sparse volume through the mount takes:
# qemu-img convert of a 20 GiB qcow2 volume holding 1 MiB, and the
# README's snapshot-view backups (cp --sparse=always, qemu-img convert)
# of a 20 GiB volume holding DATA_MB, against reading just that data from
# the view. Timing is printed, never asserted.
#   bench/holes.sh BINARY [DATA_MB]
# Environment: HOLES_DIR (work directory, default /var/tmp/vdholes),
# HOLES_OUT (where copies are written, default a directory in /dev/shm so
# that the target disk's speed does not count), VD_ARGS (daemon flags).
set -eu
BIN=$1 DATA_MB=${2:-256}
W=${HOLES_DIR:-/var/tmp/vdholes}
O=${HOLES_OUT:-/dev/shm/vdholes.$$}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
U=http://127.0.0.1:$PORT
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    umount -l "$W/mnt" 2>/dev/null || true
    rm -rf "$W" "$O"
}
trap cleanup EXIT
rm -rf "$W"
mkdir -p "$W/data" "$W/mnt" "$O"
"$BIN" --data-dir "$W/data" --mount "$W/mnt" --listen "127.0.0.1:$PORT" ${VD_ARGS:-} \
    >"$W/log" 2>&1 &
pid=$!
for _ in $(seq 50); do
    curl -fs "$U/health" >/dev/null && break
    sleep 0.1
done
post() { curl -fsS -H 'Content-Type: application/json' -X POST "$U$1" -d "$2" >/dev/null; }
secs() { # secs COMMAND... — wall time in seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc | sed 's/^\./0./'
}
post /volumes '{"name":"v1","size":"20G","format":"qcow2"}'
qemu-io -f raw -c 'write -q -P 0x5a 1G 1M' "$W/mnt/v1"
echo "convert 20 GiB volume holding 1 MiB: $(secs qemu-img convert -O raw "$W/mnt/v1" "$O/v1.raw") s"
echo "bytes qemu-img map shows as data: $(qemu-img map -f raw --output=json "$W/mnt/v1" |
    python3 -c 'import json,sys; print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')"

post /volumes '{"name":"v2","size":"20G","format":"qcow2"}'
n=$((DATA_MB / 4))
for i in 0 1 2 3; do
    qemu-io -f raw -c "write -q -P 0x6$i $((i * 5))G ${n}M" "$W/mnt/v2"
done
post /volumes/v2/snapshots '{"name":"s1"}'
view=$W/mnt/.snapshots/v2/s1
readdata() {
    for i in 0 1 2 3; do
        dd if="$view" of=/dev/null bs=1M iflag=direct,skip_bytes \
            skip=$((i * 5 << 30)) count="$n" status=none
    done
}
echo "read the view's ${DATA_MB} MiB of data: $(secs readdata) s"
echo "cp --sparse=always of the view: $(secs cp --sparse=always "$view" "$O/b.raw") s"
rm -f "$O/b.raw"
echo "qemu-img convert -O qcow2 of the view: $(secs qemu-img convert -O qcow2 "$view" "$O/b.qcow2") s"
