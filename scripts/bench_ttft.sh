#!/usr/bin/env bash
# Time to first token, cold (nothing cached) and warm (the same prompt again), for the bench
# model at several prompt lengths, through a real kvcache-server. Writes the table into
# docs/benchmarks.md (section "ttft") and prints it.
# Usage: scripts/bench_ttft.sh            env: LENGTHS="512 2048 4096" REPS=3
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
scripts/setup.sh >/dev/null
BIN="${BUILD_DIR:-build}/bin"
LENGTHS="${LENGTHS:-512 2048 4096}"
REPS="${REPS:-3}"

model="${BUILD_DIR:-build}/models/bench"
if [ ! -f "$model/config.json" ]; then
  echo "making the bench model in $model"
  "$BIN/kvcache-worker" make-model --out="$model" --preset=bench --seed=1
fi

make_work_dir
work="$WORK"
server_pid=""  # Set when the server starts; lib_cleanup stops it.
kill_at_exit server_pid
"$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes=4GiB --disk-path= --shutdown-grace=0s \
  --metrics-listen= >"$work/server.log" 2>&1 &
# shellcheck disable=SC2034  # Read at exit, through kill_at_exit.
server_pid=$!
addr="$(listen_addr "$work/server.log")"

# A prompt of $1 pseudo-random token ids below 32000, different for each seed $2.
prompt() { awk -v n="$1" -v s="$2" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%s%d", (i ? "," : ""), 1 + int(rand() * 31000) }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

table="$work/table.md"
{
  echo "| prompt tokens | cold TTFT (ms) | warm TTFT (ms) | cold / warm | cached tokens (warm) |"
  echo "| ---: | ---: | ---: | ---: | ---: |"
} >"$table"
for len in $LENGTHS; do
  : >"$work/cold" && : >"$work/warm"
  for rep in $(seq "$REPS"); do
    ids="$(prompt "$len" "$len$rep")"
    gen() { "$BIN/kvcache-worker" generate --model="$model" --cache="$addr" --prompt-ids="$ids" \
              --max-new-tokens=1 --json; }
    gen | tee "$work/c.json" | json_field ttft_ms >>"$work/cold"
    gen | tee "$work/w.json" | json_field ttft_ms >>"$work/warm"
    cached="$(json_field cached_tokens <"$work/w.json")"
    echo "len $len rep $rep: cold $(tail -1 "$work/cold") ms, warm $(tail -1 "$work/warm") ms, cached $cached" >&2
  done
  cold="$(median <"$work/cold")"
  warm="$(median <"$work/warm")"
  printf '| %d | %.0f | %.1f | %.1fx | %d |\n' "$len" "$cold" "$warm" \
    "$(awk -v c="$cold" -v w="$warm" 'BEGIN { print c / w }')" "$cached" >>"$table"
done

section="$work/section.md"
{
  echo "## Time to first token: cold vs warm"
  echo
  echo "The bench model (\`make-model --preset=bench --seed=1\`), one request at a time, greedy,"
  echo "\`--max-new-tokens=1\`, through a kvcache-server on loopback. Cold: the prompt was never"
  echo "seen; warm: the same prompt again, its full blocks fetched from the cache. Median of $REPS"
  echo "prompts per length. $(date -u +%Y-%m-%d), $(nproc) cores,"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
  echo
  cat "$table"
  echo
  echo "Made by: \`LENGTHS=\"$LENGTHS\" REPS=$REPS scripts/bench_ttft.sh\`"
} >"$section"
replace_section docs/benchmarks.md ttft "$section"
cat "$table"
