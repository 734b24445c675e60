#!/bin/sh
# quickstart.sh — install, build and start vdiskd with its embedded
# defaults: catalog and images in ./vdiskd-data, volume files in ./vols,
# API on 127.0.0.1:8080. Runs in the foreground; Ctrl-C stops it cleanly.
set -eu
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target vdiskd
exec ./build/vdiskd "$@"
