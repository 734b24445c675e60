# shellcheck shell=bash
# tests/libvirt/libvirt.sh — a private libvirtd for functional tests; source
# it after tests/functions.sh (and tests/guest/guest.sh for guests).
#
# No systemd runs these machines, and the host's /etc/libvirt, /run and
# /var/{lib,log,cache}/libvirt must stay untouched, so libvirtd runs in its
# own mount namespace with those directories bind-mounted from $T/lv (and
# /dev/kvm hidden: domains are type='qemu', TCG). Its
# mounts die with it; the vdiskd mount made before it starts is seen
# inside. The QEMU driver's settings that differ from Debian's are only
# about this environment (no cgroups, no per-domain /dev, no virtlogd, no
# AppArmor); dynamic ownership and the QEMU user stay the defaults.
#
#   libvirt_skip_unless_usable   exit 77 (ctest SKIP) when libvirt cannot run here
#   libvirt_start                start libvirtd; sets LV, LV_PID, LV_URI
#   vsh ARGS...                  virsh against it (fails the test on error)
#   readme_xml NAME              the README's ```xml block marked <!-- xml:NAME -->
#   libvirt_domain_xml NAME DISK MODE SEED BYTE   the README's domain for the test guest
#   libvirt_wait_shutoff NAME SECONDS
#
# VD_LIBVIRT_LOG_LEVEL and VD_LIBVIRT_LOG_FILTERS set libvirtd's log (to
# $T/lv/libvirtd.log), e.g. 1 and "1:qemu.qemu_capabilities".

skip() {
    echo "SKIP: $*"
    exit 77
}

libvirt_skip_unless_usable() {
    local tool
    for tool in libvirtd virsh unshare; do
        command -v "$tool" >/dev/null ||
            skip "$tool missing (deploy/install-deps.sh --test installs libvirt)"
    done
    [ -f /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ] ||
        skip "libvirt's QEMU driver missing (libvirt-daemon-driver-qemu)"
    getent passwd libvirt-qemu >/dev/null ||
        skip "no libvirt-qemu user (libvirt-daemon-system makes it)"
    unshare -m true 2>/dev/null || skip "cannot make a mount namespace here (unshare -m)"
}

libvirt_start() {
    local d i
    LV=$T/lv
    for d in etc run/libvirt run/lock lib log cache; do
        mkdir -p "$LV/$d"
    done
    chmod 0755 "$LV" "$LV"/*
    : >"$LV/nokvm"
    chmod 0 "$LV/nokvm"
    # The QEMU user must reach the volume files below $T (mktemp's 0700).
    chmod 0711 "$T"
    cat >"$LV/etc/libvirtd.conf" <<EOF
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
log_outputs = "${VD_LIBVIRT_LOG_LEVEL:-3}:file:$LV/libvirtd.log"
log_filters = "${VD_LIBVIRT_LOG_FILTERS:-}"
EOF
    cat >"$LV/etc/qemu.conf" <<EOF
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
security_driver = "none"
EOF
    unshare -m --propagation slave -- bash -c '
        set -e
        lv=$1
        mount --bind "$lv/etc" /etc/libvirt
        mount --bind "$lv/run" /run
        mount --bind "$lv/lib" /var/lib/libvirt
        mount --bind "$lv/log" /var/log/libvirt
        mount --bind "$lv/cache" /var/cache/libvirt
        # KVM does not work on these machines: a /dev/kvm nobody may open
        # makes libvirt probe QEMU once without it, where a root-only one
        # has it probe again at every domain start (KVM seen while probing,
        # not usable by the QEMU user).
        if [ -e /dev/kvm ]; then
            mount --bind "$lv/nokvm" /dev/kvm
        fi
        exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid
    ' libvirt-ns "$LV" >"$LV/libvirtd.out" 2>&1 &
    LV_PID=$!
    on_exit "kill $LV_PID; sleep 1; kill -9 $LV_PID"
    LV_URI="qemu:///system?socket=$LV/run/libvirt/libvirt-sock"
    for ((i = 0; i < 300; i++)); do
        if [ -S "$LV/run/libvirt/libvirt-sock" ] &&
            virsh -c "$LV_URI" version >"$LV/version" 2>&1; then
            echo "libvirt: $(grep -i 'running hypervisor\|libvirt' "$LV/version" | tr '\n' ' ')"
            return 0
        fi
        kill -0 "$LV_PID" 2>/dev/null ||
            fail "libvirtd exited at start: $(tail -n 20 "$LV/libvirtd.out" "$LV/libvirtd.log" 2>/dev/null)"
        sleep 0.2
    done
    fail "libvirtd did not answer within 60 s: $(tail -n 20 "$LV/libvirtd.log" 2>/dev/null)"
}

vsh() {
    virsh -q -c "$LV_URI" "$@" 2>"$LV/virsh.err" ||
        fail "virsh $*: $(cat "$LV/virsh.err")"
}

# QEMU processes of a domain, killed by pid at exit should the domain
# outlive the test (libvirtd leaves running domains behind when it stops).
libvirt_guard_domain() {
    on_exit "virsh -c '$LV_URI' destroy $1; [ -f '$LV/run/libvirt/qemu/$1.pid' ] && kill -9 \$(cat '$LV/run/libvirt/qemu/$1.pid')"
}

# The README's ```xml block that follows the line "<!-- xml:NAME -->".
readme_xml() {
    awk -v tag="<!-- xml:$1 -->" '
        $0 == tag { want = 1; next }
        want && /^```xml/ { inblock = 1; next }
        inblock && /^```/ { exit }
        inblock { print }' "$VD_SRCDIR/README.md"
}

# The README's domain, as the test guest needs it and nothing else changed:
# type qemu (TCG: no /dev/kvm on the CI machines), the guest's kernel and
# initramfs instead of a boot disk's loader, its serial console to a file,
# the disk's source the test's volume (the <disk> element itself as written).
libvirt_domain_xml() {
    local name=$1 disk=$2 mode=$3 seed=$4 byte=$5
    readme_xml domain | python3 -c '
import sys, xml.etree.ElementTree as ET
name, disk, kernel, initrd, cmdline, serial, mnt = sys.argv[1:]
dom = ET.fromstring(sys.stdin.read())
dom.set("type", "qemu")
dom.find("name").text = name
mem = dom.find("memory"); mem.set("unit", "MiB"); mem.text = "256"
os_ = dom.find("os")
for b in os_.findall("boot"):
    os_.remove(b)
for tag, text in (("kernel", kernel), ("initrd", initrd), ("cmdline", cmdline)):
    ET.SubElement(os_, tag).text = text
ET.SubElement(dom, "on_reboot").text = "destroy"
devs = dom.find("devices")
src = devs.find("disk/source")
if not src.get("file", "").startswith("/mnt/vols/"):
    sys.exit("README domain: disk source is not a file on /mnt/vols")
src.set("file", disk)
for s in devs.findall("serial") + devs.findall("console"):
    devs.remove(s)
ser = ET.SubElement(devs, "serial", type="file")
ET.SubElement(ser, "source", path=serial)
print(ET.tostring(dom, encoding="unicode"))
' "$name" "$disk" "$LV/guest/vmlinuz" "$LV/guest/initrd" \
        "console=ttyS0 quiet panic=-1 vd_mode=$mode vd_seed=$seed vd_byte=$byte vd_fs=0" \
        "$LV/guest/$name.serial" "$VD_MNT" || fail "could not build the domain XML from README.md"
}

# The kernel and initramfs in a directory of the test's own: libvirt
# relabels them for the QEMU user, and the cached ones are shared.
libvirt_guest_files() {
    mkdir -p "$LV/guest"
    chmod 0755 "$LV/guest"
    cp "$GUEST_KERNEL" "$LV/guest/vmlinuz"
    cp "$GUEST_INITRD" "$LV/guest/initrd"
}

# A transient domain that stopped is gone from `virsh list` (it passes
# through "in shutdown" on the way).
libvirt_wait_shutoff() {
    local name=$1 end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        virsh -q -c "$LV_URI" list --name >"$LV/list" 2>&1 || fail "virsh list: $(cat "$LV/list")"
        grep -qx "$name" "$LV/list" || return 0
        sleep 0.5
    done
    return 1
}
