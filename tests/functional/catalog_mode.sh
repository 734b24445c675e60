#!/bin/bash
# catalog_mode.sh — the catalog holds every volume's name, path and
# backend: catalog.db and its -wal and -shm files are 0600, whether
# created now or left 0644 by an older version.
. "$(dirname "$0")/../functions.sh"

mode_of() { stat -c %a "$1"; }

start_daemon --format raw
api POST /volumes '{"name": "m1", "size": "1M"}'
expect_status 201
for f in catalog.db catalog.db-wal catalog.db-shm; do
    [ -e "$VD_DATA/$f" ] || fail "$f missing"
    [ "$(mode_of "$VD_DATA/$f")" = 600 ] || fail "$f is mode $(mode_of "$VD_DATA/$f"), want 600"
done
stop_daemon

# Files an older version left readable are tightened at start.
chmod 0644 "$VD_DATA/catalog.db"
touch "$VD_DATA/catalog.db-wal" "$VD_DATA/catalog.db-shm"
chmod 0644 "$VD_DATA/catalog.db-wal" "$VD_DATA/catalog.db-shm"
start_daemon --format raw
api GET /volumes/m1
expect_status 200
for f in catalog.db catalog.db-wal catalog.db-shm; do
    [ "$(mode_of "$VD_DATA/$f")" = 600 ] || fail "$f is mode $(mode_of "$VD_DATA/$f") after restart, want 600"
done
stop_daemon
echo "catalog_mode: ok"
