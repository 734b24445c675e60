#!/bin/bash
# fuse_snapshots_perms.sh — a volume's snapshots are as private as its file.
# /.snapshots/<volume> lists the volume's snapshot names and opens their
# data; it must follow the owner and mode of the volume's file: a user
# who may not read the volume may neither list nor read its snapshots,
# while the owner and, once the file is 0644, everybody may (each checked
# after a restart, on a mount whose attributes nobody has cached yet).
. "$(dirname "$0")/../functions.sh" || exit 1

NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
chmod 755 "$T" # let the second user reach the mount

start_daemon # root:root, mode 0660
api POST /volumes '{"name":"v1","size":16777216,"format":"qcow2"}'
expect_status 201
qio "$VD_MNT/v1" 'write -P 0x6e 0 64k' flush >/dev/null || fail "write"
api POST /volumes/v1/snapshots '{"name":"secret-s1"}'
expect_status 201
D=$VD_MNT/.snapshots/v1

[ "$(ls "$D")" = secret-s1 ] || fail "root cannot list: $(ls -la "$D" 2>&1)"
[ "$(stat -c '%a %u %g' "$D")" = "550 0 0" ] ||
    fail "directory of a 0660 root:root volume: $(stat -c '%a %u %g' "$D")"
"${NOBODY[@]}" ls "$VD_MNT/.snapshots" >"$T/ls.out" 2>&1 ||
    fail "nobody cannot list .snapshots: $(cat "$T/ls.out")"
"${NOBODY[@]}" ls "$D" >"$T/ls.out" 2>&1 &&
    fail "nobody lists the snapshots of a 0660 root volume: $(cat "$T/ls.out")"
grep -q "Permission denied" "$T/ls.out" || fail "ls said: $(cat "$T/ls.out")"
"${NOBODY[@]}" head -c 16 "$D/secret-s1" >"$T/cat.out" 2>&1 &&
    fail "nobody reads a snapshot of a 0660 root volume"
"${NOBODY[@]}" head -c 16 "$VD_MNT/v1" >/dev/null 2>&1 &&
    fail "precondition: nobody reads the volume itself"
chown 65534:65534 "$VD_MNT/v1" || fail "chown v1"
stop_daemon

# The volume's owner may list and read.
start_daemon
[ "$(stat -c '%a %u %g' "$D")" = "550 65534 65534" ] ||
    fail "directory of a 0660 nobody volume: $(stat -c '%a %u %g' "$D")"
[ "$("${NOBODY[@]}" ls "$D" 2>&1)" = secret-s1 ] ||
    fail "the owner cannot list: $("${NOBODY[@]}" ls "$D" 2>&1)"
head -c 65536 /dev/zero | tr '\0' '\156' >"$T/expect"
chmod 644 "$T/expect"
"${NOBODY[@]}" cmp -n 65536 "$D/secret-s1" "$T/expect" ||
    fail "the owner cannot read the snapshot"
chmod 0644 "$VD_MNT/v1" || fail "chmod v1"
stop_daemon

# A world-readable volume has world-listable snapshots.
start_daemon
[ "$(stat -c '%a' "$D")" = 555 ] || fail "directory of a 0644 volume: $(stat -c '%a' "$D")"
[ "$("${NOBODY[@]}" ls "$D" 2>&1)" = secret-s1 ] ||
    fail "others cannot list a 0644 volume's snapshots"
stop_daemon
echo "fuse_snapshots_perms: ok"
