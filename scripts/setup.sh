#!/usr/bin/env bash
# Installs what kvcache needs from Debian 12's packages (skipped when already there), then
# configures and builds everything into build/ (binaries in build/bin/).
# Usage: scripts/setup.sh            (BUILD_DIR and BUILD_TYPE may be set in the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev librocksdb-dev libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  libssl-dev libxxhash-dev libopenblas-dev nlohmann-json3-dev libhiredis-dev libmemcached-dev
  python3-yaml
)
# scripts/test.sh's second pass builds with Clang (CXX=clang++).
if [[ "${CXX:-}" == clang* ]]; then PACKAGES+=(clang); fi

apt_install_missing "${PACKAGES[@]}"

BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
