#!/usr/bin/env bash
# The demo: builds kvcache, starts a cache server, sends one long prompt to an inference
# worker twice (cold, then warm: its KV blocks come from the cache), and shows the stats.
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
scripts/setup.sh
BIN="${BUILD_DIR:-build}/bin"

make_work_dir
work="$WORK"
server_pid=""  # Set when the server starts; lib_cleanup stops it.
kill_at_exit server_pid

model="${BUILD_DIR:-build}/models/bench"
if [ ! -f "$model/config.json" ]; then
  echo "== making the bench model (about 100M parameters, random weights) in $model"
  "$BIN/kvcache-worker" make-model --out="$model" --preset=bench --seed=1
fi

echo "== starting kvcache-server (256 MiB RAM over a 1 GiB disk tier in $work/data)"
"$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes=256MiB --disk-path="$work/data" \
  --disk-bytes=1GiB --metrics-listen= --shutdown-grace=1s >"$work/server.log" 2>&1 &
# shellcheck disable=SC2034  # Read at exit, through kill_at_exit.
server_pid=$!
addr="$(listen_addr "$work/server.log")"
cat "$work/server.log"

# A long prompt: a shared "system prompt" of about 2,000 byte tokens.
for i in $(seq 25); do
  echo "Rule $i: answer briefly, cite the cached context, and never recompute a prefix twice."
done >"$work/prompt.txt"

for run in cold warm; do
  "$BIN/kvcache-worker" generate --model="$model" --cache="$addr" \
    --prompt-file="$work/prompt.txt" --max-new-tokens=8 --json >"$work/$run.json"
  printf '== %-4s request: prompt %5s tokens, %5s from the cache, time to first token %8.1f ms\n' \
    "$run" "$(json_field prompt_tokens <"$work/$run.json")" "$(json_field cached_tokens <"$work/$run.json")" \
    "$(json_field ttft_ms <"$work/$run.json")"
done
if cmp -s <(sed 's/.*"tokens": *\[\([^]]*\)\].*/\1/' "$work/cold.json") \
          <(sed 's/.*"tokens": *\[\([^]]*\)\].*/\1/' "$work/warm.json"); then
  echo "== the same tokens both times: $(sed 's/.*"tokens": *\[\([^]]*\)\].*/\1/' "$work/warm.json")"
else
  echo "== tokens differ between cold and warm runs" >&2
  exit 1
fi

echo "== cache stats"
"$BIN/kvcache-admin" --server="$addr" stats
