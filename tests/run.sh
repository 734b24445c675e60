#!/bin/sh
# run.sh — install, build (warnings are errors) and run the whole test
# suite through ctest. Extra arguments go to ctest (e.g. -R functional).
#
# Two builds: build/ (release flags, what ships) and build-asan/
# (AddressSanitizer + UndefinedBehaviorSanitizer, invariant assertions on).
# One ctest run covers both: every test of build/, then the unit and
# functional tests again against build-asan/'s binaries as san/* (label
# "sanitize"; -LE sanitize leaves them out).
set -eu
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVD_WERROR=ON \
    -DVD_SANITIZE=ON -DVD_ASSERTS=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVD_WERROR=ON \
    -DVD_SANITIZE_BUILDDIR="$PWD/build-asan" >/dev/null
cmake --build build -j"$(nproc)"
cd build
exec ctest --output-on-failure "$@"
