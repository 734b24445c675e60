#!/bin/bash
# snapshot_online.sh — snapshots taken while a client writes: fio keeps
# writing (io_uring, O_DIRECT, crc32c-verified) through the FUSE file
# while snapshots are taken over REST, and sees no error; a snapshot holds
# exactly what was written before it, readable as a read-only file under
# /.snapshots while the volume moves on, and equal to what qemu-img reads
# from the snapshot. The I/O pause of each snapshot is reported.
. "$(dirname "$0")/../functions.sh"
cd "$T" || exit 1   # fio leaves verify state files in the working directory
start_daemon

api POST /volumes '{"name":"v","size":"256M","format":"qcow2"}'
expect_status 201
IMG=$(json_get image)
F=$VD_MNT/v
S=$VD_MNT/.snapshots

# Known order: A, snapshot s1, B. The view reads A, the volume B.
qio "$F" 'write -P 0xaa 0 4M' 'write -P 0xab 100M 64k' >/dev/null || fail "write A"
api POST /volumes/v/snapshots '{"name":"s1"}'
expect_status 201
echo "s1: io_paused_us=$(json_get io_paused_us)"
qio "$F" 'write -P 0xbb 1M 2M' 'write -P 0xbc 100M 4k' 'write -P 0xbd 200M 1M' \
    >/dev/null || fail "write B"
qio_ro "$S/v/s1" 'read -P 0xaa 0 4M' 'read -P 0xab 100M 64k' \
    'read -P 0 200M 1M' >"$T/qio" || fail "view of s1 does not read A: $(cat "$T/qio")"
grep -q "Pattern verification failed" "$T/qio" && fail "view of s1: $(cat "$T/qio")"
qio_ro "$F" 'read -P 0xaa 0 1M' 'read -P 0xbb 1M 2M' 'read -P 0xbc 100M 4k' \
    'read -P 0xbd 200M 1M' >"$T/qio" || fail "volume does not read B"
grep -q "Pattern verification failed" "$T/qio" && fail "volume: $(cat "$T/qio")"
# Plain buffered readers (cmp, cp, backup tools) see the same bytes.
head -c 4M "$S/v/s1" | cmp - <(head -c 4M /dev/zero | tr '\0' '\252') ||
    fail "buffered read of the view differs from A"

# The tree: hidden in the root, one directory per volume with snapshots,
# one read-only file per snapshot, of the snapshot's size.
ls -A "$VD_MNT" | grep -q snapshots && fail "the root lists .snapshots"
[ "$(ls "$S")" = v ] || fail ".snapshots lists: $(ls "$S")"
[ "$(ls "$S/v")" = s1 ] || fail ".snapshots/v lists: $(ls "$S/v")"
[ "$(stat -c %s "$S/v/s1")" = $((256 << 20)) ] || fail "view size"
stat -c %A "$S/v/s1" | grep -q w && fail "view has write bits: $(stat -c %A "$S/v/s1")"
[ "$(stat -c %i "$S/v/s1")" != "$(stat -c %i "$F")" ] || fail "view shares the volume's inode"
if qio "$S/v/s1" 'write -P 1 0 4k' >/dev/null 2>&1; then
    fail "the view opened for writing"
fi
(echo x >"$S/v/s1") 2>"$T/err" && fail "shell redirect wrote the view"
grep -q "Read-only file system" "$T/err" || fail "not EROFS: $(cat "$T/err")"
stat "$S/v/nosuch" >/dev/null 2>&1 && fail "unknown snapshot exists"
stat "$S/nosuch" >/dev/null 2>&1 && fail "unknown volume exists"

# A new snapshot shows at once; one held open cannot be deleted.
api POST /volumes/v/snapshots '{"name":"s2"}'
expect_status 201
[ "$(ls "$S/v" | tr '\n' ' ')" = "s1 s2 " ] || fail "s2 not listed: $(ls "$S/v")"
exec 3<"$S/v/s1"
api DELETE /volumes/v/snapshots/s1
expect_status 409
api DELETE /volumes/v
expect_status 409
exec 3<&-
api DELETE /volumes/v/snapshots/s2
expect_status 204
stat "$S/v/s2" >/dev/null 2>&1 && fail "deleted s2 still visible"

# The view equals what qemu-img reads from the snapshot (-U: the daemon
# holds the image).
qemu-img convert -U -O raw -l snapshot.name=s1 "$IMG" "$T/s1.raw" ||
    fail "qemu-img convert -l snapshot.name=s1"
qemu-img compare -q -f raw -F raw "$S/v/s1" "$T/s1.raw" ||
    fail "view of s1 differs from qemu-img's snapshot"

# fio writes and verifies while five snapshots are taken (and one of
# them deleted), and a backup reader copies the view of s1 over and over.
fio --name=online --filename="$F" --ioengine=io_uring --direct=1 \
    --rw=randwrite --bsrange=4k-64k --iodepth=16 --size=96M --offset=128M \
    --rate=8m --verify=crc32c --verify_backlog=256 --do_verify=1 \
    --verify_fatal=1 --output="$T/fio.out" &
FIO=$!
on_exit "kill $FIO"
(
    n=0
    while kill -0 $FIO 2>/dev/null; do
        cmp "$S/v/s1" "$T/s1.raw" || exit 1
        n=$((n + 1))
    done
    echo "view of s1 read $n times while fio wrote"
    [ $n -gt 0 ]
) &
READER=$!
on_exit "kill $READER"
sleep 0.5
for i in 1 2 3 4 5; do
    kill -0 $FIO 2>/dev/null || fail "fio ended before snapshot $i: too fast to test"
    api POST /volumes/v/snapshots "{\"name\":\"on$i\"}"
    expect_status 201
    echo "on$i: io_paused_us=$(json_get io_paused_us)"
    if [ $i = 4 ]; then
        api DELETE /volumes/v/snapshots/on2
        expect_status 204
    fi
    sleep 0.5
done
wait $FIO || fail "fio failed: $(cat "$T/fio.out")"
wait $READER || fail "the view of s1 changed while the volume was written"
grep -q "err= 0" "$T/fio.out" || fail "fio: $(cat "$T/fio.out")"
grep -E "^ +(write|read):" "$T/fio.out"
[ "$(ls "$S/v" | tr '\n' ,)" = "on1,on3,on4,on5,s1," ] || fail "views after fio: $(ls "$S/v")"
# The last view still reads A where nothing wrote since.
qio_ro "$S/v/on5" 'read -P 0xaa 0 1M' >"$T/qio" || fail "view on5"
grep -q "Pattern verification failed" "$T/qio" && fail "view on5: $(cat "$T/qio")"

stop_daemon
qemu-img check -q "$IMG" || fail "qemu-img check"
qemu-img snapshot -l "$IMG" | grep -c ' on[1-5] ' | grep -qx 4 ||
    fail "qemu-img does not list the four snapshots"

# Snapshots qemu-img takes appear too, under any name a file can have.
qemu-img snapshot -c "Odd Name" "$IMG" && qemu-img snapshot -c "a/b" "$IMG" ||
    fail "qemu-img snapshot -c"
start_daemon
[ -f "$S/v/Odd Name" ] || fail "qemu-img's snapshot not shown: $(ls "$S/v")"
# ("a/b" cannot be a file name: not listed, and the listing still works.)
[ "$(ls "$S/v" | LC_ALL=C sort | tr '\n' ,)" = "Odd Name,on1,on3,on4,on5,s1," ] ||
    fail "listing with qemu-img's snapshots: $(ls "$S/v")"
cmp "$S/v/Odd Name" "$F" || fail "view of qemu-img's snapshot differs from the volume"
# Stopping with a view still open releases it (exit 0, mount gone).
exec 4<"$S/v/Odd Name"
stop_daemon
exec 4<&-
qemu-img check -q "$IMG" || fail "qemu-img check after restart"
echo "snapshot_online: ok"
