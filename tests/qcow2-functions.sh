# tests/qcow2-functions.sh — helpers for the qcow2 functional tests.
# Source after functions.sh: gives VDIMG and checks judged by QEMU's tools.

VDIMG=${VD_BUILDDIR:?}/tests/vd-img
[ -x "$VDIMG" ] || fail "vd-img not built at $VDIMG"
for tool in qemu-img qemu-io python3; do
    command -v $tool >/dev/null || fail "$tool is required"
done

# qcheck IMG — qemu-img check must find no errors and no leaks.
qcheck() {
    local out
    out=$(qemu-img check "$1" 2>&1) || fail "qemu-img check $1 failed:
$(echo "$out" | head -20)"
}

# qcompare RAW IMG — contents equal per qemu-img compare (strict size).
qcompare() {
    qemu-img compare -q -f raw "$1" "$2" ||
        fail "contents of $2 differ from $1"
}

# qio_verify IMG 'read -P ...'... — every qemu-io read pattern must match.
qio_verify() {
    local img=$1 out c
    shift
    local args=()
    for c in "$@"; do args+=(-c "$c"); done
    out=$(qemu-io -f qcow2 "${args[@]}" "$img" 2>&1)
    if echo "$out" | grep -qiE 'verification failed|error|fail'; then
        fail "qemu-io on $img: $out"
    fi
}

# randfile FILE SIZE — random contents.
randfile() {
    head -c "$2" /dev/urandom >"$1"
}

# patch_u64/patch_u32/patch_u8 FILE OFFSET VALUE — big-endian field patch.
patch_int() {
    python3 - "$@" <<'PY'
import struct, sys
path, fmt, off, val = sys.argv[1], sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4], 0)
with open(path, 'r+b') as f:
    f.seek(off)
    f.write(struct.pack('>' + fmt, val))
PY
}
patch_u64() { patch_int "$1" Q "$2" "$3"; }
patch_u32() { patch_int "$1" I "$2" "$3"; }
patch_u8() { patch_int "$1" B "$2" "$3"; }
read_u64() {
    python3 -c 'import struct,sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2],0)); print(struct.unpack(">Q", f.read(8))[0])' "$1" "$2"
}

# expect_fail_msg REGEX CMD... — CMD must fail and say REGEX on stderr.
expect_fail_msg() {
    local re=$1 out
    shift
    if out=$("$@" 2>&1); then
        fail "expected failure from: $*"
    fi
    echo "$out" | grep -qE "$re" || fail "message '$out' does not match /$re/ ($*)"
}

# hide_ext IMG TYPE NEWTYPE — retype a header extension (e.g. turn the
# backing-format extension into an unknown one).
hide_ext() {
    python3 - "$@" <<'PY' || fail "extension $2 not found in $1"
import struct, sys
path, old, new = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3], 0)
f = open(path, 'r+b'); h = f.read(65536)
pos = struct.unpack('>I', h[100:104])[0]
while pos + 8 <= len(h):
    t, l = struct.unpack('>II', h[pos:pos+8])
    if t == 0: break
    if t == old:
        f.seek(pos); f.write(struct.pack('>I', new)); sys.exit(0)
    pos += 8 + ((l + 7) & ~7)
sys.exit(1)
PY
}
