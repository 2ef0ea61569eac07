#!/usr/bin/env bash
# What moving disk work off gRPC's threads costs (docs/benchmarks.md, "I/O threads"): gRPC
# Get and Put (kvcache-bench --target=kvcache-grpc) against a fresh kvcache-server of each of
# two builds in turn, BEFORE and AFTER, $REPS times interleaved; prints the medians and their
# ratios (ops/s, p99, the server's CPU per op). Workloads: "disk get" (64 MiB RAM over a
# 1 GiB disk tier, 256 MiB of keys: about 3 of 4 Gets read the disk tier), "ram get" and
# "ram put" (512 MiB RAM only).
# Usage: scripts/bench_io_threads.sh BEFORE_BIN_DIR AFTER_BIN_DIR   (REPS=5 SECONDS_EACH=4)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BEFORE="$1" AFTER="$2"
REPS="${REPS:-5}" SECONDS_EACH="${SECONDS_EACH:-4}" CLIENTS="${CLIENTS:-4}"
make_work_dir
tmp="$WORK"
run() {  # bin-dir label mode op
  local dir="$tmp/run" flags
  rm -rf "$dir" && mkdir -p "$dir"
  if [ "$3" = disk ]; then
    flags=(--ram-bytes=64MiB --disk-bytes=1GiB --disk-path="$dir/db" --demotion-queue-bytes=32MiB)
  else
    flags=(--ram-bytes=512MiB --disk-bytes=0)
  fi
  "$1/kvcache-server" --listen=127.0.0.1:0 --admin-listen=127.0.0.1:0 --metrics-listen= \
    --data-listen=off --shutdown-grace=0s "${flags[@]}" > "$dir/server.log" 2>&1 &
  SERVER_PID=$!
  kill_at_exit SERVER_PID
  "$1/kvcache-bench" throughput --target=kvcache-grpc --addr="$(listen_addr "$dir/server.log")" \
    --op="$4" --value-bytes=256KiB --clients="$CLIENTS" --seconds="$SECONDS_EACH" --keys=1024 \
    --server-pid="$SERVER_PID" --json | sed "s/^/$2 $3 $4 /" >> "$tmp/results"
  kill "$SERVER_PID" && wait "$SERVER_PID" || true
}
for _ in $(seq "$REPS"); do
  for workload in "disk get" "ram get" "ram put"; do
    run "$BEFORE" before $workload
    run "$AFTER" after $workload
  done
done
/usr/bin/python3 - "$tmp/results" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, mode, op, text = line.split(" ", 3)
    r = json.loads(text)
    r["cpu_us"] = r["server_cpu_s"] / max(r["ops"], 1) * 1e6
    runs.setdefault((mode, op), {}).setdefault(label, []).append(r)
print("| workload | ops/s before | after | ratio | p99 ratio | server CPU/op ratio | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for (mode, op), by in runs.items():
    med = lambda label, k: statistics.median(r[k] for r in by[label])
    errors = sum(r["errors"] + r["verify_failures"] for rs in by.values() for r in rs)
    print(f"| {mode} {op} | {med('before', 'ops_per_s'):.0f} | {med('after', 'ops_per_s'):.0f} "
          f"| {med('after', 'ops_per_s') / med('before', 'ops_per_s'):.2f}x "
          f"| {med('after', 'p99_us') / med('before', 'p99_us'):.2f}x "
          f"| {med('after', 'cpu_us') / med('before', 'cpu_us'):.2f}x | {errors} |")
PY
