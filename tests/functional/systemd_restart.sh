#!/bin/bash
# systemd_restart.sh — deploy/vdiskd.service brings vdiskd back after a
# crash (Restart=on-failure): its ExecStartPre= and ExecStart= lines, run
# the way systemd runs them (the unit's Environment= plus an environment
# file, $VAR and ${VAR} expansion, "-" prefixes, a clean environment,
# Type=notify readiness), start the daemon on fresh directories, and start
# it again after a SIGKILL left a dead FUSE mount behind; the volume and its
# data are there. systemd is not PID 1 here, so this test plays its part;
# /usr/local/bin/vdiskd is the daemon under test.
. "$(dirname "$0")/../functions.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=$SRC/deploy/vdiskd.service
[ -x "$VDISKD" ] || fail "no daemon binary at $VDISKD"

# unit_cmds KEY ENVFILE — the KEY= command lines of the unit as systemd
# would run them: one line per command, "ignore-failure<TAB>argv" with argv
# NUL-separated in a file $T/cmd.N (N printed in place of argv).
cat >"$T/unitcmds.py" <<'EOF'
import re, shlex, sys
unit, key, envfile, binary, out = sys.argv[1:6]
env, cmds = {}, []
for line in open(unit):
    line = line.strip()
    if line.startswith("Environment="):
        for kv in shlex.split(line.split("=", 1)[1]):
            k, v = kv.split("=", 1)
            env[k] = v
for line in open(envfile):
    line = line.strip()
    if line and not line.startswith("#"):
        k, v = line.split("=", 1)
        env[k] = shlex.split(v)[0] if v else ""
for line in open(unit):
    line = line.strip()
    if not line.startswith(key + "="):
        continue
    cmd = line.split("=", 1)[1]
    ignore = cmd.startswith("-")
    cmd = cmd.lstrip("-")
    if cmd[:1] in "@:+!":
        sys.exit("unhandled prefix in " + line)
    argv = []
    for word in shlex.split(cmd):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:   # "$FOO" alone: split on white space, gone when empty
            argv += env.get(m.group(1), "").split()
        else:   # "${FOO}" anywhere: as it is
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                               lambda m: env.get(m.group(1), ""), word))
    if argv and argv[0] == "/usr/local/bin/vdiskd":
        argv[0] = binary
    n = len(cmds)
    open(f"{out}.{n}", "w").write("\0".join(argv))
    cmds.append(f"{int(ignore)}\t{n}")
    print(f"{int(ignore)}\t{n}")
for k, v in env.items():
    open(f"{out}.env", "a").write(f"{k}={v}\0")
EOF

PORT=$(free_port)
VD_URL=http://127.0.0.1:$PORT     # for api
export VD_URL
VD_MNT=$T/run/vdiskd/vols          # nested: ExecStartPre must create it
VD_DATA=$T/lib/vdiskd
VD_LOG=$T/daemon.log
cat >"$T/default" <<EOF
# /etc/default/vdiskd for this test
VDISKD_DATA_DIR=$VD_DATA
VDISKD_MOUNT=$VD_MNT
VDISKD_LISTEN=127.0.0.1:$PORT
VDISKD_OPTS="--threads 4"
EOF
grep -q '^EnvironmentFile=-/etc/default/vdiskd$' "$UNIT" ||
    fail "the unit no longer reads /etc/default/vdiskd; update this test"

# Readiness the Type=notify way: a datagram socket that logs what arrives.
cat >"$T/listen.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        print(s.recv(4096).decode(errors="replace").strip(), file=f, flush=True)
EOF
python3 "$T/listen.py" "$T/notify.sock" "$T/notify.log" &
on_exit "kill $!"
for ((i = 0; i < 50; i++)); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
[ -S "$T/notify.sock" ] || fail "notify listener did not start"

# run_argv N — exec command file N in the unit's clean environment (call it
# in a subshell or in the background).
run_argv() {
    local argv=() envv=()
    mapfile -d '' -t argv <"$T/cmd.$1"
    mapfile -d '' -t envv <"$T/cmd.env"
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NOTIFY_SOCKET="$T/notify.sock" \
        "${envv[@]}" "${argv[@]}"
}

# unit_start — ExecStartPre= in order (failure fails the start unless "-"),
# then ExecStart= until READY=1, as systemctl start would.
unit_start() {
    local ignore n rc i
    rm -f "$T"/cmd.*
    python3 "$T/unitcmds.py" "$UNIT" ExecStartPre "$T/default" "$VDISKD" "$T/cmd" \
        >"$T/pre.list" || fail "cannot read ExecStartPre= from the unit"
    while IFS=$'\t' read -r ignore n; do
        rc=0
        (run_argv "$n") >>"$VD_LOG" 2>&1 || rc=$?
        if [ "$rc" -ne 0 ] && [ "$ignore" = 0 ]; then
            fail "ExecStartPre=$(tr '\0' ' ' <"$T/cmd.$n") exited $rc: the start fails; $(tail -n 3 "$VD_LOG")"
        fi
    done <"$T/pre.list"
    rm -f "$T"/cmd.*
    python3 "$T/unitcmds.py" "$UNIT" ExecStart "$T/default" "$VDISKD" "$T/cmd" \
        >"$T/start.list" || fail "cannot read ExecStart= from the unit"
    read -r ignore n <"$T/start.list"
    [ -n "${n:-}" ] || fail "the unit has no ExecStart="
    : >"$T/notify.log"
    run_argv "$n" >>"$VD_LOG" 2>&1 &
    VD_PID=$!
    on_exit "kill -9 $VD_PID; umount -l '$VD_MNT'"
    for ((i = 0; i < 150; i++)); do
        grep -qx 'READY=1' "$T/notify.log" && break
        kill -0 "$VD_PID" 2>/dev/null || fail "vdiskd exited during start-up"
        sleep 0.1
    done
    grep -qx 'READY=1' "$T/notify.log" || fail "no READY=1 within 15 s"
}

# ---- first start, on directories that do not exist yet -----------------------------
unit_start
api POST /volumes '{"name":"r1","size":8388608}'
expect_status 201
SEEDB=$((RANDOM % 255 + 1))
qio "$VD_MNT/r1" "write -P $SEEDB 0 1M" "write -P $SEEDB 7M 1M" "flush" >"$T/qio.out" 2>&1 ||
    fail "write: $(cat "$T/qio.out")"
echo "systemd_restart: started as the unit does; r1 written"

# ---- crash: SIGKILL leaves a dead FUSE mount; the unit's start must still work ------
exec 3>&2 2>/dev/null   # no "Killed" job notice
kill -9 "$VD_PID"
wait "$VD_PID"
exec 2>&3 3>&-
ls "$VD_MNT" >/dev/null 2>&1 && fail "expected a dead mount at $VD_MNT after SIGKILL"
echo "systemd_restart: killed; $VD_MNT is a dead mount"
# systemd waits RestartSec= before it starts the unit again.
restart_sec=$(sed -n 's/^RestartSec=\([0-9.]*\)s\{0,1\}$/\1/p' "$UNIT")
grep -qx 'Restart=on-failure' "$UNIT" || fail "the unit has no Restart=on-failure"
[ -n "$restart_sec" ] || fail "cannot read RestartSec= (in seconds) from the unit"
sleep "$restart_sec"
unit_start
qio "$VD_MNT/r1" "read -P $SEEDB 0 1M" "read -P $SEEDB 7M 1M" >"$T/qio.out" 2>&1 ||
    fail "after the restart: $(cat "$T/qio.out")"
echo "systemd_restart: restarted as Restart=on-failure would; r1 and its data are back"
stop_daemon
grep -qx 'STOPPING=1' "$T/notify.log" || fail "no STOPPING=1 on SIGTERM"
echo "systemd_restart: ok"
