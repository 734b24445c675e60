#!/bin/bash
# api_unix_socket.sh — the API on a unix socket (with a TCP listener
# beside it): root is admin without a token, another user is identified
# by its uid and needs a token; the socket gets --api-socket-mode and
# --api-socket-group; the README's requests work with curl --unix-socket;
# a socket left by a killed daemon is replaced, a live one is not taken.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

ADMIN=adm-0123456789abcdef0123456789abcdef
READER=rd-0123456789abcdef0123456789abcdef
printf 'ops admin %s\nviewer read %s\n' "$ADMIN" "$READER" >"$T/tokens"
chmod 0600 "$T/tokens"
mkdir -p "$T/run"
chmod 0711 "$T"
chmod 0755 "$T/run"
SOCK=$T/run/api.sock
NOBODY=$(id -u nobody)
NOGROUP=$(getent group nogroup | cut -d: -f3)

start_daemon --format raw --api-token-file "$T/tokens" --listen "unix:$SOCK" \
    --api-socket-mode 0666 --api-socket-group nogroup
[ -S "$SOCK" ] || fail "no socket at $SOCK"
[ "$(stat -c %a "$SOCK")" = 666 ] || fail "socket mode $(stat -c %a "$SOCK"), want 666"
[ "$(stat -c %g "$SOCK")" = "$NOGROUP" ] || fail "socket group $(stat -c %g "$SOCK"), want $NOGROUP"

# us METHOD PATH [curl args] — over the socket as root.
us() {
    local method=$1 path=$2
    shift 2
    API_STATUS=$(curl -sS --unix-socket "$SOCK" -X "$method" -o "$T/body" -D "$T/headers" \
        -w '%{http_code}' "$@" "http://localhost$path") || fail "curl $method $path failed"
    API_BODY=$(cat "$T/body")
}
# nb METHOD PATH [curl args] — the same as user nobody.
nb() {
    local method=$1 path=$2
    shift 2
    API_STATUS=$(setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups \
        curl -sS --unix-socket "$SOCK" -X "$method" -o /dev/stdout \
        -w '\n%{http_code}' "$@" "http://localhost$path" | tail -n 1)
}

# Root: the README's requests, no token.
us POST /volumes -H 'Content-Type: application/json' -d '{"name": "vm1", "size": "1G"}'
expect_status 201
uuid=$(json_get uuid)
us GET /volumes
expect_status 200
us GET /volumes/vm1
expect_status 200
us PATCH /volumes/vm1 -H 'Content-Type: application/json' -d '{"size": "2G"}'
expect_status 200
us POST /volumes/vm1/snapshots -H 'Content-Type: application/json' -d '{"name": "s1"}'
case "$API_STATUS" in 201 | 422) ;; *) fail "snapshot: $API_STATUS $API_BODY" ;; esac
us GET /metrics
expect_status 200
us GET /health
expect_status 200
grep -q "audit: who=uid:0 peer=uid:0 POST /volumes -> 201 volume=$uuid" "$VD_LOG" ||
    fail "no audit line naming uid 0"

# Another user: identified by uid, needs a token.
nb GET /health
[ "$API_STATUS" = 200 ] || fail "nobody: /health $API_STATUS"
nb GET /volumes
[ "$API_STATUS" = 401 ] || fail "nobody without a token: $API_STATUS"
nb DELETE '/volumes/vm1?force=true'
[ "$API_STATUS" = 401 ] || fail "nobody deleted without a token: $API_STATUS"
nb GET /volumes -H "Authorization: Bearer $READER"
[ "$API_STATUS" = 200 ] || fail "nobody with a read token: $API_STATUS"
nb DELETE '/volumes/vm1?force=true' -H "Authorization: Bearer $READER"
[ "$API_STATUS" = 403 ] || fail "nobody with a read token deleted: $API_STATUS"
nb POST /volumes -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"name": "vm2", "size": "1M"}'
[ "$API_STATUS" = 201 ] || fail "nobody with the admin token: $API_STATUS"
grep -q "audit: who=- peer=uid:$NOBODY DELETE /volumes/vm1?force=true -> 401\|audit: who=- peer=uid:$NOBODY DELETE /volumes/vm1 -> 401" "$VD_LOG" ||
    grep -q "audit: who=- peer=uid:$NOBODY DELETE" "$VD_LOG" || fail "no audit line naming uid $NOBODY"
grep -q "audit: who=token:ops peer=uid:$NOBODY POST /volumes -> 201" "$VD_LOG" ||
    fail "no audit line for the token on the socket"
us GET /volumes/vm1
expect_status 200

# TCP beside it still wants a token.
http GET /volumes
expect_status 401

# A live socket is not taken over.
mkdir -p "$T/d2" "$T/m2"
rc=0
timeout 20 "$VDISKD" --data-dir "$T/d2" --mount "$T/m2" --listen "unix:$SOCK" \
    >"$T/second.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a second daemon took the live socket"
grep -q "in use" "$T/second.log" || fail "no reason given: $(cat "$T/second.log")"
us GET /health
expect_status 200

# Stopping removes the socket; a killed daemon's socket is replaced.
stop_daemon
[ -e "$SOCK" ] && fail "socket left after a clean stop"
start_daemon --format raw --listen "unix:$SOCK"
[ "$(stat -c %a "$SOCK")" = 660 ] || fail "default socket mode $(stat -c %a "$SOCK"), want 660"
kill -9 "$VD_PID"
wait "$VD_PID" 2>/dev/null
umount -l "$VD_MNT" 2>/dev/null
[ -S "$SOCK" ] || fail "no stale socket to test with"
start_daemon --format raw --listen "unix:$SOCK"
us GET /volumes/vm2
expect_status 200
stop_daemon
echo "api_unix_socket: ok"
