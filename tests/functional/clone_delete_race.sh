#!/bin/bash
# clone_delete_race.sh — DELETE of a full clone's target while its job
# copies is refused with 409 (the job owns the 'creating' row and file);
# once the job is done the delete works, and the name can be taken again.
# Round after round the mount lists each name once, no image file is left
# without a row, and every row has its file (a delete that went through
# during the copy used to leave the job publishing a ghost and orphaned
# images).
. "$(dirname "$0")/../functions.sh"
start_daemon

# Large enough that the copy takes a while, small enough for a loaded CI.
api POST /volumes '{"name":"src","size":"256M","format":"qcow2"}'
expect_status 201
qio "$VD_MNT/src" 'write -P 0x3c 0 192M' >/dev/null || fail "writing src"
api POST /volumes/src/snapshots '{"name":"s"}'
expect_status 201

refused=0
for round in 1 2 3 4; do
    api POST /volumes '{"name":"c","source":{"volume":"src","snapshot":"s"}}'
    expect_status 202
    LOC=$(tr -d '\r' <"$T/headers" | sed -n 's/^[Ll]ocation: //p')
    # Delete at once and keep trying: 409 while the job runs, then 204.
    deleted=0
    for ((i = 0; i < 600; i++)); do
        api DELETE /volumes/c
        case "$API_STATUS" in
        409)
            refused=$((refused + 1))
            echo "$API_BODY" | grep -q "being created" ||
                fail "409 does not say why: $API_BODY"
            ;;
        204)
            deleted=1
            break
            ;;
        *) fail "round $round: DELETE during the clone: HTTP $API_STATUS: $API_BODY" ;;
        esac
        sleep 0.05
    done
    [ "$deleted" = 1 ] || fail "round $round: the clone could not be deleted"
    api GET "$LOC"
    expect_status 200
    [ "$(json_get state)" = succeeded ] || fail "round $round: job $API_BODY"

    # The name is free again: a new volume takes it, and only it shows.
    api POST /volumes '{"name":"c","size":"1M","format":"raw"}'
    expect_status 201
    n=$(ls -a "$VD_MNT" | grep -cx c)
    [ "$n" = 1 ] || fail "round $round: the mount lists 'c' $n times"
    [ "$(stat -c %s "$VD_MNT/c")" = $((1 << 20)) ] ||
        fail "round $round: 'c' on the mount is not the new 1 MiB volume"
    api DELETE /volumes/c
    expect_status 204
    ls -a "$VD_MNT" | grep -qx c && fail "round $round: 'c' still on the mount"
done
echo "DELETE refused $refused time(s) while a clone ran"
[ "$refused" -gt 0 ] || fail "no DELETE ever met a running clone job"

# A clone still copying when the daemon stops is undone, not left behind.
api POST /volumes '{"name":"c","source":{"volume":"src","snapshot":"s"}}'
expect_status 202
stop_daemon
# The catalog and the images directory agree: one file per row, no
# orphans, no row without its file, no row left 'creating'.
sqlite3 "$VD_DATA/catalog.db" 'SELECT name, state, location FROM volumes' \
    >"$T/rows" || fail "reading the catalog"
cat "$T/rows"
[ "$(wc -l <"$T/rows")" = 1 ] || fail "catalog rows: $(cat "$T/rows")"
grep -q '^src|ready|' "$T/rows" || fail "src is not the one ready row"
find "$VD_DATA/images" -type f >"$T/files"
[ "$(wc -l <"$T/files")" = 1 ] || fail "image files: $(cat "$T/files")"
[ "$(cut -d'|' -f3 "$T/rows")" = "$(cat "$T/files")" ] ||
    fail "the image file is not src's"
echo "clone_delete_race: ok"
