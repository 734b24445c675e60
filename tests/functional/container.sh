#!/bin/bash
# container.sh — the container deployment, end to end: build the image from
# deploy/Containerfile on a debootstrap-made Debian 12 base, run it with
# deploy/run-container.sh on a test mount directory, create a volume over
# the published API, write and read it from the host with qemu-io (io_uring,
# O_DIRECT) through the propagated FUSE mount, stop it (clean exit, mount
# gone), and run a new container on the same data volume: the volume and
# its data are back, also after a container that was killed. QEMU on the
# host boots a guest on the volume the container serves. Last, the same
# image runs through deploy/compose.yaml.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/guest.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=$VD_TEST_CACHE
BASE=localhost/debian12-base
ID=$$-$RANDOM
IMG=localhost/vdiskd-test:$ID
NAME=vdiskd-test-$ID
DATAVOL=vdiskd-test-data-$ID
MNT=$T/vols
SIZE=67108864
# The container listens on all its addresses, so it needs a token file:
# run-container.sh makes one when VDISKD_TOKEN_FILE does not exist; every
# curl of this test sends the token through its own .curlrc.
export VDISKD_TOKEN_FILE=$T/api-tokens
export CURL_HOME=$T

for tool in podman podman-compose runc debootstrap qemu-io qemu-img curl findmnt flock; do
    command -v "$tool" >/dev/null || fail "$tool missing: run deploy/install-deps.sh --test"
done
mkdir -p "$CACHE"
guest_setup

# Podman settings for this machine, for this test only (CONTAINERS_CONF
# replaces the system files): runc, since crun 1.8 fails on a hybrid cgroup
# layout; cgroupfs without systemd; ulimits within the hard nofile limit.
cat >"$T/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$T/containers.conf

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Fail with the container's own log.
cfail() {
    podman logs "$NAME" >"$T/container.log" 2>&1
    VD_LOG=$T/container.log
    fail "$@"
}

# ---- what a killed run of this test left behind ---------------------------------------
# Names carry the PID of the test that made them; nothing of a live one is touched.
sweep() {
    local img id pid c src
    for img in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/vdiskd-test:'); do
        id=${img#localhost/vdiskd-test:}
        pid=${id%%-*}
        kill -0 "$pid" 2>/dev/null && continue
        echo "container: removing $img and its containers, left by a killed run"
        for c in $(podman ps -a -q --filter "ancestor=$img"); do
            src=$(podman container inspect -f \
                '{{range .Mounts}}{{if eq .Destination "/mnt/vols"}}{{.Source}}{{end}}{{end}}' "$c")
            podman rm -f -t 0 "$c" >/dev/null 2>&1
            # Its mount dir in the dead test's temp dir: the FUSE and bind mounts.
            if [[ $src =~ ^/tmp/vdtest\.[A-Za-z0-9]+/vols$ ]]; then
                while awk -v m="$src" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; do
                    umount -l "$src" || break
                done
                rm -rf "${src%/vols}"
            fi
        done
        podman volume rm -f "vdiskd-test-data-$id" "vdiskdtest${id//-/}_vdiskd-data" >/dev/null 2>&1
        podman network rm -f "vdiskdtest${id//-/}_default" >/dev/null 2>&1
        podman rmi -f "$img" >/dev/null 2>&1
    done
}
sweep

# ---- base image (cached) and the vdiskd image (made here, removed at exit) ---------
t0=$(date +%s.%N)
(
    flock 8
    podman image exists "$BASE" ||
        "$SRC/deploy/debian-base.sh" "$BASE" "$CACHE/debian12-base.tar"
) 8>"$CACHE/base.lock" || fail "could not make the base image $BASE"
echo "container: base image $BASE ready in $(elapsed "$t0") s"

t0=$(date +%s.%N)
on_exit "podman rmi -f '$IMG'"
# --network=host: apt in the build reaches the archive the host reaches.
# --layers=false: no intermediate images are left behind.
podman build --layers=false --network=host --build-arg "BASE=$BASE" \
    -f "$SRC/deploy/Containerfile" -t "$IMG" "$SRC" >"$T/build.log" 2>&1 ||
    fail "podman build: $(tail -n 30 "$T/build.log")"
echo "container: built $IMG in $(elapsed "$t0") s"

# ---- run -----------------------------------------------------------------------------
on_exit "podman volume rm -f '$DATAVOL'"
# run_container [VDISKD-FLAG...] — run-container.sh, then wait for the API
# and for the mount to show on the host.
run_container() {
    VD_PORT=$(free_port)
    VD_URL=http://127.0.0.1:$VD_PORT
    on_exit "podman rm -f -t 5 '$NAME'"
    t0=$(date +%s.%N)
    VDISKD_NAME=$NAME VDISKD_DATA=$DATAVOL VDISKD_PUBLISH=127.0.0.1:$VD_PORT \
        "$SRC/deploy/run-container.sh" "$MNT" "$IMG" "$@" >"$T/run.out" 2>&1 ||
        fail "run-container.sh: $(cat "$T/run.out")"
    sed -n 's/^run-container.sh: /container: run-container.sh: /p' "$T/run.out"
    [ "$(stat -c %a "$VDISKD_TOKEN_FILE")" = 600 ] || cfail "token file is not 0600"
    printf 'header = "Authorization: Bearer %s"\n' \
        "$(awk '{print $3}' "$VDISKD_TOKEN_FILE")" >"$T/.curlrc"
    wait_healthy
}

# wait_healthy — the API of container $NAME answers on $VD_URL and its
# mount is on the host at $MNT.
wait_healthy() {
    local i
    for ((i = 0; i < 150; i++)); do
        curl -fsS "$VD_URL/health" >/dev/null 2>&1 && break
        [ "$(podman container inspect -f '{{.State.Running}}' "$NAME")" = true ] ||
            cfail "container exited during start-up"
        sleep 0.2
    done
    [ "$i" -lt 150 ] || cfail "API on $VD_URL not healthy within 30 s"
    # The daemon mounts before it answers; the mount must be on the host.
    findmnt -n -o FSTYPE "$MNT" | grep -q '^fuse' ||
        cfail "the container's FUSE mount did not reach the host at $MNT: $(findmnt -R "$MNT")"
    echo "container: $NAME healthy on $VD_URL, mount on the host, in $(elapsed "$t0") s"
}

# podman stop: SIGTERM, the daemon unmounts and exits 0 within the stop timeout.
stop_container() {
    t0=$(date +%s.%N)
    podman stop "$NAME" >/dev/null || cfail "podman stop failed"   # run-container.sh set the timeout
    local rc
    rc=$(podman container inspect -f '{{.State.ExitCode}}' "$NAME")
    [ "$rc" = 0 ] || cfail "vdiskd in the container exited with $rc on podman stop"
    if awk -v m="$MNT" '$2 == m && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/mounts; then
        cfail "FUSE mount still in /proc/mounts after podman stop"
    fi
    echo "container: stopped cleanly, mount gone, in $(elapsed "$t0") s"
}

run_container

[ "$(curl -q -s -o /dev/null -w '%{http_code}' "$VD_URL/volumes")" = 401 ] ||
    cfail "the container's API answered without a token"
api POST /volumes "{\"name\":\"v1\",\"size\":$SIZE}"
expect_status 201
FMT=$(json_get format)
[ "$(json_get path)" = /mnt/vols/v1 ] || fail "volume path $(json_get path), want /mnt/vols/v1"
IMAGE_IN_CTR=$(json_get image)
echo "container: created v1 ($FMT) through the published API"
[ "$(stat -c %s "$MNT/v1" 2>&1)" = $SIZE ] ||
    cfail "host sees $MNT/v1 as: $(stat -c %s "$MNT/v1" 2>&1)"

# Seeded patterns at the start, in the middle and at the end of the disk.
A=$((RANDOM % 255 + 1))
B=$((A % 255 + 1))
qio "$MNT/v1" "write -P $A 0 1M" "write -P $B 32M 64k" "write -P $A 63M 1M" \
    "flush" >"$T/qio.out" 2>&1 || cfail "qemu-io write through the host mount: $(cat "$T/qio.out")"
check_data() {
    qio "$MNT/v1" "read -P $A 0 1M" "read -P $B 32M 64k" "read -P $A 63M 1M" \
        "read -P 0 1M 1M" >"$T/qio.out" 2>&1 ||
        cfail "$1: qemu-io read through the host mount: $(cat "$T/qio.out")"
}
check_data "first container"
echo "container: wrote and read back bytes $A/$B with qemu-io (io_uring, O_DIRECT)"
stop_container

# ---- a new container on the same data volume -------------------------------------------
podman rm "$NAME" >/dev/null || fail "podman rm $NAME"
run_container
api GET /volumes/v1
expect_status 200
[ "$(json_get format)" = "$FMT" ] || fail "after restart v1 is $(json_get format), was $FMT"
check_data "second container"
echo "container: the new container serves v1 with its data"

# ---- killed, not stopped: the dead mount it leaves does not block the next ----------------
podman kill -s KILL "$NAME" >/dev/null || fail "podman kill"
podman wait "$NAME" >/dev/null 2>&1 || true
podman rm "$NAME" >/dev/null || fail "podman rm $NAME after kill"
left=$(awk -v m="$MNT" '$2 == m && $3 ~ /^fuse/' /proc/mounts)
echo "container: killed; left on the host: ${left:-nothing}"
# This one serves the files to an unprivileged QEMU user, the way libvirt
# runs QEMU. Names in the container are not the host's: numeric IDs.
QUID=64123
QGID=64124
run_container --owner $QUID:$QGID --file-mode 0660
check_data "container after a killed one"
# --owner is the default of new volumes; v1 is older: hand it over the
# way libvirt does, with chown on the mount.
chown $QUID:$QGID "$MNT/v1" || cfail "chown of $MNT/v1 on the host"
echo "container: a container after a killed one serves v1 with its data"
[ "$(stat -c %u:%g:%a "$MNT/v1")" = $QUID:$QGID:660 ] ||
    cfail "host sees $MNT/v1 as $(stat -c %u:%g:%a "$MNT/v1"), want $QUID:$QGID:660"
chmod 0711 "$T"     # let the unprivileged users reach $MNT
as_user() {         # UID GID qemu-io-command
    setpriv --reuid "$1" --regid "$2" --clear-groups -- qemu-io --image-opts \
        "driver=raw,file.driver=file,file.filename=$MNT/v1,file.aio=io_uring,cache.direct=on" \
        -c "$3" >"$T/qio.out" 2>&1
}
as_user $QUID $QGID "read -P $A 0 1M" ||
    cfail "uid $QUID cannot read its volume file: $(cat "$T/qio.out")"
as_user $QUID $QGID "write -P $A 8M 64k" ||
    cfail "uid $QUID cannot write its volume file: $(cat "$T/qio.out")"
if as_user $((QUID + 10)) $((QGID + 10)) "read 0 4k"; then
    cfail "another uid could read a 0660 volume file of uid $QUID"
fi
echo "container: uid $QUID reads and writes v1 on the host, another uid is refused"

# ---- QEMU on the host, vdiskd in the container -------------------------------------------
# The guest overwrites every region written above with its own pattern.
SEED=ctr-$RANDOM$RANDOM
BYTE=$((RANDOM % 255 + 1))
guest_expect "$SEED" "$BYTE" $SIZE
guest_boot "$MNT/v1" drive write "$SEED" "$BYTE"
qemu-img compare -q -f raw -F raw "$T/expect.raw" "$MNT/v1" ||
    cfail "$MNT/v1 differs from the pattern the guest wrote"
echo "container: a guest on the host wrote v1 through the container"
stop_container

# And the data is in the image file inside the data volume.
vol_dir=$(podman volume inspect -f '{{.Mountpoint}}' "$DATAVOL") || fail "volume inspect"
image=$vol_dir/${IMAGE_IN_CTR#/var/lib/vdiskd/}
qemu-img compare -q -f raw -F "$FMT" "$T/expect.raw" "$image" ||
    fail "image $image ($FMT) differs from the pattern the guest wrote"
if [ "$FMT" = qcow2 ]; then
    qemu-img check -f qcow2 "$image" >"$T/check.out" 2>&1 || fail "qemu-img check: $(cat "$T/check.out")"
fi

# ---- the same image through deploy/compose.yaml (podman-compose) ----------------------
# A project of its own (fresh data volume) on the same shared mount dir.
PROJ=vdiskdtest${ID//-/}
NAME=${PROJ}_vdiskd_1
VD_PORT=$(free_port)
VD_URL=http://127.0.0.1:$VD_PORT
compose() {
    (cd "$SRC/deploy" && VDISKD_IMAGE=$IMG VDISKD_MOUNT=$MNT VDISKD_PUBLISH=127.0.0.1:$VD_PORT \
        podman-compose -p "$PROJ" -f compose.yaml "$@")
}
on_exit "podman network rm -f '${PROJ}_default'"
on_exit "podman volume rm -f '${PROJ}_vdiskd-data'"
on_exit "podman rm -f -t 5 '$NAME'"
t0=$(date +%s.%N)
compose up -d --no-build >"$T/compose.out" 2>&1 || fail "podman-compose up: $(tail -n 20 "$T/compose.out")"
podman container exists "$NAME" || fail "podman-compose made no $NAME: $(tail -n 20 "$T/compose.out")"
wait_healthy
api POST /volumes "{\"name\":\"c1\",\"size\":$SIZE}"
expect_status 201
qio "$MNT/c1" "write -P $B 0 1M" "flush" "read -P $B 0 1M" >"$T/qio.out" 2>&1 ||
    cfail "qemu-io through the compose container: $(cat "$T/qio.out")"
[ -e "$MNT/v1" ] && cfail "the compose project should have its own data volume, but v1 is there"
echo "container: compose.yaml: volume c1 served to the host"
stop_container
compose down >"$T/compose.out" 2>&1 || fail "podman-compose down: $(tail -n 20 "$T/compose.out")"
podman container exists "$NAME" && fail "podman-compose down left $NAME"
echo "container: ok ($FMT)"
