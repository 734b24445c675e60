#!/bin/bash
# api_tls.sh — --tls-cert/--tls-key serve HTTPS: curl with the right CA
# works (tokens too), a wrong CA fails verification, plain HTTP against
# the TLS port gets no HTTP answer, and a key that does not fit refuses
# to start.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

cd "$T"
mkca() { # mkca NAME: a self-signed CA
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
        -keyout "$1.key" -out "$1.pem" >/dev/null 2>&1 || fail "openssl CA $1"
}
mkca ca
mkca otherca
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key \
    -out server.csr >/dev/null 2>&1 || fail "openssl csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -extfile san.ext -out server.pem >/dev/null 2>&1 || fail "openssl sign"
chmod 0600 server.key
ADMIN=adm-0123456789abcdef0123456789abcdef
echo "ops admin $ADMIN" >tokens
chmod 0600 tokens

PORT=$(free_port)
mkdir -p d m
"$VDISKD" --data-dir d --mount m --listen "127.0.0.1:$PORT" --format raw \
    --tls-cert server.pem --tls-key server.key --api-token-file tokens >daemon.log 2>&1 &
PID=$!
VD_LOG=$T/daemon.log
on_exit "kill -9 $PID; umount -l '$T/m'"
for ((i = 0; i < 100; i++)); do
    curl -fsS --cacert ca.pem "https://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 $PID 2>/dev/null || fail "daemon exited: $(cat daemon.log)"
    sleep 0.1
done
grep -q "https://127.0.0.1:$PORT" daemon.log || fail "log does not say https"

VD_URL=https://127.0.0.1:$PORT
http GET /health --cacert ca.pem
expect_status 200
http GET /volumes --cacert ca.pem
expect_problem 401
http POST /volumes --cacert ca.pem -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' --data-binary '{"name":"t1","size":"1M"}'
expect_status 201
http GET /volumes/t1 --cacert ca.pem -H "Authorization: Bearer $ADMIN"
expect_status 200
# A too-big chunked body over TLS is refused too.
python3 -c 'print("{\"pad\": \"" + "x" * 70000 + "\"}")' >big.json
http POST /volumes --cacert ca.pem -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @big.json
expect_problem 413

# The wrong CA: verification fails.
rc=0
curl -sS --cacert otherca.pem "https://127.0.0.1:$PORT/health" >out 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "curl trusted a certificate from another CA"
grep -qi "certificate" out || fail "curl failed for another reason: $(cat out)"

# Plain HTTP on the TLS port: no HTTP answer comes back in clear text.
python3 - "$PORT" <<'PY' || fail "plain HTTP was answered on the TLS port"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
except (socket.timeout, ConnectionResetError):
    pass
print("plain HTTP got %d bytes: %r" % (len(data), data[:40]))
assert b"HTTP/" not in data and b"status" not in data, data
PY
curl -sS "http://127.0.0.1:$PORT/health" >out 2>&1 && fail "curl got an answer over plain HTTP: $(cat out)"

kill -TERM $PID
wait $PID || fail "daemon exited with $? on SIGTERM"

# A key that is not the certificate's: refused at start.
rc=0
timeout 20 "$VDISKD" --data-dir d --mount m --listen 127.0.0.1:0 --tls-cert server.pem \
    --tls-key otherca.key >bad.log 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "started with a key that does not match"
grep -q "TLS" bad.log || fail "no reason given: $(cat bad.log)"
echo "api_tls: ok"
