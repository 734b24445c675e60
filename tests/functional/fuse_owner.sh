#!/bin/bash
# fuse_owner.sh — each volume's file has its own owner and mode: chown and
# chmod on the mount work as on any file system (root, or the owner for
# chmod), are kept in the catalog across a restart and shown by the API;
# create and PATCH set them; --owner and --file-mode are the defaults of
# new volumes; the mode decides who else may open the file.
. "$(dirname "$0")/../functions.sh" || exit 1

# Users that exist on every Debian and RHEL host: nobody (65534) and
# daemon (1), with their groups.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as_daemon() { setpriv --reuid=1 --regid=1 --clear-groups -- "$@"; }
NOGROUP=$(getent group 65534 | cut -d: -f1)

chmod 755 "$T" # let the other users reach the mount
start_daemon --file-mode 0640
api POST /volumes '{"name":"v1","size":"64M","format":"raw"}'
expect_status 201
[ "$(json_get owner)" = "root:root" ] || fail "owner: $API_BODY"
[ "$(json_get mode) $(json_get uid) $(json_get gid)" = "0640 0 0" ] ||
    fail "defaults: $API_BODY"
api POST /volumes '{"name":"v2","size":"64M","format":"qcow2","owner":"nobody","mode":"0600"}'
expect_status 201
[ "$(json_get uid) $(json_get gid) $(json_get mode)" = "65534 65534 0600" ] ||
    fail "create with owner: $API_BODY"
F=$VD_MNT/v1
[ "$(stat -c '%u %g %a' "$F")" = "0 0 640" ] || fail "v1: $(stat -c '%u %g %a' "$F")"
[ "$(stat -c '%u %g %a' "$VD_MNT/v2")" = "65534 65534 600" ] ||
    fail "v2: $(stat -c '%u %g %a' "$VD_MNT/v2")"

# --- chown and chmod by root
chown 1:1 "$F" || fail "chown by root"
chmod 0660 "$F" || fail "chmod by root"
[ "$(stat -c '%u %g %a' "$F")" = "1 1 660" ] || fail "after chown: $(stat -c '%u %g %a' "$F")"
api GET /volumes/v1
[ "$(json_get uid) $(json_get gid) $(json_get mode)" = "1 1 0660" ] ||
    fail "API after chown: $API_BODY"
[ "$(json_get owner)" = "$(getent passwd 1 | cut -d: -f1):$(getent group 1 | cut -d: -f1)" ] ||
    fail "owner by name: $API_BODY"

# --- the owner may chmod, nobody else may; only root may chown
as_nobody chmod 0666 "$F" 2>/dev/null && fail "a non-owner changed the mode"
as_daemon chown 65534 "$F" 2>/dev/null && fail "the owner gave the file away"
as_daemon chmod 0600 "$F" || fail "the owner could not chmod"
[ "$(stat -c '%u %g %a' "$F")" = "1 1 600" ] || fail "after owner's chmod: $(stat -c '%u %g %a' "$F")"
# 0600 1:1: the owner reads and writes, another user cannot open it.
as_daemon qemu-io -f raw -c 'write -q -P 0x61 0 64k' "$F" ||
    fail "the owner could not write"
as_nobody head -c 1 "$F" >/dev/null 2>"$T/err" && fail "user 65534 opened a 0600 file of uid 1"
grep -q "Permission denied" "$T/err" || fail "user 65534: $(cat "$T/err")"
# PATCH: group nogroup, mode 0640: a member of the group may read, not write.
api PATCH /volumes/v1 "{\"owner\":\":$NOGROUP\",\"mode\":\"0640\"}"
expect_status 200
[ "$(json_get uid) $(json_get gid) $(json_get mode)" = "1 65534 0640" ] ||
    fail "PATCH owner: $API_BODY"
[ "$(stat -c '%u %g %a' "$F")" = "1 65534 640" ] ||
    fail "mount after PATCH: $(stat -c '%u %g %a' "$F")"
as_nobody qemu-io -r -f raw -c 'read -q -P 0x61 0 64k' "$F" ||
    fail "group member could not read a 0640 file"
as_nobody qemu-io -f raw -c 'write -q 0 4k' "$F" 2>/dev/null &&
    fail "group member wrote a 0640 file"
api PATCH /volumes/v1 '{"owner":"no-such-user-xyz"}'
expect_status 400
api PATCH /volumes/v1 '{"mode":"0999"}'
expect_status 400
api PATCH /volumes/v1 '{"uid":65534,"gid":65534,"mode":"0660"}'
expect_status 200
[ "$(stat -c '%u %g %a' "$F")" = "65534 65534 660" ] ||
    fail "mount after PATCH uid/gid: $(stat -c '%u %g %a' "$F")"
chmod 4755 "$F" || fail "chmod 4755"
[ "$(stat -c '%a' "$F")" = "755" ] || fail "set-id bit kept: $(stat -c '%a' "$F")"
chmod 0660 "$F"

# --- a snapshot view is owned like its volume, without write bits
api POST /volumes/v2/snapshots '{"name":"s1"}'
expect_status 201
[ "$(stat -c '%u %g %a' "$VD_MNT/.snapshots/v2/s1")" = "65534 65534 400" ] ||
    fail "view: $(stat -c '%u %g %a' "$VD_MNT/.snapshots/v2/s1")"
stop_daemon

# --- kept across a restart; the new flags are defaults for new volumes only
start_daemon --owner daemon:daemon --file-mode 0600
[ "$(stat -c '%u %g %a' "$F")" = "65534 65534 660" ] ||
    fail "v1 after restart: $(stat -c '%u %g %a' "$F")"
[ "$(stat -c '%u %g %a' "$VD_MNT/v2")" = "65534 65534 600" ] ||
    fail "v2 after restart: $(stat -c '%u %g %a' "$VD_MNT/v2")"
api GET /volumes/v1
[ "$(json_get uid) $(json_get gid) $(json_get mode)" = "65534 65534 0660" ] ||
    fail "API after restart: $API_BODY"
api POST /volumes '{"name":"v3","size":"64M","format":"raw"}'
expect_status 201
[ "$(stat -c '%u %g %a' "$VD_MNT/v3")" = "1 1 600" ] ||
    fail "v3 with the new defaults: $(stat -c '%u %g %a' "$VD_MNT/v3")"
stop_daemon

# --- a volume from before owners were recorded (NULL in the catalog)
# follows the flags of the day until it is first changed
python3 - "$VD_DATA/catalog.db" <<'PY' || fail "clearing v3's owner"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE volumes SET uid = NULL, gid = NULL, mode = NULL WHERE name = 'v3'")
db.commit()
PY
start_daemon --owner nobody:$NOGROUP --file-mode 0604
[ "$(stat -c '%u %g %a' "$VD_MNT/v3")" = "65534 65534 604" ] ||
    fail "v3 without a recorded owner: $(stat -c '%u %g %a' "$VD_MNT/v3")"
chmod 0640 "$VD_MNT/v3" || fail "chmod v3"
stop_daemon
start_daemon
[ "$(stat -c '%u %g %a' "$VD_MNT/v3")" = "65534 65534 640" ] ||
    fail "v3 after its first change: $(stat -c '%u %g %a' "$VD_MNT/v3")"
stop_daemon
echo "fuse_owner: ok"
