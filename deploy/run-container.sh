#!/bin/sh
# run-container.sh — run the vdiskd image with its FUSE mount shared back
# to the host.
#
# Usage: deploy/run-container.sh [HOST_MOUNT_DIR [IMAGE [VDISKD-FLAG...]]]
#   HOST_MOUNT_DIR  where the volume files appear on the host (/mnt/vols)
#   IMAGE           the image built from deploy/Containerfile (vdiskd)
# Environment:
#   VDISKD_NAME     container name (vdiskd)
#   VDISKD_DATA     named volume or absolute host directory for the catalog
#                   and images (vdiskd-data)
#   VDISKD_PUBLISH  host address of the API (127.0.0.1:8080)
#   VDISKD_TOKEN_FILE  API token file on the host (/etc/vdiskd/api-tokens);
#                   made with one random admin token if it does not exist
set -eu
mnt=${1:-/mnt/vols}
image=${2:-vdiskd}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
name=${VDISKD_NAME:-vdiskd}
data=${VDISKD_DATA:-vdiskd-data}
publish=${VDISKD_PUBLISH:-127.0.0.1:8080}
tokens=${VDISKD_TOKEN_FILE:-/etc/vdiskd/api-tokens}

# The API listens on every address inside the container, so it wants a
# token file: "NAME ROLE TOKEN" lines (role admin or read), mode 0600.
# Clients send "Authorization: Bearer TOKEN".
if [ ! -e "$tokens" ]; then
    mkdir -p "$(dirname "$tokens")"
    (umask 077 &&
        printf 'admin admin %s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >"$tokens")
    echo "run-container.sh: made $tokens with an admin token (see it with: cat $tokens)" >&2
fi

# A container that was killed leaves a dead FUSE mount ("Transport endpoint
# is not connected") behind: clear it. A live one is left alone. Listing
# the directory asks the FUSE server; stat may be answered from a cache.
while ! ls -A "$mnt" >/dev/null 2>&1 &&
    findmnt -n -o FSTYPE "$mnt" 2>/dev/null | grep -q '^fuse'; do
    echo "run-container.sh: clearing a dead FUSE mount at $mnt" >&2
    umount -l "$mnt"
done
mkdir -p "$mnt"
# The host directory must itself be a shared mount point, or the container's
# FUSE mount never propagates back (/ is often private).
mountpoint -q "$mnt" || mount --bind "$mnt" "$mnt"
findmnt -n -o PROPAGATION "$mnt" | grep -q shared || mount --make-shared "$mnt"

# --stop-timeout: as long as the systemd unit gives it to flush every volume
# and unmount before a SIGKILL (which would leave a dead mount behind).
exec podman run -d --name "$name" --stop-timeout 60 \
    --device /dev/fuse --cap-add SYS_ADMIN \
    --security-opt apparmor=unconfined \
    -v "$data:/var/lib/vdiskd" \
    -v "$mnt:/mnt/vols:rshared" \
    -v "$tokens:/etc/vdiskd/api-tokens:ro" \
    -p "$publish:8080" \
    "$image" "$@"
