#!/usr/bin/env bash
# Installs, builds and runs every test (unit, integration, end-to-end) through ctest, twice:
# built with GCC (build/), then with Clang (build-clang/), whose -Wthread-safety checks every
# lock annotation (ABSL_GUARDED_BY and friends) as an error.
# Then the sanitizer passes (tests/sanitizers/README.md), each building only what it runs:
# AddressSanitizer+UBSan (build-asan/) over the concurrency and end-to-end tests, the fuzz
# targets' corpora and a bounded fuzz run (docs/fuzzing.md); ThreadSanitizer (build-tsan/).
# Usage: scripts/test.sh [extra ctest arguments]      (KVCACHE_CLANG=0 skips the Clang pass,
#                                                      KVCACHE_SANITIZERS=0 the sanitizer ones)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@")

if [ "${KVCACHE_CLANG:-1}" != 0 ]; then
  echo "test: the Clang pass (lock annotations checked)"
  CC=clang CXX=clang++ BUILD_DIR=build-clang scripts/setup.sh
  (cd build-clang && ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@")
fi

if [ "${KVCACHE_SANITIZERS:-1}" != 0 ]; then
  san="$PWD/tests/sanitizers"
  labels() { local IFS='|'; echo "^($*)\$"; }

  echo "test: the AddressSanitizer+UBSan pass (and the fuzz targets)"
  ASAN_TESTS=(cachestore_test common_codec_test services_test cluster_client_test e2e_test
              quota_test local_path_test)
  FUZZ_TARGETS=(fuzz_data_channel_wire fuzz_meta_record fuzz_request fuzz_data_channel
                fuzz_safetensors fuzz_model_config fuzz_trace)
  CC=clang CXX=clang++ BUILD_DIR=build-asan CMAKE_ARGS="-DKVCACHE_FUZZ=ON" \
    BUILD_TARGETS="${ASAN_TESTS[*]} ${FUZZ_TARGETS[*]} kvcache-server kvcache-admin" \
    scripts/setup.sh
  (cd build-asan &&
    ASAN_OPTIONS="detect_leaks=1" LSAN_OPTIONS="suppressions=$san/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --output-on-failure -j"$(nproc)" --timeout 600 -L "$(labels "${ASAN_TESTS[@]}" fuzz)" "$@")
  LSAN_OPTIONS="suppressions=$san/lsan.supp:print_suppressions=0" \
    scripts/fuzz.sh all "${KVCACHE_FUZZ_SECONDS:-10}"

  echo "test: the ThreadSanitizer pass (cachestore, the I/O pool; see tests/sanitizers/README.md)"
  TSAN_TESTS=(cachestore_test io_executor_test)
  # The disk tier's concurrent writers meet in RocksDB's group commit, whose hand-off TSan
  # cannot see (uninstrumented): a false race in RocksDB's own copy of the batches. The
  # background demotion writer is such a second writer whenever a Put also demotes.
  TSAN_EXCLUDE='ConcurrentPutsAndGets/(Disk|Tiered)|AFullDemotionQueueIsBackPressure|PutRacingDemotion|ReadersNeverMissABlock'
  CC=clang CXX=clang++ BUILD_DIR=build-tsan CMAKE_ARGS="-DKVCACHE_SANITIZE=thread" \
    BUILD_TARGETS="${TSAN_TESTS[*]}" scripts/setup.sh
  (cd build-tsan &&
    TSAN_OPTIONS="suppressions=$san/tsan.supp:halt_on_error=1:second_deadlock_stack=1" \
    ctest --output-on-failure -j"$(nproc)" --timeout 600 -L "$(labels "${TSAN_TESTS[@]}")" \
      -E "$TSAN_EXCLUDE" "$@")
fi
