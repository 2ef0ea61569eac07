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

# A worker with the model resident, as in production: `generate --worker` sends it requests.
worker_pid=""
kill_at_exit worker_pid
"$BIN/kvcache-worker" serve --model="$model" --cache="$addr" --listen=127.0.0.1:0 \
  --shutdown-grace=0s >"$work/worker.log" 2>&1 &
# shellcheck disable=SC2034  # Read at exit, through kill_at_exit.
worker_pid=$!
worker="$(listen_addr "$work/worker.log" 60)"

table="$work/table.md"
breakdown="$work/breakdown.md"
{
  echo "| prompt tokens | one-shot cold (ms) | one-shot warm (ms) | cold / warm | serve cold (ms) | serve warm (ms) | cold / warm | cached tokens (warm) |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$table"
{
  echo "| prompt tokens | run | warm TTFT | lookup | fetch | place | compute | rest | model load (one-shot) |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$breakdown"
fields="ttft_ms lookup_ms fetch_ms place_ms compute_ms model_load_ms"
for len in $LENGTHS; do
  full=$((len / 16 * 16))
  for f in cold warm scold swarm; do : >"$work/$f"; done
  for f in $fields; do : >"$work/one_$f"; : >"$work/srv_$f"; done
  for rep in $(seq "$REPS"); do
    # One-shot: each command loads the model (not part of TTFT) and exits.
    ids="$(prompt "$len" "$len$rep")"
    gen() { "$BIN/kvcache-worker" generate --model="$model" --cache="$addr" --prompt-ids="$ids" \
              --max-new-tokens=1 --json; }
    gen | tee "$work/c.json" | json_field ttft_ms >>"$work/cold"
    gen | tee "$work/w.json" | json_field ttft_ms >>"$work/warm"
    for f in $fields; do json_field "$f" <"$work/w.json" >>"$work/one_$f"; done
    cached="$(json_field cached_tokens <"$work/w.json")"
    # Served: another prompt, so that its cold run is cold. Publishing runs in the worker's
    # background after the reply: the warm run is retried until it finds the whole prompt.
    sids="$(prompt "$len" "9$len$rep")"  # Numeric: awk seeds a word as 0.
    sgen() { "$BIN/kvcache-worker" generate --worker="$worker" --prompt-ids="$sids" \
               --max-new-tokens=1 --json; }
    sgen | json_field ttft_ms >>"$work/scold"
    for _ in $(seq 20); do
      sgen >"$work/sw.json"
      [ "$(json_field cached_tokens <"$work/sw.json")" -ge "$full" ] && break
      sleep 0.5
    done
    json_field ttft_ms <"$work/sw.json" >>"$work/swarm"
    for f in $fields; do json_field "$f" <"$work/sw.json" >>"$work/srv_$f"; done
    echo "len $len rep $rep: one-shot cold $(tail -1 "$work/cold") warm $(tail -1 "$work/warm") ms;" \
      "serve cold $(tail -1 "$work/scold") warm $(tail -1 "$work/swarm") ms" >&2
  done
  cold="$(median <"$work/cold")"; warm="$(median <"$work/warm")"
  scold="$(median <"$work/scold")"; swarm="$(median <"$work/swarm")"
  printf '| %d | %.0f | %.1f | %.1fx | %.0f | %.1f | **%.1fx** | %d |\n' "$len" "$cold" "$warm" \
    "$(awk -v c="$cold" -v w="$warm" 'BEGIN { print c / w }')" "$scold" "$swarm" \
    "$(awk -v c="$scold" -v w="$swarm" 'BEGIN { print c / w }')" "$cached" >>"$table"
  for run in one srv; do
    m() { median <"$work/${run}_$1"; }
    t="$(m ttft_ms)"; l="$(m lookup_ms)"; fe="$(m fetch_ms)"; p="$(m place_ms)"; co="$(m compute_ms)"
    load="-"; [ "$run" = one ] && load="$(printf '%.0f' "$(m model_load_ms)")"
    printf '| %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n' "$len" \
      "$([ "$run" = one ] && echo one-shot || echo serve)" "$t" "$l" "$fe" "$p" "$co" \
      "$(awk -v t="$t" -v a="$l" -v b="$fe" -v c="$p" -v d="$co" 'BEGIN { r = t - a - b - c - d; print (r < 0 ? 0 : r) }')" \
      "$load" >>"$breakdown"
  done
done

section="$work/section.md"
{
  echo "## Time to first token: cold vs warm"
  echo
  echo "The bench model (\`make-model --preset=bench --seed=1\`, 96 MiB of KV at 4096 tokens),"
  echo "one request at a time, greedy, \`--max-new-tokens=1\`, through a kvcache-server on"
  echo "loopback. Cold: the prompt was never seen; warm: the same prompt again, its full blocks"
  echo "fetched from the cache. **one-shot**: \`kvcache-worker generate --model\` per request (the"
  echo "model loaded per process, not counted in TTFT; every buffer is fresh memory). **serve**:"
  echo "\`kvcache-worker serve\` with the model resident, driven by \`generate --worker\`, as in"
  echo "production. Median of $REPS prompts per length, the same run for every column."
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end: this machine is shared with other"
  echo "sessions' builds, so absolute times swing several-fold; read the ratios."
  echo
  cat "$table"
  echo
  echo "Where the warm TTFT goes (\`generate --json\` fields, medians, ms): lookup is the cache's"
  echo "Lookup call, fetch the Get calls (network and checksums), place checking the blocks and"
  echo "making them KV pages (no copy: a fetched payload is the page), compute the last prompt"
  echo "position over the cached context and the first token's logits."
  echo
  cat "$breakdown"
  echo
  echo "Made by: \`LENGTHS=\"$LENGTHS\" REPS=$REPS scripts/bench_ttft.sh\`"
} >"$section"
replace_section docs/benchmarks.md ttft "$section"
cat "$table" "$breakdown"
