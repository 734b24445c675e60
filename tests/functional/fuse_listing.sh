#!/bin/bash
# shellcheck disable=SC2010  # ls is the point: it lists through readdir
# fuse_listing.sh — the mount's directory follows the volume manager: many
# volumes list completely (readdir resumes across several replies), a new
# volume appears and a grown one shows its new size at once, even where the
# kernel had cached the old entry and attributes.
. "$(dirname "$0")/../functions.sh" || exit 1

# Long names: 60 entries of 80 bytes need two 4 KiB readdir replies.
N=60
PAD=volume-with-a-long-name-to-fill-readdir-pages-quickly
name() { printf 'v%03d-%s' "$1" "$PAD"; }
start_daemon
stat "$VD_MNT/$(name 0)" >/dev/null 2>&1 && fail "volume 0 exists before it was created"
for ((i = 0; i < N; i++)); do
    api POST /volumes "{\"name\":\"$(name $i)\",\"size\":1048576,\"format\":\"raw\"}"
    expect_status 201
done
# Volume 0 was looked up (negatively) before it existed: it must appear now.
stat "$VD_MNT/$(name 0)" >/dev/null || fail "volume 0 not visible after create"

timeout 20 ls -A "$VD_MNT" >"$T/ls" || fail "listing the mount failed or hung"
[ "$(wc -l <"$T/ls")" = "$N" ] || fail "listed $(wc -l <"$T/ls") of $N volumes"
for ((i = 0; i < N; i++)); do name $i; echo; done | diff - "$T/ls" >"$T/diff" ||
    fail "listing differs: $(cat "$T/diff")"
# ls -l also stats every entry.
[ "$(ls -l "$VD_MNT" | grep -c '^-rw-rw---- 1 root root 1048576 ')" = "$N" ] ||
    fail "attributes in ls -l: $(ls -l "$VD_MNT" | head -5)"

# Grow a volume whose attributes the kernel holds.
V=$(name 7)
F=$VD_MNT/$V
[ "$(stat -c %s "$F")" = 1048576 ] || fail "$V size"
api PATCH "/volumes/$V" '{"size":4194304}'
expect_status 200
[ "$(stat -c %s "$F")" = 4194304 ] || fail "$V size after grow: $(stat -c %s "$F")"
qio "$F" 'write -P 0x77 3M 1M' 'read -P 0x77 3M 1M' >"$T/qio.out" 2>&1 ||
    fail "I/O in the grown part: $(cat "$T/qio.out")"
stop_daemon
echo "fuse_listing: ok"
