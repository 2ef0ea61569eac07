#!/usr/bin/env bash
# What authentication costs the data path (docs/benchmarks.md, "Authentication"): two
# kvcache-servers in one run, RAM only, plaintext on loopback, one without --auth-tokens and
# one with it (callers by token, tenant "a"); each cell is kvcache-bench throughput, median
# of $REPS, the two servers interleaved.
# Usage: scripts/bench_auth.sh            (REPS=3 SECONDS_EACH=2 CLIENTS=4 VALUE=256KiB by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN="${BIN:-build/bin}"
REPS="${REPS:-3}" SECONDS_EACH="${SECONDS_EACH:-2}" CLIENTS="${CLIENTS:-4}" VALUE="${VALUE:-256KiB}"
make_work_dir
tmp="$WORK"
token=writer-bench-0123456789abcdef
echo "$token" > "$tmp/token"
echo "token $token tenant=a role=writer" > "$tmp/tokens"
common=(--listen=127.0.0.1:0 --disk-path= --ram-bytes=1GiB --metrics-listen= --shutdown-grace=0s)
"$BIN/kvcache-server" "${common[@]}" > "$tmp/open.log" 2>&1 &
OPEN_PID=$!
kill_at_exit OPEN_PID
"$BIN/kvcache-server" "${common[@]}" --auth-tokens="$tmp/tokens" > "$tmp/auth.log" 2>&1 &
AUTH_PID=$!
kill_at_exit AUTH_PID
open_addr="$(listen_addr "$tmp/open.log")"
auth_addr="$(listen_addr "$tmp/auth.log")"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() {  # addr target op [token-file]
  "$BIN/kvcache-bench" throughput --target="$2" --addr="$1" --op="$3" --value-bytes="$VALUE" \
    --clients="$CLIENTS" --seconds="$SECONDS_EACH" --warmup-seconds=0.3 --json \
    ${4:+--token-file=$4} | /usr/bin/python3 -c \
    'import json,sys; r=json.load(sys.stdin); print(r["ops_per_s"] if r["op"] == "lookup" else r["gbps"])'
}
printf '| path | op (Get/Put GB/s, Lookup calls/s) | no auth | --auth-tokens | ratio |\n|---|---|---|---|---|\n'
for target in kvcache kvcache-grpc; do
  for op in get put lookup; do
    : > "$tmp/a"; : > "$tmp/b"
    for _ in $(seq "$REPS"); do
      run "$open_addr" "$target" "$op" >> "$tmp/a"
      run "$auth_addr" "$target" "$op" "$tmp/token" >> "$tmp/b"
    done
    a="$(median < "$tmp/a")" b="$(median < "$tmp/b")"
    printf '| %s | %s | %s | %s | %.2fx |\n' "$target" "$op" "$a" "$b" \
      "$(echo "$b / $a" | bc -l)"
  done
done
