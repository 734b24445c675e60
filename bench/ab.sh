#!/bin/bash
# ab.sh — A/B two vdiskd binaries on one fully written 2 GiB qcow2 image,
# alternating them REPS times, one fio run each; prints IOPS and daemon
# CPU per I/O. For quick before/after checks of one change; the full
# comparison with the peers is bench/run.sh.
#   bench/ab.sh OLD_BINARY NEW_BINARY [RW [QD [REPS [BS]]]]
# Environment: FIO_EXTRA (extra fio flags, e.g. --fsync=1), VD_ARGS (extra
# flags for both daemons), AB_DIR (where the image is kept between runs,
# default /var/tmp/vdab). Each run has its own port and work directory, so
# two runs may go on at once. QOS_OLD / QOS_NEW (a "qos" object the old /
# new daemon's volume is made with, e.g. QOS_NEW='{"iops":100000000}' with
# the same binary twice: the cost of a limit far above the load).
set -eu
OLD=$1 NEW=$2 RW=${3:-randread} QD=${4:-32} REPS=${5:-3} BS=${6:-4k}
IMG_DIR=${AB_DIR:-/var/tmp/vdab}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$IMG_DIR/imp"
W=$(mktemp -d "$IMG_DIR/run.XXXXXX")
ln -s "$IMG_DIR/imp" "$W/imp"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    umount -l "$W/mnt" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
if [ ! -f "$W/imp/v.qcow2" ]; then
    qemu-img create -q -f qcow2 "$W/imp/v.qcow2.tmp" 2G
    qemu-io -f qcow2 -c "write -q -P 0x5a 0 1G" -c "write -q -P 0x5b 1G 1G" \
        "$W/imp/v.qcow2.tmp"
    mv "$W/imp/v.qcow2.tmp" "$W/imp/v.qcow2"
fi
run() {   # run BINARY LABEL [QOS]
    rm -rf "$W/data" "$W/mnt"
    mkdir -p "$W/data" "$W/mnt"
    # shellcheck disable=SC2086
    "$1" --data-dir "$W/data" --mount "$W/mnt" --listen 127.0.0.1:$PORT \
        --import-dir "$W/imp" ${VD_ARGS:-} >"$W/log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        curl -fs 127.0.0.1:$PORT/health >/dev/null && break
        sleep 0.1
    done
    curl -fs -H 'Content-Type: application/json' -X POST \
        127.0.0.1:$PORT/volumes \
        -d "{\"name\":\"v\",\"import\":{\"path\":\"$W/imp/v.qcow2\"}${3:+,\"qos\":$3}}" \
        >/dev/null
    local c0 c1
    c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    # shellcheck disable=SC2086
    fio --name=ab --filename="$W/mnt/v" --ioengine=io_uring --direct=1 \
        --time_based --runtime=6 --ramp_time=1 --rw="$RW" --bs="$BS" \
        --iodepth="$QD" --size=2G --randrepeat=0 --norandommap \
        ${FIO_EXTRA:-} --output-format=json --output="$W/fio.json" >/dev/null
    c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    python3 - "$2" "$c0" "$c1" "$W/fio.json" <<'PY'
import json, os, sys
j = json.load(open(sys.argv[4]))["jobs"][0]
iops = j["read"]["iops"] + j["write"]["iops"]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
tick = os.sysconf("SC_CLK_TCK")
cpu_us = (int(sys.argv[3]) - int(sys.argv[2])) * 1e6 / tick / max(ios, 1)
print(f"{sys.argv[1]:4s} {iops:9.0f} IOPS  cpu {cpu_us:6.1f} us/io")
PY
    kill "$pid"
    wait "$pid" || true
    pid=
    umount -l "$W/mnt" 2>/dev/null || true
}
for _ in $(seq "$REPS"); do
    run "$OLD" old "${QOS_OLD:-}"
    run "$NEW" new "${QOS_NEW:-}"
done
