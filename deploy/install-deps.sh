#!/bin/sh
# install-deps.sh — install what vdiskd needs on Debian 12, as root.
#   deploy/install-deps.sh          build and runtime packages
#   deploy/install-deps.sh --test   also the tools the test suite drives
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="build-essential cmake pkg-config fuse3 libfuse3-dev libmicrohttpd-dev
      libjansson-dev libsqlite3-dev uuid-dev zlib1g-dev libzstd-dev
      liburing-dev libnbd-dev librbd-dev librados-dev curl"
if [ "${1:-}" = "--test" ]; then
    pkgs="$pkgs clang-format qemu-utils qemu-block-extra fio nbdkit nbd-client python3
          clang util-linux procps sqlite3 libnbd-bin
          qemu-system-common"
    # guest_boot.sh: a TCG guest with a Debian kernel and a busybox initramfs
    pkgs="$pkgs qemu-system-x86 busybox-static"
    # container.sh: rootful podman (runc: crun 1.8 fails on hybrid cgroups),
    # CNI + iptables for -p, and debootstrap for a base image without a registry
    pkgs="$pkgs podman podman-compose runc conmon containernetworking-plugins iptables
          debootstrap debian-archive-keyring"
    # test_rbd: a single-node Ceph cluster (tests/ceph/cluster.sh)
    pkgs="$pkgs ceph-mon ceph-osd ceph-common uuid-runtime"
    # systemd_unit.sh: systemd-analyze verify
    pkgs="$pkgs systemd"
    # metrics_promtool.sh: promtool check metrics (Debian ships it with the
    # server; the package's service is not needed and need not run)
    pkgs="$pkgs prometheus"
    # libvirt.sh: libvirtd (run by the test in its own mount namespace) and virsh
    pkgs="$pkgs libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu"
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (it calls apt-get)" >&2
    exit 1
fi
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
    grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
if [ "${1:-}" = "--test" ]; then
    # api_openapi_validate.sh: OpenAPI validators from npm, pinned by
    # tests/openapi/package-lock.json and installed in tests/openapi.
    # Debian's nodejs only if the machine has no Node.js of its own (a
    # packaged npm would conflict with a Node.js that bundles it);
    # @redocly/cli wants Node.js 20.19+ or 22.12+, @stoplight/prism-cli
    # 5.15 and later 24.14+ (hence 5.14.2).
    if ! command -v npm >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm
    fi
    (cd "$(dirname "$0")/../tests/openapi" &&
        npm ci --no-audit --no-fund --loglevel=error </dev/null)
fi
