#!/bin/bash
# fuse_file_ops.sh — file operations on the mount are volume operations:
# creating a file (truncate -s, qemu-img create, touch, mknod, open with
# O_CREAT|O_EXCL, fallocate -l) creates a volume owned by the creator,
# truncate and fallocate past the end grow it (qemu-img resize, also with
# preallocation=falloc), shrinking is refused with EINVAL, rm deletes it (EBUSY
# while open or a base of linked clones), mv is refused with EPERM, bad
# names get EINVAL and taken ones EEXIST. The API agrees at every step, and
# what was made survives a restart and a kill -9.
. "$(dirname "$0")/../functions.sh" || exit 1

umask 022
start_daemon
M=$VD_MNT

# get NAME FIELD... — the fields of GET /volumes/NAME, space separated.
get() {
    local name=$1 f out=""
    shift
    api GET "/volumes/$name"
    expect_status 200
    for f in "$@"; do out="$out${out:+ }$(json_get "$f")"; done
    echo "$out"
}
# errno_of CMD... — the error text a failing command printed.
errno_of() {
    if "$@" >"$T/out" 2>&1; then
        fail "succeeded: $*"
    fi
    cat "$T/out"
}

# --- create with real tools, then the API agrees
truncate -s 16M "$M/t1" || fail "truncate -s 16M of a new file"
[ "$(stat -c '%s %u %g %a' "$M/t1")" = "16777216 0 0 644" ] ||
    fail "t1: $(stat -c '%s %u %g %a' "$M/t1")"
[ "$(get t1 size state uid gid mode)" = "16777216 ready 0 0 0644" ] ||
    fail "API t1: $API_BODY"

qemu-img create -q -f raw "$M/q1" 64M || fail "qemu-img create -f raw"
[ "$(get q1 size state)" = "67108864 ready" ] || fail "API q1: $API_BODY"
qio "$M/q1" 'write -P 0x5a 1M 64k' 'read -P 0x5a 1M 64k' >"$T/qio" 2>&1 ||
    fail "I/O on a created file: $(cat "$T/qio")"

# open(O_CREAT|O_EXCL) by another user (who may write the root: the
# capability, as libvirt's helpers have): owner and mode are the caller's.
setpriv --reuid=4242 --regid=4343 --clear-groups --inh-caps=+dac_override \
    --ambient-caps=+dac_override -- python3 - "$M/p1" <<'PY' || fail "O_CREAT|O_EXCL"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640)
os.ftruncate(fd, 1 << 20)
os.pwrite(fd, b"p" * 4096, 0)
os.close(fd)
try:
    os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640)
    raise SystemExit("a second O_EXCL create succeeded")
except OSError as e:
    assert e.errno == errno.EEXIST, e
PY
[ "$(stat -c '%s %u %g %a' "$M/p1")" = "1048576 4242 4343 640" ] ||
    fail "p1: $(stat -c '%s %u %g %a' "$M/p1")"
[ "$(get p1 size uid gid mode)" = "1048576 4242 4343 0640" ] ||
    fail "API p1: $API_BODY"

# touch and mknod make empty volumes; other node types are refused
touch "$M/e1" || fail "touch"
python3 -c 'import os, stat, sys; os.mknod(sys.argv[1], 0o600 | stat.S_IFREG)' \
    "$M/m1" || fail "mknod of a regular file"
[ "$(stat -c '%s %a' "$M/m1")" = "0 600" ] || fail "m1: $(stat -c '%s %a' "$M/m1")"
[ "$(get e1 size state)" = "0 creating" ] || fail "API e1: $API_BODY"
errno_of mknod "$M/f1" p | grep -q "Operation not permitted" ||
    fail "mknod of a FIFO: $(cat "$T/out")"

# --- names: invalid ones EINVAL, taken ones EEXIST (also against the API)
for bad in BAD -x 'a b' "$(printf 'n%.0s' {1..65})"; do
    errno_of touch "$M/$bad" | grep -q "Invalid argument" ||
        fail "create '$bad': $(cat "$T/out")"
done
api POST /volumes '{"name":"t1","size":1048576}'
expect_status 409
api POST /volumes '{"name":"a1","size":1048576}'
expect_status 201
python3 -c 'import os, sys; os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_RDWR)' \
    "$M/a1" 2>"$T/out" && fail "O_EXCL on a volume made through the API"
grep -q FileExistsError "$T/out" || fail "O_EXCL: $(cat "$T/out")"

# --- truncate: grow, same size, shrink refused
truncate -s 32M "$M/t1" || fail "truncate to grow"
[ "$(get t1 size)" = "33554432" ] || fail "API after grow: $API_BODY"
truncate -s 32M "$M/t1" || fail "truncate to the same size"
errno_of truncate -s 8M "$M/t1" | grep -q "Invalid argument" ||
    fail "shrink: $(cat "$T/out")"
errno_of truncate -s 1000K "$M/t1" | grep -q "Invalid argument" ||
    fail "shrink to an odd size: $(cat "$T/out")"
[ "$(stat -c %s "$M/t1") $(get t1 size)" = "33554432 33554432" ] ||
    fail "size after refused shrinks: $API_BODY"
# fallocate past the end grows like truncate (whole sectors); with
# --keep-size it does not; a new file sized by fallocate is a volume.
fallocate -o 32M -l 16M "$M/t1" || fail "fallocate to grow"
[ "$(stat -c %s "$M/t1") $(get t1 size)" = "50331648 50331648" ] ||
    fail "t1 after fallocate to 48M: $API_BODY"
fallocate -z -o 44M -l 8M "$M/t1" || fail "fallocate --zero-range to grow"
[ "$(stat -c %s "$M/t1") $(get t1 size)" = "54525952 54525952" ] ||
    fail "t1 after fallocate -z to 52M: $API_BODY"
fallocate -n -o 52M -l 4M "$M/t1" || fail "fallocate --keep-size past the end"
errno_of fallocate -o 52M -l 1000 "$M/t1" | grep -q "Invalid argument" ||
    fail "fallocate to an odd size: $(cat "$T/out")"
[ "$(stat -c %s "$M/t1") $(get t1 size)" = "54525952 54525952" ] ||
    fail "t1 changed by fallocate --keep-size or to an odd size: $API_BODY"
fallocate -l 8M "$M/fa1" || fail "fallocate -l 8M of a new file"
[ "$(stat -c %s "$M/fa1") $(get fa1 size state)" = "8388608 8388608 ready" ] ||
    fail "fa1 after fallocate -l 8M: $API_BODY"
qemu-img create -q -f raw -o preallocation=falloc "$M/fa2" 4M ||
    fail "qemu-img create -o preallocation=falloc"
qemu-img resize -q -f raw --preallocation=falloc "$M/fa2" 6M ||
    fail "qemu-img resize --preallocation=falloc"
[ "$(stat -c %s "$M/fa2") $(get fa2 size)" = "6291456 6291456" ] ||
    fail "fa2 after falloc create and resize: $API_BODY"
qemu-img resize -q -f raw "$M/q1" 128M || fail "qemu-img resize"
[ "$(stat -c %s "$M/q1") $(get q1 size)" = "134217728 134217728" ] ||
    fail "q1 after resize: $API_BODY"
qemu-img resize -q -f raw --shrink "$M/q1" 64M 2>/dev/null &&
    fail "qemu-img resize --shrink succeeded"
[ "$(get q1 size)" = "134217728" ] || fail "q1 after refused shrink: $API_BODY"
qio "$M/q1" 'read -P 0x5a 1M 64k' >"$T/qio" 2>&1 ||
    fail "data after resize: $(cat "$T/qio")"

# --- rm: EBUSY while open, then gone everywhere
exec 3<"$M/t1"
errno_of rm "$M/t1" | grep -q "Device or resource busy" ||
    fail "rm of an open volume: $(cat "$T/out")"
get t1 state >/dev/null
exec 3<&-
rm "$M/t1" || fail "rm after close"
api GET /volumes/t1
expect_status 404
[ -e "$M/t1" ] && fail "t1 still on the mount"
rm "$M/e1" || fail "rm of an empty volume"
api GET /volumes/e1
expect_status 404
# a linked-clone base with clones: EBUSY, as the API's 409
api POST /volumes '{"name":"b1","size":1048576,"format":"qcow2"}'
expect_status 201
api POST /volumes '{"name":"c1","base":"b1","format":"qcow2"}'
expect_status 201
errno_of rm "$M/b1" | grep -q "Device or resource busy" ||
    fail "rm of a base: $(cat "$T/out")"
rm "$M/c1" || fail "rm of the clone"
rm "$M/b1" || fail "rm of the base once it has no clone"

# --- mv is refused, nothing changes
errno_of mv "$M/q1" "$M/q2" | grep -q "Operation not permitted" ||
    fail "mv: $(cat "$T/out")"
api GET /volumes/q2
expect_status 404
[ "$(get q1 size)" = "134217728" ] || fail "q1 after mv: $API_BODY"

# --- what the API does is on the mount at once (no waiting), the
# directory's mtime included (the kernel caches it for a second)
ls "$M" >/dev/null
stat "$M/n0" >/dev/null 2>&1 && fail "n0 exists early"
api POST /volumes '{"name":"n0","size":1048576}'
expect_status 201
[ "$(stat -c %s "$M/n0")" = 1048576 ] || fail "API create after a failed lookup"
t0=$(stat -c %y "$M")
api POST /volumes '{"name":"n1","size":1048576}'
expect_status 201
t1=$(stat -c %y "$M")
[ "$t1" != "$t0" ] || fail "directory mtime unchanged by an API create: $t0"
ls "$M" | grep -qx n1 || fail "API create not listed: $(ls "$M")"
[ "$(stat -c %s "$M/n1")" = 1048576 ] || fail "API create not visible"
api DELETE /volumes/n1
expect_status 204
[ "$(stat -c %y "$M")" != "$t1" ] || fail "directory mtime unchanged by an API delete"
ls "$M" | grep -qx n1 && fail "API delete still listed"
stat "$M/n1" >/dev/null 2>&1 && fail "API delete still visible"
# and a file made on the mount moves it too
t2=$(stat -c %y "$M")
truncate -s 1M "$M/n2" || fail "n2"
[ "$(stat -c %y "$M")" != "$t2" ] || fail "directory mtime unchanged by a create"
rm "$M/n2" || fail "rm n2"

# --- the API and the mount changing the directory at once: no deadlock
# (the kernel holds the directory's lock while a create or rm runs, and
# the API waits for its invalidations), and both agree afterwards
(
    for i in $(seq 1 15); do
        curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
            --data-binary "{\"name\":\"s$i\",\"size\":1048576}" "$VD_URL/volumes"
        curl -sS -o /dev/null -X DELETE "$VD_URL/volumes/s$((i - 1))"
    done
) &
racer=$!
on_exit "kill $racer"
for i in $(seq 1 15); do
    timeout 60 truncate -s 1M "$M/r$i" || fail "create r$i while the API changes volumes"
    [ "$i" -gt 1 ] && { timeout 60 rm "$M/r$((i - 1))" || fail "rm r$((i - 1))"; }
done
wait "$racer" || fail "API requests failed while the mount changed volumes"
api GET /volumes
python3 -c 'import json,sys; print("\n".join(sorted(v["name"] for v in json.load(open(sys.argv[1]))["volumes"])))' \
    "$T/body" >"$T/api-names"
ls "$M" | sort >"$T/ls-names"
diff "$T/api-names" "$T/ls-names" >"$T/diff" || fail "API and mount disagree: $(cat "$T/diff")"
grep -qx r15 "$T/ls-names" && grep -qx s15 "$T/ls-names" || fail "r15 or s15 missing: $(cat "$T/ls-names")"

# --- restart: what has a size stays; an empty volume was never finished
touch "$M/e2"
stop_daemon
start_daemon
[ "$(get q1 size)" = "134217728" ] || fail "q1 after restart: $API_BODY"
[ "$(get p1 size uid gid mode)" = "1048576 4242 4343 0640" ] ||
    fail "p1 after restart: $API_BODY"
api GET /volumes/e2
expect_status 404
[ -e "$M/e2" ] && fail "e2 on the mount after restart"
grep -q "repaired volume 'e2'" "$VD_LOG" || fail "e2 not repaired at start"
qio "$M/p1" 'read -P 0x70 0 4k' >"$T/qio" 2>&1 || fail "p1 data: $(cat "$T/qio")"

# --- kill -9 between create and truncate, and after the truncate
truncate -s 4M "$M/k1" || fail "k1"
touch "$M/k2"
sync
kill -9 "$VD_PID"
wait "$VD_PID" 2>/dev/null
umount -l "$VD_MNT" # the dead mount a kill leaves
start_daemon
[ "$(get k1 size state)" = "4194304 ready" ] || fail "k1 after kill -9: $API_BODY"
api GET /volumes/k2
expect_status 404
grep -q "repaired volume 'k2'" "$VD_LOG" || fail "k2 not repaired at start"
truncate -s 2M "$M/k2" || fail "k2 cannot be made again"
api GET /volumes
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["volumes"]))' "$T/body")
stop_daemon
images=$(find "$VD_DATA/images" -type f | wc -l)
[ "$images" = "$n" ] || fail "$images image files for $n volumes"
for img in "$VD_DATA"/images/*.qcow2; do
    qemu-img check -q "$img" || fail "qemu-img check $img"
done
echo "fuse_file_ops: ok"
