#!/bin/sh
# run.sh — install, build (warnings are errors) and run the whole test
# suite through ctest. Extra arguments go to ctest (e.g. -R functional).
set -eu
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVD_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
cd build
exec ctest --output-on-failure "$@"
