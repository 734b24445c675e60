#!/bin/bash
# api_auth.sh — bearer tokens: 401 with WWW-Authenticate for a missing or
# wrong token (problem+json), 403 for a read token on a mutation, /health
# open, /metrics and /openapi.json only with --public-metrics, a token
# file readable by others refused at start, SIGHUP rereads the file (and
# still flushes), every mutation audited; and without a token file a
# non-loopback --listen is refused.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

ADMIN=adm-0123456789abcdef0123456789abcdef
READER=rd-0123456789abcdef0123456789abcdef
NEWTOK=new-0123456789abcdef0123456789abcdef
printf '# name role token\nops admin %s\n\nviewer read %s\n' "$ADMIN" "$READER" >"$T/tokens"

# Readable by group or others: refused, saying so.
chmod 0644 "$T/tokens"
mkdir -p "$T/d0" "$T/m0"
rc=0
timeout 20 "$VDISKD" --data-dir "$T/d0" --mount "$T/m0" --listen 127.0.0.1:0 \
    --api-token-file "$T/tokens" >"$T/refused.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "started with a token file of mode 0644"
grep -q "readable or writable by group or others" "$T/refused.log" ||
    fail "no reason given: $(cat "$T/refused.log")"
chmod 0600 "$T/tokens"

start_daemon --format raw --api-token-file "$T/tokens"
auth() { echo "Authorization: Bearer $1"; }

expect_401() {
    expect_problem 401
    case "$(header WWW-Authenticate)" in
    Bearer*) ;;
    *) fail "401 without WWW-Authenticate: Bearer: '$(header WWW-Authenticate)'" ;;
    esac
}

# /health is open, everything else needs a token.
http GET /health
expect_status 200
for p in /volumes /volumes/x /metrics /openapi.json /nope /jobs /jobs/1; do
    http GET "$p"
    expect_401
done
http POST /volumes -H 'Content-Type: application/json' --data-binary '{"name":"a","size":512}'
expect_401
http DELETE '/volumes/a?force=true'
expect_401
# A wrong token, a token of another scheme, a prefix of a good token.
http GET /volumes -H "$(auth wrong-0123456789abcdef0123456789)"
expect_401
header WWW-Authenticate | grep -q invalid_token || fail "no invalid_token in $(header WWW-Authenticate)"
http GET /volumes -H "Authorization: Basic $ADMIN"
expect_401
http GET /volumes -H "$(auth "${ADMIN%?}")"
expect_401
http GET /volumes -H "$(auth "${ADMIN}x")"
expect_401

# Admin: everything.
http POST /volumes -H "$(auth $ADMIN)" -H 'Content-Type: application/json' \
    --data-binary '{"name":"a1","size":"1M"}'
expect_status 201
uuid=$(json_get uuid)
http GET /metrics -H "$(auth $ADMIN)"
expect_status 200
# Read: GET only.
http GET /volumes/a1 -H "$(auth $READER)"
expect_status 200
http GET /openapi.json -H "$(auth $READER)"
expect_status 200
http PATCH /volumes/a1 -H "$(auth $READER)" -H 'Content-Type: application/json' \
    --data-binary '{"size":"2M"}'
expect_problem 403 "read"
http DELETE /volumes/a1 -H "$(auth $READER)"
expect_problem 403
http POST /volumes -H "$(auth $READER)" -H 'Content-Type: application/json' \
    --data-binary '{"name":"a2","size":"1M"}'
expect_problem 403
http POST /volumes/a1/snapshots -H "$(auth $READER)"
expect_problem 403
http GET /volumes/a1 -H "$(auth $READER)"
[ "$(json_get size)" = 1048576 ] || fail "a read token changed the volume"

# Audit lines: who, method, path, status, uuid.
grep -q "audit: who=token:ops peer=127.0.0.1 POST /volumes -> 201 volume=$uuid" "$VD_LOG" ||
    fail "no audit line for the create"
grep -q "audit: who=token:viewer peer=127.0.0.1 DELETE /volumes/a1 -> 403 volume=$uuid\|audit: who=token:viewer peer=127.0.0.1 DELETE /volumes/a1 -> 403" "$VD_LOG" ||
    fail "no audit line for the refused delete"
grep -q "audit: who=- peer=127.0.0.1 POST /volumes -> 401" "$VD_LOG" ||
    fail "no audit line for the unauthenticated create"
grep "$ADMIN\|$READER" "$VD_LOG" && fail "a token is in the log"

# SIGHUP: the file is reread (and volumes are still flushed).
printf 'ops admin %s\nnewbie admin %s\n' "$ADMIN" "$NEWTOK" >"$T/tokens"
kill -HUP "$VD_PID"
for ((i = 0; i < 50; i++)); do
    grep -q "reloaded 2 token" "$VD_LOG" && break
    sleep 0.1
done
grep -q "SIGHUP: flushing every volume" "$VD_LOG" || fail "SIGHUP no longer flushes"
http GET /volumes -H "$(auth $NEWTOK)"
expect_status 200
http GET /volumes -H "$(auth $READER)"
expect_401
# A reload that fails keeps the tokens in use.
chmod 0640 "$T/tokens"
kill -HUP "$VD_PID"
for ((i = 0; i < 50; i++)); do
    grep -q "tokens not reloaded" "$VD_LOG" && break
    sleep 0.1
done
grep -q "tokens not reloaded" "$VD_LOG" || fail "no error for a bad reload"
http DELETE /volumes/a1 -H "$(auth $NEWTOK)"
expect_status 204
grep -q "audit: who=token:newbie peer=127.0.0.1 DELETE /volumes/a1 -> 204 volume=$uuid" "$VD_LOG" ||
    fail "no audit line with the uuid for the delete"
chmod 0600 "$T/tokens"
stop_daemon

# Without a token file, a non-loopback address is refused, saying why.
rc=0
timeout 20 "$VDISKD" --data-dir "$T/d0" --mount "$T/m0" --listen 0.0.0.0:0 \
    >"$T/open.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "listened on 0.0.0.0 without tokens"
grep -q "not a loopback address and no --api-token-file" "$T/open.log" ||
    fail "no reason given: $(cat "$T/open.log")"

# With one it starts; --public-metrics opens /metrics and /openapi.json.
PORT2=$(free_port)
"$VDISKD" --data-dir "$T/d0" --mount "$T/m0" --listen "0.0.0.0:$PORT2" \
    --api-token-file "$T/tokens" --public-metrics >"$T/d0.log" 2>&1 &
PID2=$!
on_exit "kill -9 $PID2; umount -l '$T/m0'"
for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$PORT2/health" >/dev/null 2>&1 && break
    sleep 0.1
done
VD_URL=http://127.0.0.1:$PORT2
http GET /metrics
expect_status 200
http GET /openapi.json
expect_status 200
http GET /volumes
expect_401
kill -TERM $PID2
wait $PID2 || fail "second daemon exited with $?"
echo "api_auth: ok"
