#!/bin/bash
# api_delete_open.sh — DELETE refuses with 409 while a client holds the
# volume's file open (open_count shows it), succeeds once it is closed,
# and ?force=true deletes an open volume.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../api_functions.sh"

start_daemon --format raw
for v in a b; do
    api POST /volumes "{\"name\": \"$v\", \"size\": \"1M\"}"
    expect_status 201
done

exec 3<"$VD_MNT/a"
api GET /volumes/a
[ "$(json_get open_count)" = 1 ] || fail "open_count with the file open: $(json_get open_count)"
api DELETE /volumes/a
expect_problem 409 "open"
http DELETE '/volumes/a?force=false'
expect_problem 409
[ "$(volume_names | tr '\n' ' ')" = "a b " ] || fail "list after refused delete: $(volume_names)"
exec 3<&-
api GET /volumes/a
[ "$(json_get open_count)" = 0 ] || fail "open_count after close: $(json_get open_count)"
api DELETE /volumes/a
expect_status 204

exec 3<"$VD_MNT/b"
http DELETE '/volumes/b?force=true'
expect_status 204
exec 3<&-
[ -z "$(volume_names)" ] || fail "list after deletes: $(volume_names)"
[ ! -e "$VD_MNT/b" ] || fail "$VD_MNT/b still on the mount"
stop_daemon
echo "api_delete_open: ok"
