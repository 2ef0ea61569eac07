#!/usr/bin/env bash
# The soak's long run (tests/soak/soak_test.cc, docs/hardening.md): 32 clients mixing every
# RPC against the real kvcache-server over small tiers; only documented answers, no corrupt
# block, peak RSS within the configured budget plus the stated overhead.
# Usage: scripts/soak.sh [SECONDS]      (SECONDS: 600)
# BUILD_DIR is the build to use (default build); the binaries are built there first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" --target soak_test kvcache-server -j"${JOBS:-2}"
KVCACHE_SOAK_SECONDS="${1:-600}" KVCACHE_BIN_DIR="$PWD/$BUILD_DIR/bin" "$BUILD_DIR/tests/soak_test"
