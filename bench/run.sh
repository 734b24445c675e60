#!/bin/sh
# run.sh — build vdiskd and run the benchmark beside its peers.
#   bench/run.sh            full run (2 GiB images, 3 repetitions, ~30 min)
#   bench/run.sh --smoke    seconds-long run that keeps the script working
# Extra flags go to bench/vdbench.py (see --help). Results: bench/results/.
set -eu
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target vdiskd
exec python3 bench/vdbench.py --vdiskd "$PWD/build/vdiskd" "$@"
