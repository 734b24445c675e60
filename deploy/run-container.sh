#!/bin/sh
# run-container.sh — run the vdiskd image with its FUSE mount shared back
# to the host. Usage: deploy/run-container.sh [HOST_MOUNT_DIR] [IMAGE]
set -eu
mnt=${1:-/mnt/vols}
image=${2:-vdiskd}
mkdir -p "$mnt"
# The host directory must itself be a shared mount, or the container's FUSE
# mount never propagates back.
if ! findmnt -n -o PROPAGATION "$mnt" 2>/dev/null | grep -q shared; then
    mountpoint -q "$mnt" || mount --bind "$mnt" "$mnt"
    mount --make-shared "$mnt"
fi
exec podman run -d --name vdiskd \
    --device /dev/fuse --cap-add SYS_ADMIN \
    --security-opt apparmor=unconfined \
    -v vdiskd-data:/var/lib/vdiskd \
    -v "$mnt:/mnt/vols:rshared" \
    -p 127.0.0.1:8080:8080 \
    "$image"
