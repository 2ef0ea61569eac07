#!/usr/bin/env bash
# Installs, builds and runs every test (unit, integration, end-to-end) through ctest, twice:
# built with GCC (build/), then with Clang (build-clang/), whose -Wthread-safety checks every
# lock annotation (ABSL_GUARDED_BY and friends) as an error.
# Usage: scripts/test.sh [extra ctest arguments]      (KVCACHE_CLANG=0 skips the Clang pass)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@")

if [ "${KVCACHE_CLANG:-1}" != 0 ]; then
  echo "test: the Clang pass (lock annotations checked)"
  CC=clang CXX=clang++ BUILD_DIR=build-clang scripts/setup.sh
  (cd build-clang && ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@")
fi
