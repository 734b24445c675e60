#!/bin/bash
# cluster.sh — a throw-away single-node Ceph cluster for the RBD tests:
# one monitor and one memstore OSD on 127.0.0.1, cephx on, every file
# (config, keyrings, data, logs, pid files) under one directory.
#
#   tests/ceph/cluster.sh start DIR   start it; prints CEPH_CONF=DIR/ceph.conf
#   tests/ceph/cluster.sh stop DIR    stop its daemons by pid, remove DIR
#   OWNER_PID=PID tests/ceph/cluster.sh start DIR
#                                     also stop it once process PID is gone
#                                     (a test killed by its timeout)
#
# Sourced, it defines ceph_cluster_start DIR and ceph_cluster_stop DIR.
# The pool "rbd" (size 1) is initialised and has served a write when start
# returns. The client is client.admin, its keyring DIR/keyring (named by
# ceph.conf). MEMSTORE_BYTES bounds what the OSD holds (default 3 GiB).
# Needs ceph-mon, ceph-osd, ceph-common and uuidgen (deploy/install-deps.sh).

# A TCP port on 127.0.0.1 that nobody listens on right now.
_ceph_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_ceph_log() { echo "cluster.sh: $*" >&2; }

# Stop the daemons of the cluster in $1 by their pid files, OSD first (an
# OSD whose monitor is gone waits out a shutdown timeout), then remove $1.
ceph_cluster_stop() {
    local d=$1 p pid st i
    [ -n "$d" ] && [ -d "$d" ] || return 0
    for p in "$d"/run/watch.pid "$d"/run/osd.*.pid "$d"/run/mon.*.pid; do
        [ -f "$p" ] || continue
        pid=$(cat "$p")
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        # The daemons detach, so they are not our children: poll /proc.
        # A zombie waiting for init to reap it counts as gone.
        for i in $(seq 100); do
            st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone)
            [ "$st" = gone ] || [ "$st" = Z ] && break
            sleep 0.1
        done
        if [ "$st" != gone ] && [ "$st" != Z ]; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$d"
}

# Stop the cluster in $1 once process $2 has exited: a detached watcher,
# its pid in run/watch.pid so that a normal stop ends it first.
_ceph_watch() {
    local d=$1 owner=$2
    (
        trap 'exit 0' TERM
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        rm -f "$d/run/watch.pid"
        ceph_cluster_stop "$d"
    ) </dev/null >/dev/null 2>&1 &
    echo $! > "$d/run/watch.pid"
    disown $! 2>/dev/null || true
}

# Start a cluster in the (new or empty) directory $1.
ceph_cluster_start() {
    local d=$1 fsid osd_uuid osd_id p2 p1 i t0 conf
    t0=$(date +%s.%N)
    mkdir -p "$d" || return 1
    d=$(cd "$d" && pwd)
    if [ -n "$(ls -A "$d")" ]; then
        _ceph_log "$d is not empty"
        return 1
    fi
    mkdir -p "$d"/{run,log,mon/ceph-a,osd/ceph-0}
    conf=$d/ceph.conf
    fsid=$(uuidgen)
    p2=$(_ceph_free_port)
    p1=$(_ceph_free_port)
    cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $d/keyring
run dir = $d/run
admin socket = $d/run/\$name.\$pid.asok
pid file = $d/run/\$name.pid
log file = $d/log/\$name.log
mon cluster log file = $d/log/ceph.log
mon data = $d/mon/\$cluster-\$id
osd data = $d/osd/\$cluster-\$id
crash dir = $d/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 1
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-3221225472}
osd memory target = 536870912
osd op num shards = 1
osd op num threads per shard = 2
osd max object name len = 460
osd max object namespace len = 64
[client]
admin socket =
log file = $d/log/client.log
[osd]
keyring = $d/osd/\$cluster-\$id/keyring
[mon]
admin socket = $d/run/\$name.asok
CONF
    export CEPH_CONF=$conf
    ceph-authtool --create-keyring "$d/keyring" --gen-key -n mon. \
        --cap mon 'allow *' >/dev/null || return 1
    ceph-authtool "$d/keyring" --gen-key -n client.admin --cap mon 'allow *' \
        --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null || return 1
    chmod 600 "$d/keyring"
    monmaptool --create --fsid "$fsid" \
        --addv a "[v2:127.0.0.1:$p2,v1:127.0.0.1:$p1]" "$d/monmap" >/dev/null || return 1
    ceph-mon --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring" || return 1
    ceph-mon -i a || return 1              # detaches; pid in run/mon.a.pid
    timeout 60 ceph -s >/dev/null || { _ceph_log "no monitor quorum"; return 1; }
    timeout 30 ceph config set mon auth_allow_insecure_global_id_reclaim false || return 1

    osd_uuid=$(uuidgen)
    osd_id=$(timeout 30 ceph osd new "$osd_uuid") || return 1
    timeout 30 ceph auth get-or-create "osd.$osd_id" mon 'allow profile osd' \
        mgr 'allow profile osd' osd 'allow *' > "$d/osd/ceph-$osd_id/keyring" || return 1
    ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" 2>>"$d/log/osd-mkfs.log" || return 1
    ceph-osd -i "$osd_id" 2>>"$d/log/osd-start.log" || return 1
    # Without a mgr, 'ceph pg stat' would block forever: a pool write is
    # the readiness test, since it blocks until its PG is active.
    timeout 60 ceph osd pool create rbd 8 8 >/dev/null 2>&1 || return 1
    timeout 30 ceph osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1 || true
    timeout 60 rbd pool init rbd || return 1
    echo probe > "$d/probe"
    timeout 60 rados -p rbd put probe "$d/probe" || { _ceph_log "pool rbd not serving"; return 1; }
    rados -p rbd rm probe
    if [ -n "${OWNER_PID:-}" ]; then
        _ceph_watch "$d" "$OWNER_PID"
    fi
    _ceph_log "started in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$t0}") s ($d)"
    echo "CEPH_CONF=$conf"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -u
    case ${1:-} in
        start) [ $# -eq 2 ] || { echo "usage: $0 start DIR" >&2; exit 2; }
               ceph_cluster_start "$2" || { ceph_cluster_stop "$2"; exit 1; } ;;
        stop)  [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
               ceph_cluster_stop "$2" ;;
        *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
    esac
fi
