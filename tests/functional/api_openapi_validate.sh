#!/bin/bash
# api_openapi_validate.sh — the API's own description holds under
# maintained validators: GET /openapi.json passes swagger-cli validate and
# redocly lint (tests/openapi/redocly.yaml), and the README's requests,
# error cases and HEAD included, replayed through Prism's validating proxy
# in front of the real daemon, get answers the document describes, with
# zero violations. An NBD volume exists while volumes are listed (its
# backend carries the connection's live state).
#
# The tools are pinned in tests/openapi/package-lock.json and installed by
# deploy/install-deps.sh --test (npm ci); this test fails without them.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

SRC=${VD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=$SRC/tests/openapi/node_modules/.bin
for tool in swagger-cli redocly prism; do
    [ -x "$BIN/$tool" ] ||
        fail "$BIN/$tool missing: run deploy/install-deps.sh --test (npm ci in tests/openapi)"
done

# Admin and read tokens: Prism checks the document's bearer scheme itself.
ADMIN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n")
READER=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n")
printf 'ops admin %s\ngrafana read %s\n' "$ADMIN" "$READER" >"$T/tokens"
chmod 600 "$T/tokens"

# NBD servers on loopback: nbdkit (multi-conn) and qemu-nbd (one
# connection), which goes away during the test.
NBD_PORT=$(free_port)
nbdkit --exit-with-parent -f -i 127.0.0.1 -p "$NBD_PORT" memory 64M &
on_exit "kill -9 $!"
QNBD_PORT=$(free_port)
truncate -s 16M "$T/q.raw"
qemu-nbd -b 127.0.0.1 -p "$QNBD_PORT" -f raw -x exp -t "$T/q.raw" &
QNBD_PID=$!
on_exit "kill -9 $QNBD_PID"
mkdir "$T/import"
qemu-img create -q -f qcow2 "$T/import/disk.qcow2" 64M || fail "qemu-img create"
for uri in "nbd://127.0.0.1:$NBD_PORT/" "nbd://127.0.0.1:$QNBD_PORT/exp"; do
    for ((i = 0; i < 100; i++)); do
        qemu-io -f raw -r "$uri" -c "read 0 512" >/dev/null 2>&1 && break
        sleep 0.05
    done
done

# I/O on an NBD volume whose server is gone fails after 2 s, not 30.
export VD_NBD_TIMEOUT_MS=2000
start_daemon --api-token-file "$T/tokens" --import-dir "$T/import"

# ---- the document itself --------------------------------------------------
curl -sS -f -H "Authorization: Bearer $READER" -o "$T/openapi.json" "$VD_URL/openapi.json" ||
    fail "GET /openapi.json"

# ---- the validating proxies ----------------------------------------------
# STRICT validates requests and answers: the README's requests as written.
# LAX validates only answers: requests a client gets wrong on purpose
# (malformed JSON, a wrong Content-Type) reach the daemon, and its error
# answers are checked against the document.
#
# start_prism NAME [prism flags...] — sets PRISM_URL (not in a subshell,
# so that the cleanup it registers is the test's).
start_prism() {
    local port log=$T/prism-$1.log
    shift
    port=$(free_port)
    "$BIN/prism" proxy --errors -h 127.0.0.1 -p "$port" "$@" "$T/openapi.json" "$VD_URL" \
        >"$log" 2>&1 &
    on_exit "kill -9 $!"
    PRISM_URL=http://127.0.0.1:$port
}
start_prism strict
STRICT=$PRISM_URL
start_prism lax --validate-request=false
LAX=$PRISM_URL
# While they start: the document under swagger-cli and redocly.
"$BIN/swagger-cli" validate "$T/openapi.json" >"$T/swagger.out" 2>&1 ||
    fail "swagger-cli validate: $(cat "$T/swagger.out")"
"$BIN/redocly" lint --config "$SRC/tests/openapi/redocly.yaml" "$T/openapi.json" \
    >"$T/redocly.out" 2>&1 || fail "redocly lint: $(cat "$T/redocly.out")"
for url in "$STRICT" "$LAX"; do
    for ((i = 0; i < 600; i++)); do
        curl -fsS -o /dev/null "$url/health" 2>/dev/null && break
        sleep 0.1
    done
    [ "$i" -lt 600 ] || fail "prism at $url did not start: $(cat "$T"/prism-*.log)"
done

N=0
# via PROXY STATUS [--read|--bad-token] CURL-ARGS... PATH — one request
# through the proxy: the status must be STATUS, the answer the daemon's (not
# one Prism made up), and Prism must have found nothing to say about it.
via() {
    local proxy=$1 want=$2
    shift 2
    local auth=(-H "Authorization: Bearer $ADMIN")
    case "$1" in
    --read) auth=(-H "Authorization: Bearer $READER") && shift ;;
    --bad-token) auth=(-H "Authorization: Bearer wrong") && shift ;;
    esac
    local args=("$@")
    local path=${args[-1]}
    unset 'args[-1]'
    local got
    got=$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "${auth[@]}" \
        "${args[@]}" "$proxy$path") || fail "curl ${args[*]} $path failed"
    N=$((N + 1))
    local what="${args[*]} $path (via ${proxy##*:})"
    if grep -qi '^sl-violations:' "$T/headers"; then
        fail "$what: violations: $(grep -i '^sl-violations:' "$T/headers")"
    fi
    if grep -q 'stoplight.io/prism/errors' "$T/body"; then
        fail "$what: answered by Prism, not the daemon: $(cat "$T/body")"
    fi
    [ "$got" = "$want" ] ||
        fail "$what: HTTP $got, want $want: $(cat "$T/body"; tail -n 5 "$T"/prism-*.log)"
}
J=(-H 'Content-Type: application/json')

# check_head [--bad-token] STATUS PATH TEMPLATE — HEAD on the daemon.
# Prism cannot proxy it (it parses the empty body of a JSON answer as JSON
# and fails), so: the GET of the same path, through the validating proxy,
# gets STATUS; HEAD straight to the daemon gets the same status and
# Content-Type; and the document declares that status for HEAD on TEMPLATE.
check_head() {
    local tok=(-H "Authorization: Bearer $ADMIN") bad=()
    if [ "$1" = --bad-token ]; then
        tok=(-H "Authorization: Bearer wrong") bad=(--bad-token)
        shift
    fi
    local want=$1 path=$2 template=$3 gct
    via "$LAX" "$want" "${bad[@]}" "$path"
    gct=$(header_of "$T/headers" Content-Type)
    API_STATUS=$(curl -sS -I -o /dev/null -D "$T/headers" -w '%{http_code}' "${tok[@]}" \
        "$VD_URL$path") || fail "curl -I $path failed"
    N=$((N + 1))
    [ "$API_STATUS" = "$want" ] || fail "HEAD $path: $API_STATUS, GET said $want"
    [ "$(header Content-Type)" = "$gct" ] ||
        fail "HEAD $path: Content-Type '$(header Content-Type)', GET's '$gct'"
    python3 - "$T/openapi.json" "$template" "$want" <<'PY' ||
import json, sys
doc = json.load(open(sys.argv[1]))
op = doc["paths"][sys.argv[2]].get("head")
if op is None or sys.argv[3] not in op["responses"]:
    sys.exit("HEAD %s %s is not declared" % (sys.argv[2], sys.argv[3]))
PY
        fail "HEAD $path: the document does not declare $want"
}
header_of() {
    tr -d '\r' <"$1" | awk -v h="$2" '
        tolower($0) ~ "^" tolower(h) ":" { sub(/^[^:]*:[ \t]*/, ""); print; exit }'
}

# Service endpoints, and every GET's HEAD.
via "$STRICT" 200 /health
check_head 200 /health /health
via "$STRICT" 200 /metrics
check_head 200 /metrics /metrics
via "$STRICT" 200 /openapi.json
check_head 200 /openapi.json /openapi.json

# Create, in the README's forms.
via "$STRICT" 201 -X POST "${J[@]}" -d '{"name":"v1","size":10737418240,"format":"raw"}' /volumes
via "$STRICT" 201 -X POST "${J[@]}" -d '{"name":"q1","size":"20G","cluster_size":4096}' /volumes
via "$STRICT" 201 -X POST "${J[@]}" \
    -d "{\"name\":\"imp\",\"import\":{\"path\":\"$T/import/disk.qcow2\"}}" /volumes
via "$STRICT" 201 -X POST "${J[@]}" -d '{"name":"tmpl","size":"64M"}' /volumes
via "$STRICT" 201 -X POST "${J[@]}" -d '{"name":"vm1","base":"tmpl"}' /volumes
via "$STRICT" 201 -X POST "${J[@]}" \
    -d "{\"name\":\"r1\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd://127.0.0.1:$NBD_PORT/\"}}" /volumes
grep -q '"server":{' "$T/body" || fail "the NBD volume shows no live state: $(cat "$T/body")"

# List, show, grow; the NBD volume is in the list.
via "$STRICT" 200 /volumes
grep -q '"type":"nbd"' "$T/body" || fail "no NBD volume listed: $(cat "$T/body")"
check_head 200 /volumes /volumes
via "$STRICT" 200 /volumes/v1
check_head 200 /volumes/v1 "/volumes/{name}"
via "$STRICT" 200 /volumes/r1
via "$STRICT" 200 --read /volumes/r1
# An NBD volume whose server went away: the backend shows the outage
# (state, last_error), in the list too.
via "$STRICT" 201 -X POST "${J[@]}" \
    -d "{\"name\":\"r2\",\"backend\":{\"type\":\"nbd\",\"uri\":\"nbd://127.0.0.1:$QNBD_PORT/exp\"}}" \
    /volumes
kill -9 "$QNBD_PID"
wait "$QNBD_PID" 2>/dev/null
dd if="$VD_MNT/r2" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null &&
    fail "read from an NBD volume without a server succeeded"
for ((i = 0; i < 100; i++)); do
    via "$STRICT" 200 /volumes/r2
    grep -q '"last_error":"' "$T/body" && break
    sleep 0.1
done
grep -q '"state":"disconnected"' "$T/body" || fail "outage not shown: $(cat "$T/body")"
via "$STRICT" 200 /volumes
via "$STRICT" 204 -X DELETE /volumes/r2
via "$STRICT" 200 -X PATCH "${J[@]}" -d '{"size":"20G"}' /volumes/v1
via "$STRICT" 200 -X PATCH -H 'Content-Type: application/merge-patch+json' \
    -d '{"size":"21G"}' /volumes/v1

# Snapshots, changed blocks, revert, full clone and its job.
via "$STRICT" 201 -X POST "${J[@]}" -d '{"name":"s1"}' /volumes/q1/snapshots
via "$STRICT" 201 -X POST "${J[@]}" -d '{"name":"s2"}' /volumes/q1/snapshots
via "$STRICT" 200 /volumes/q1/snapshots
check_head 200 /volumes/q1/snapshots "/volumes/{name}/snapshots"
via "$STRICT" 200 /volumes/q1/snapshots/s1
check_head 200 /volumes/q1/snapshots/s1 "/volumes/{name}/snapshots/{snapshot}"
via "$STRICT" 200 '/volumes/q1/snapshots/s2/changes?since=s1'
check_head 200 /volumes/q1/snapshots/s2/changes "/volumes/{name}/snapshots/{snapshot}/changes"
via "$STRICT" 200 -X POST /volumes/q1/snapshots/s1/revert
via "$STRICT" 200 -X POST '/volumes/q1/snapshots/s1/revert?force=true'
via "$STRICT" 200 -X POST "${J[@]}" -d '{"force":true}' /volumes/q1/snapshots/s1/revert
via "$STRICT" 202 -X POST "${J[@]}" -d '{"name":"c1","source":{"volume":"q1","snapshot":"s1"}}' \
    /volumes
JOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/body")
for ((i = 0; i < 100; i++)); do
    via "$STRICT" 200 "/jobs/$JOB"
    grep -q '"state":"running"' "$T/body" || break
    sleep 0.1
done
grep -q '"state":"succeeded"' "$T/body" || fail "clone job: $(cat "$T/body")"
check_head 200 "/jobs/$JOB" "/jobs/{id}"
via "$STRICT" 204 -X DELETE /volumes/q1/snapshots/s2

# Errors the README lists, each an answer the document declares.
via "$STRICT" 400 -X POST "${J[@]}" -d '{"name":"x","size":"1G","format":"vmdk"}' /volumes
via "$STRICT" 400 -X POST "${J[@]}" -d '{"name":"x","size":"513"}' /volumes
via "$LAX" 400 -X POST "${J[@]}" -d '{"name":"x","size":' /volumes
via "$LAX" 400 -X POST "${J[@]}" -d '{"name":"x","size":"1G","colour":"red"}' /volumes
via "$LAX" 400 /volumes/Not_A_Name
check_head 400 /volumes/Not_A_Name "/volumes/{name}"
via "$STRICT" 401 --bad-token /volumes
check_head --bad-token 401 /volumes /volumes
via "$STRICT" 403 --read -X DELETE /volumes/v1
via "$STRICT" 404 /volumes/nope
check_head 404 /volumes/nope "/volumes/{name}"
via "$STRICT" 404 /volumes/q1/snapshots/nope
via "$STRICT" 404 /jobs/999999
check_head 404 /jobs/999999 "/jobs/{id}"
via "$STRICT" 409 -X POST "${J[@]}" -d '{"name":"v1","size":"1G"}' /volumes
# a body over 64 KiB that the document allows (format has no length limit)
printf '{"name":"big","size":"1G","format":"%070000d"}' 0 >"$T/big.json"
via "$STRICT" 413 -X POST "${J[@]}" --data-binary "@$T/big.json" /volumes
via "$LAX" 415 -X POST -H 'Content-Type: text/plain' -d '{"name":"x","size":"1G"}' /volumes
via "$STRICT" 422 -X POST "${J[@]}" -d '{"name":"s1"}' /volumes/v1/snapshots
via "$STRICT" 422 -X DELETE '/volumes/r1?purge=true'
# open file: delete is 409, forced 204
exec 7<"$VD_MNT/v1"
via "$STRICT" 409 -X DELETE /volumes/v1
via "$STRICT" 204 -X DELETE '/volumes/v1?force=true'
grep -qi '^Vdiskd-Image: removed' "$T/headers" || fail "no Vdiskd-Image header"
exec 7<&-
via "$STRICT" 204 -X DELETE /volumes/r1
grep -qi '^Vdiskd-Image: detached' "$T/headers" || fail "NBD delete: $(cat "$T/headers")"

# 405: Prism refuses a method the document does not list, and the daemon
# answers the same request 405 with an Allow header that names exactly the
# methods the document lists for that path.
check_405() {
    local method=$1 path=$2 template=$3 m=(-X "$1") url code
    [ "$method" = HEAD ] && m=(-I)
    for url in "$STRICT" "$VD_URL"; do
        code=$(curl -sS -o "$T/body" -D "$T/headers" -w '%{http_code}' "${m[@]}" \
            -H "Authorization: Bearer $ADMIN" "$url$path") || fail "curl $method $path"
        [ "$code" = 405 ] || fail "$method $url$path: HTTP $code, want 405"
    done
    API_STATUS=405 API_BODY=$(cat "$T/body")
    [ "$method" = HEAD ] || expect_problem 405
    python3 - "$T/openapi.json" "$template" "$(header Allow)" <<'PY' ||
import json, sys
doc = json.load(open(sys.argv[1]))
spec = {m.upper() for m in doc["paths"][sys.argv[2]] if m != "parameters"}
allow = {m.strip() for m in sys.argv[3].split(",")}
if spec != allow:
    sys.exit("document lists %s, Allow says %s" % (sorted(spec), sorted(allow)))
PY
        fail "$method $path: Allow and the document disagree"
    N=$((N + 1))
}
check_405 PUT /volumes /volumes
check_405 PUT /volumes/q1 '/volumes/{name}'
check_405 POST /volumes/q1/snapshots/s1 '/volumes/{name}/snapshots/{snapshot}'
check_405 HEAD /volumes/q1/snapshots/s1/revert '/volumes/{name}/snapshots/{snapshot}/revert'
check_405 DELETE /health /health
check_405 POST /jobs/1 '/jobs/{id}'

# Nothing in either proxy's log either (warnings included).
if grep -h 'Violation' "$T"/prism-*.log; then
    fail "prism logged violations"
fi
echo "api_openapi_validate: $N requests validated, 0 violations"
