#!/usr/bin/env bash
# The crash test's long run (tests/crash/crash_test.cc, docs/hardening.md): the real
# kvcache-server SIGKILLed at random moments under concurrent writers and readers, restarted,
# its disk directory and every block served checked against what was written.
# Usage: scripts/crash_test.sh [CYCLES] [SEED]     (CYCLES: 50; SEED: from the clock, printed)
# BUILD_DIR is the build to use (default build); the binaries are built there first.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
cycles="${1:-50}"
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" --target crash_test kvcache-server -j"${JOBS:-2}"
export KVCACHE_CRASH_CYCLES="$cycles"
[ $# -ge 2 ] && export KVCACHE_CRASH_SEED="$2"
KVCACHE_BIN_DIR="$PWD/$BUILD_DIR/bin" "$BUILD_DIR/tests/crash_test"
