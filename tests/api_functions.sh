# tests/api_functions.sh — helpers for the REST API functional tests, on
# top of functions.sh. Source after it:
#   . "$(dirname "$0")/../functions.sh"
#   . "$(dirname "$0")/../api_functions.sh"

# http METHOD PATH [curl args...] — like api, but sends exactly the curl
# arguments given (no implied Content-Type or body).
http() {
    local method=$1 path=$2
    shift 2
    API_STATUS=$(curl -sS -X "$method" -o "$T/body" -D "$T/headers" \
        -w '%{http_code}' "$@" "$VD_URL$path") || fail "curl $method $path failed"
    API_BODY=$(cat "$T/body")
}

# header NAME — a response header's value from the last request.
header() {
    tr -d '\r' <"$T/headers" | awk -v h="$1" '
        tolower($0) ~ "^" tolower(h) ":" { sub(/^[^:]*:[ \t]*/, ""); print; exit }'
}

# expect_problem CODE [DETAIL-SUBSTRING] — the last response is an RFC 9457
# problem with that status, and its detail mentions the substring.
expect_problem() {
    expect_status "$1"
    local ct
    ct=$(header Content-Type)
    case "$ct" in
    application/problem+json*) ;;
    *) fail "HTTP $1 with Content-Type '$ct', want application/problem+json: $API_BODY" ;;
    esac
    python3 - "$T/body" "$1" "${2:-}" <<'PY' || fail "bad problem body for HTTP $1: $API_BODY"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["status"] == int(sys.argv[2]), p
assert isinstance(p["type"], str) and p["type"], p
assert isinstance(p["title"], str) and p["title"], p
assert isinstance(p["detail"], str) and p["detail"], p
assert sys.argv[3] in p["detail"], "detail %r lacks %r" % (p["detail"], sys.argv[3])
PY
}

# volume_names — the names GET /volumes lists, one a line, in order.
volume_names() {
    api GET /volumes
    expect_status 200
    python3 -c 'import json,sys; [print(v["name"]) for v in json.load(open(sys.argv[1]))["volumes"]]' "$T/body"
}
