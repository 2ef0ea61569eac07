#!/usr/bin/env bash
# A 3-node kvcache cluster and 2 workers as separate processes on loopback ports, through a
# node killed (SIGKILL), one frozen (SIGSTOP) and one cut off (a stopped proxy), then a 4th
# node joining. Prints per phase: requests, failures (must be 0: every output, tokens and
# logits, equals a run without any cache), p50/p99 time to first token and hit ratio, and the
# share of keys that move when the 4th node joins. CI runs the same test, shorter.
# Usage: scripts/cluster_demo.sh [requests per phase, default 24] [model preset: bench|tiny]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD="${BUILD_DIR:-build}"
KVCACHE_CLUSTER_REQUESTS="${1:-24}" KVCACHE_CLUSTER_PRESET="${2:-bench}" \
  KVCACHE_BIN_DIR="$PWD/$BUILD/bin" "$BUILD/tests/cluster_e2e_test"
