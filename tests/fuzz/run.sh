#!/bin/bash
# tests/fuzz/run.sh [SECONDS] [HARNESS] — fuzz for a bounded time (default
# 60 s, one job) from the committed seed corpus. HARNESS is fuzz_qcow2
# (open and read, the default) or fuzz_qcow2_rw (the write path). Builds
# it in build-fuzz/ with clang (incrementally, every run). New inputs go to a scratch
# copy of the corpus; crashes land in build-fuzz/fuzz-artifacts/.
set -eu
secs=${1:-60}
harness=${2:-fuzz_qcow2}
src=$(cd "$(dirname "$0")/../.." && pwd)
bld=${VD_FUZZ_BUILDDIR:-$src/build-fuzz}
mkdir -p "$bld"
# Harnesses may be fuzzed in parallel (ctest -j): build one at a time.
(
    flock 9
    if [ ! -f "$bld/CMakeCache.txt" ]; then
        cmake -S "$src" -B "$bld" -DVD_FUZZ=ON -DCMAKE_C_COMPILER=clang \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    # Always make: a harness left from older sources would fuzz old code.
    make -C "$bld" -j2 "$harness" >/dev/null
) 9>"$bld/.build-lock"
work=$(mktemp -d /tmp/vdfuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$src/tests/fuzz/corpus/qcow2/"* "$work/"
mkdir -p "$bld/fuzz-artifacts"
"$bld/tests/$harness" -max_total_time="$secs" -max_len=16384 -rss_limit_mb=1024 \
    -timeout=10 -artifact_prefix="$bld/fuzz-artifacts/" -print_final_stats=1 "$work"
