# tests/qos-functions.sh — helpers for the QoS tests: run fio through a
# volume's FUSE file and read back what it measured. Source after
# functions.sh.

# fio_run NAME FILE RW BS QD SECONDS [extra fio args...]: a time-based fio
# job with io_uring and O_DIRECT, the way QEMU drives the file; JSON
# output in $T/NAME.json.
fio_run() {
    local name=$1 file=$2 rw=$3 bs=$4 qd=$5 secs=$6
    shift 6
    fio --name="$name" --filename="$file" --ioengine=io_uring --direct=1 \
        --rw="$rw" --bs="$bs" --iodepth="$qd" --time_based \
        --runtime="$secs" --randrepeat=0 --output-format=json \
        --output="$T/$name.json" "$@" >/dev/null 2>&1 ||
        fail "fio $name: $(cat "$T/$name.json" 2>/dev/null)"
}

# fio_get NAME read|write iops|bw_bytes|total_ios: a figure of job NAME.
fio_get() {
    python3 - "$T/$1.json" "$2" "$3" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
v = j["io_kbytes"] * 1024 if sys.argv[3] == "bytes" else j[sys.argv[3]]
print(int(round(v)))
PY
}

# within VALUE TARGET PERCENT: whether VALUE is TARGET +- PERCENT %.
within() {
    [ $(( $1 * 100 )) -ge $(( $2 * (100 - $3) )) ] &&
        [ $(( $1 * 100 )) -le $(( $2 * (100 + $3) )) ]
}

# volume_stat VOLUME KEY: a member of the volume's "stats".
volume_stat() {
    api GET "/volumes/$1"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"][sys.argv[2]])' \
        "$T/body" "$2"
}

# fio_once NAME FILE RW BS QD IO_SIZE [extra fio args...]: like fio_run,
# but a fixed amount of I/O instead of a fixed time.
fio_once() {
    local name=$1 file=$2 rw=$3 bs=$4 qd=$5 io=$6
    shift 6
    fio --name="$name" --filename="$file" --ioengine=io_uring --direct=1 \
        --rw="$rw" --bs="$bs" --iodepth="$qd" --io_size="$io" \
        --randrepeat=0 --output-format=json --output="$T/$name.json" "$@" \
        >/dev/null 2>&1 || fail "fio $name: $(cat "$T/$name.json" 2>/dev/null)"
}

# now_ms: a monotonic-enough clock for pacing a test, in milliseconds.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# sleep_until_ms T: sleep until now_ms reaches T.
sleep_until_ms() {
    local left=$(($1 - $(now_ms)))
    if [ $left -gt 0 ]; then
        sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
    fi
}
