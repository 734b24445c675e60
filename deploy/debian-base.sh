#!/bin/sh
# debian-base.sh — make a Debian 12 base image with debootstrap, for hosts
# that reach Debian's apt archive but no container registry. Build vdiskd on
# it with:  podman build --build-arg BASE=localhost/debian12-base ...
#
# Usage: deploy/debian-base.sh [TAG] [TARBALL]
#   TAG      image name (default localhost/debian12-base)
#   TARBALL  keep the root file system here and import from it when it
#            exists, instead of running debootstrap again (optional)
# The mirror is the one apt uses ($MIRROR overrides it). Needs root,
# debootstrap and podman.
set -eu
tag=${1:-localhost/debian12-base}
tarball=${2:-}
mirror=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' \
    /etc/apt/sources.list 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/debian-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -z "$tarball" ] || [ ! -s "$tarball" ]; then
    echo "debian-base: debootstrap bookworm from $mirror" >&2
    if ! debootstrap --variant=minbase bookworm "$work/root" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        exit 1
    fi
    # No downloaded packages or lists in the image; builds run apt-get update.
    rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
    out=${tarball:-$work/root.tar}
    tar -C "$work/root" --numeric-owner -cf "$out.tmp" .
    mv "$out.tmp" "$out"
    tarball=$out
fi
podman import --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
echo "debian-base: $tag" >&2
