#!/usr/bin/env bash
# Installs what kvcache needs from Debian 12's packages (skipped when already there), then
# configures and builds everything into build/ (binaries in build/bin/).
# Usage: scripts/setup.sh            (BUILD_DIR and BUILD_TYPE may be set in the environment;
#                                     CMAKE_ARGS adds configure options and BUILD_TARGETS
#                                     builds only those targets, as the sanitizer passes do)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev librocksdb-dev libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  libssl-dev libxxhash-dev libopenblas-dev nlohmann-json3-dev libhiredis-dev libmemcached-dev
  python3-yaml
  # The Python client (clients/python) and its tests: Debian's gRPC, protobuf and xxhash for
  # /usr/bin/python3, pip, setuptools and venv for its offline install, openssl for test
  # certificates.
  python3-grpcio python3-protobuf python3-xxhash python3-pip python3-setuptools python3-venv
  openssl
)
# scripts/test.sh's Clang and sanitizer passes (CXX=clang++): Clang, and its sanitizer and
# libFuzzer runtimes, which clang-14 only recommends.
if [[ "${CXX:-}" == clang* ]]; then PACKAGES+=(clang libclang-rt-14-dev); fi

apt_install_missing "${PACKAGES[@]}"

BUILD_DIR="${BUILD_DIR:-build}"
# shellcheck disable=SC2086  # CMAKE_ARGS and BUILD_TARGETS are word lists.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  ${CMAKE_ARGS:-} >/dev/null
# shellcheck disable=SC2086
cmake --build "$BUILD_DIR" -j"$(nproc)" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
