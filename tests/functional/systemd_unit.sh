#!/bin/bash
# systemd_unit.sh — deploy/vdiskd.service as installed by the README's
# commands passes `systemd-analyze verify` with nothing to say; it gives the
# service no mount or network namespace of its own (else its FUSE mount
# would be invisible to QEMU on the host, or its API to the host); and the
# daemon works within the unit's CapabilityBoundingSet= with
# NoNewPrivileges=. systemd is not PID 1 here: the install happens in a
# private mount namespace over tmpfs, the privileges are set with setpriv.
. "$(dirname "$0")/../functions.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=$SRC/deploy/vdiskd.service
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing: run deploy/install-deps.sh --test"
command -v unshare >/dev/null || fail "unshare missing"
[ -x "$VDISKD" ] || fail "no daemon binary at $VDISKD"

# verify_installed UNIT-FILE — the README's install steps, then verify.
# Prints what systemd-analyze said; its exit status is verify's.
verify_installed() {
    unshare -m --propagation private bash -eu -c '
        mount -t tmpfs tmpfs /usr/local/bin
        mount -t tmpfs tmpfs /etc/systemd/system
        install -m 0755 "$1" /usr/local/bin/vdiskd
        install -m 0644 "$2" /etc/systemd/system/vdiskd.service
        SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no /etc/systemd/system/vdiskd.service
    ' verify "$VDISKD" "$1" 2>&1
}

out=$(verify_installed "$UNIT") || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify has complaints: $out"
echo "systemd_unit: systemd-analyze verify: clean"

# The check above must be able to see a broken unit: a bad value only warns
# and the exit status stays 0, which is why any output counts as failure.
sed 's/^Type=notify$/Type=notifyy/' "$UNIT" >"$T/broken.service"
cmp -s "$UNIT" "$T/broken.service" && fail "the unit has no Type=notify line"
out=$(verify_installed "$T/broken.service") || true
grep -q "notifyy" <<<"$out" || fail "verify did not notice Type=notifyy: '$out'"

# Options that put the service in a mount namespace (systemd.exec(5),
# PrivateMounts=: "implied by" list, plus the root-changing ones).
private_ns='PrivateMounts|PrivateTmp|PrivateDevices|ProtectSystem|ProtectHome'
private_ns+='|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs'
private_ns+='|ProtectControlGroups|ProtectClock|ProtectHostname|ProtectProc|ProcSubset'
private_ns+='|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|ExecPaths|NoExecPaths'
private_ns+='|BindPaths|BindReadOnlyPaths|TemporaryFileSystem|RootDirectory|RootImage'
private_ns+='|MountAPIVFS|MountFlags|DynamicUser|PrivateUsers'
# ... and the API must stay on the host's 127.0.0.1.
private_ns+='|PrivateNetwork|NetworkNamespacePath'
if grep -nE "^[[:space:]]*($private_ns)=" "$UNIT" >"$T/ns"; then
    fail "these give vdiskd a private namespace, hiding its FUSE mount or API from the host: $(cat "$T/ns")"
fi
grep -qx 'Type=notify' "$UNIT" || fail "the unit is not Type=notify"
grep -q '^ExecStart=/usr/local/bin/vdiskd' "$UNIT" || fail "ExecStart is not /usr/local/bin/vdiskd"
echo "systemd_unit: no private namespaces"

# The unit's capability bounding set and no_new_privs, applied by setpriv:
# the daemon mounts, serves a volume and stops cleanly with only those.
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
[ -n "$caps" ] || fail "the unit has no CapabilityBoundingSet="
bset=-all
for c in $caps; do
    c=${c#CAP_}
    bset+=",+${c,,}"
done
nnp=
if grep -qx 'NoNewPrivileges=yes' "$UNIT"; then
    nnp=--no-new-privs
fi
printf '#!/bin/sh\nexec setpriv %s --bounding-set %s -- "%s" "$@"\n' \
    "$nnp" "$bset" "$VDISKD" >"$T/vdiskd-unit"
chmod +x "$T/vdiskd-unit"
VDISKD=$T/vdiskd-unit
start_daemon
grep -q '^CapBnd:[[:space:]]*000001ffffffffff$' "/proc/$VD_PID/status" &&
    fail "the capability bounding set was not applied"
if [ -n "$nnp" ]; then
    grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$VD_PID/status" || fail "no_new_privs not set"
fi
api POST /volumes '{"name":"u1","size":4194304,"format":"raw"}'
expect_status 201
qio "$VD_MNT/u1" "write -P 0x6b 0 1M" "flush" "read -P 0x6b 0 1M" >"$T/qio.out" 2>&1 ||
    fail "I/O under the unit's privileges: $(cat "$T/qio.out")"
stop_daemon
echo "systemd_unit: vdiskd works with only $caps and no_new_privs; ok"
