#!/usr/bin/env bash
# Runs libFuzzer targets (tests/fuzz/, docs/fuzzing.md) from their seed corpus for a while.
# Usage: scripts/fuzz.sh TARGET|all [SECONDS] [libFuzzer flags...]      (SECONDS: 600, each)
#   scripts/fuzz.sh fuzz_data_channel 3600         an hour on the data-channel server
#   scripts/fuzz.sh all 20                         what CI runs (scripts/test.sh)
# BUILD_DIR is the KVCACHE_FUZZ build (default build-asan); a target not built yet is built
# there first (installing Clang if needed). New inputs go to FUZZ_WORK/TARGET (default
# BUILD_DIR/fuzz-work), never into the repository; a crash leaves crash-* there, prints how to
# reproduce it, and fails. Keep a fixed crash's input as tests/fuzz/corpus/TARGET/crash_<what>.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(fuzz_data_channel_wire fuzz_meta_record fuzz_request fuzz_data_channel
         fuzz_safetensors fuzz_model_config fuzz_trace)
if [ $# -lt 1 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
target="$1"
seconds="${2:-600}"
shift $(($# < 2 ? $# : 2))
if [ "$target" = all ]; then selected=("${TARGETS[@]}"); else selected=("$target"); fi

BUILD_DIR="${BUILD_DIR:-build-asan}"
missing=()
for t in "${selected[@]}"; do [ -x "$BUILD_DIR/fuzz/$t" ] || missing+=("$t"); done
if ((${#missing[@]})); then
  CC=clang CXX=clang++ BUILD_DIR="$BUILD_DIR" CMAKE_ARGS="-DKVCACHE_FUZZ=ON" \
    BUILD_TARGETS="${missing[*]}" scripts/setup.sh
fi

WORK_ROOT="${FUZZ_WORK:-$BUILD_DIR/fuzz-work}"
# Leaks are reported (ASan's default); UBSan findings abort with a stack.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in "${selected[@]}"; do
  work="$WORK_ROOT/$t"
  mkdir -p "$work/corpus"
  echo "fuzz: $t for ${seconds}s (new inputs in $work/corpus)"
  # The first corpus directory receives new inputs; the seeds are read only.
  if ! (cd "$work" && "$OLDPWD/$BUILD_DIR/fuzz/$t" -max_total_time="$seconds" \
          -max_len=4096 -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "$@" \
          corpus "$OLDPWD/tests/fuzz/corpus/$t") >"$work/log" 2>&1; then
    tail -n 60 "$work/log"
    echo "fuzz: $t FAILED; the input is $(ls "$work"/crash-* "$work"/timeout-* \
      "$work"/oom-* "$work"/leak-* 2>/dev/null | head -1)"
    echo "fuzz: reproduce with $BUILD_DIR/fuzz/$t <that file>"
    status=1
    continue
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/log" | tr '\n' ' '
  echo
done
exit "$status"
