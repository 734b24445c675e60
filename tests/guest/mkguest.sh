#!/bin/bash
# mkguest.sh — build the functional-test guest once and cache it: the kernel
# of Debian's linux-image-amd64 (apt-get download + dpkg -x, not installed)
# and a busybox-static initramfs whose /init is tests/guest/init, with the
# modules it loads in dependency order (from the modules' depends=).
#
# Usage: mkguest.sh CACHE_DIR — prints "KERNEL_PATH INITRD_PATH" on stdout.
# Safe to run concurrently (flock); a kernel or init change builds anew.
set -euo pipefail
cache=$1
here=$(cd "$(dirname "$0")" && pwd)
store=$cache/guest
mkdir -p "$store"
exec 9>"$cache/guest.build.lock"
flock 9

die() { echo "mkguest: $*" >&2; exit 1; }
# Not `busybox --list | grep -q`: grep quits at the first match, busybox
# may then die of SIGPIPE, and pipefail turns that into "missing".
applets=$(/bin/busybox --list 2>/dev/null || true)
if ! grep -qx cpio <<<"$applets"; then
    die "/bin/busybox (busybox-static) missing: run deploy/install-deps.sh --test"
fi

# ---- kernel ------------------------------------------------------------------
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
pkg=$(kpkg)
if [ -z "$pkg" ]; then
    apt-get update -qq >&2
    pkg=$(kpkg)
fi
[ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
# virtio disks; ext4 (which mounts ext2) for the file-system workload, with
# the crc32c its "softdep=pre: crypto-crc32c" asks for.
wanted="virtio_pci virtio_blk crc32c_generic ext4"
kdir=$store/kernel/$pkg-$(echo "$wanted" | sha256sum | cut -c1-8)
if [ ! -f "$kdir/ok" ]; then
    echo "mkguest: fetching $pkg" >&2
    rm -rf "$kdir" "$kdir.tmp"
    mkdir -p "$kdir.tmp/deb"
    chown _apt "$kdir.tmp/deb" 2>/dev/null || true   # apt-get download drops root
    if ! (cd "$kdir.tmp/deb" && apt-get download -q "$pkg" >&2); then
        # Stale package lists name a kernel the archive no longer has:
        # refresh them once and start over (the kernel may have changed).
        [ -z "${MKGUEST_UPDATED:-}" ] || die "apt-get download $pkg failed"
        rm -rf "$kdir.tmp"
        apt-get update -qq >&2
        MKGUEST_UPDATED=1 exec bash "$0" "$@"
    fi
    dpkg -x "$kdir.tmp"/deb/*.deb "$kdir.tmp/x"
    kver=$(ls "$kdir.tmp/x/lib/modules")
    mods=$kdir.tmp/x/lib/modules/$kver
    mkdir -p "$kdir.tmp/k/modules"
    cp "$kdir.tmp/x/boot/vmlinuz-$kver" "$kdir.tmp/k/vmlinuz"
    # The package has no modules.dep (depmod makes it at install time), so
    # read each module's own "depends=" and order them depth-first: every
    # module after the modules it needs. Keep only those, not 400 MB.
    order=()
    resolve() {
        local m=$1 f have deps dep
        for have in "${order[@]}"; do [ "$have" = "$m" ] && return 0; done
        f=$(find "$mods/kernel" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) | head -n 1)
        if [ -z "$f" ]; then
            grep -qE "/$m\.ko\$" "$mods/modules.builtin" && return 0
            die "module $m is neither in $pkg nor built in"
        fi
        case $f in
        *.ko) cp "$f" "$kdir.tmp/k/modules/$m.ko" ;;
        *.ko.xz) xz -dc "$f" >"$kdir.tmp/k/modules/$m.ko" ;;
        *.ko.zst) zstd -qdc "$f" >"$kdir.tmp/k/modules/$m.ko" ;;
        *) die "unknown module file $f" ;;
        esac
        deps=$(tr '\0' '\n' <"$kdir.tmp/k/modules/$m.ko" | sed -n 's/^depends=//p' | head -n 1)
        for dep in ${deps//,/ }; do
            resolve "$dep"
        done
        order+=("$m")
    }
    for m in $wanted; do
        resolve "$m"
    done
    echo "${order[*]}" >"$kdir.tmp/k/order"
    echo "$kver" >"$kdir.tmp/k/version"
    mv "$kdir.tmp/k" "$kdir"
    rm -rf "$kdir.tmp"
    touch "$kdir/ok"
fi
# Other kernels and initramfs images may be in use by a test running from
# another checkout: drop only those nobody used for a week.
touch "$kdir/ok"
for d in "$store"/kernel/*; do
    if [ "$d" != "$kdir" ] && [ -z "$(find "$d/ok" -mtime -7 2>/dev/null)" ]; then
        rm -rf "$d"
    fi
done
find "$store" -maxdepth 1 -name 'initrd-*.cpio.gz' -mtime +7 -delete
read -r -a order <"$kdir/order"

# ---- initramfs ---------------------------------------------------------------
key=$( (echo "$pkg ${order[*]}"; cat "$here/init" /bin/busybox) | sha256sum | cut -c1-16)
initrd=$store/initrd-$key.cpio.gz
if [ ! -f "$initrd" ]; then
    echo "mkguest: packing initramfs (modules: ${order[*]})" >&2
    root=$(mktemp -d "$store/initrd.XXXXXX")
    mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
    cp /bin/busybox "$root/bin/busybox"
    cp "$here/init" "$root/init"
    chmod 0755 "$root/init"
    for m in "${order[@]}"; do
        cp "$kdir/modules/$m.ko" "$root/lib/modules/$m.ko"
    done
    echo "${order[*]}" >"$root/lib/modules/order"
    (cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) |
        gzip -1 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$root"
fi
touch "$initrd"
echo "$kdir/vmlinuz $initrd"
