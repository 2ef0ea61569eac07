#!/usr/bin/env bash
# Put into an empty RAM tier vs a full one: without the RAM-tier arena (--ram-arena=false),
# with it as by default (on transparent huge pages) and with it on 4 KiB pages
# (--ram-huge-pages=false), in one run: each configuration gets a fresh kvcache-server (RAM only,
# $RAM), waits for its arena to be faulted in (resident size), measures Put $REPS times
# while the tier is still mostly empty, fills it past its capacity, and measures Put again:
# at once, and after $IDLE s without Puts (so that the full tier's buffers have gone as long
# untouched as the arena's had in the empty run: on this kind of VM a write to memory nobody
# wrote for a minute can cost far more than one to memory written seconds ago).
# Writes the table into docs/benchmarks.md (section "put-fill") and prints it.
# Usage: scripts/bench_put_fill.sh     env: RAM=4GiB VALUE=256KiB CLIENTS=4 REPS=3 SECONDS_=0.4
#                                           IDLE=60
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN="${BUILD_DIR:-build}/bin"
RAM="${RAM:-4GiB}"
VALUE="${VALUE:-256KiB}"
CLIENTS="${CLIENTS:-4}"
REPS="${REPS:-3}"
SECS="${SECONDS_:-0.4}"
IDLE="${IDLE:-60}"

make_work_dir
work="$WORK"
server_pid=""
kill_at_exit server_pid
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
huge_kib() { awk '/AnonHugePages/ { print $2 }' "/proc/$1/smaps_rollup"; }
put() {
  "$BIN/kvcache-bench" throughput --target=kvcache --addr="$addr" --op=put --value-bytes="$VALUE" \
    --clients="$CLIENTS" --seconds="$SECS" --warmup-seconds=0.1 --server-pid="$server_pid" --json |
    json_field gbps
}

table="$work/table.md"
{
  echo "| RAM tier | Put into empty (GB/s) | into full, just filled | into full, after ${IDLE} s idle | empty / full just filled | empty / full after idle | server RSS before the first Put | of it on huge pages | start to arena faulted in |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$table"
# --ram-arena=false; the default (the arena on huge pages); the arena on 4 KiB pages.
for config in "--ram-arena=false" "" "--ram-huge-pages=false"; do
  arena=true
  [ "$config" = "--ram-arena=false" ] && arena=false
  start=$(date +%s.%N)
  "$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes="$RAM" --disk-path= --shutdown-grace=0s \
    --metrics-listen= $config >"$work/server.log" 2>&1 &
  server_pid=$!
  addr="$(listen_addr "$work/server.log" 30)"
  ready="-"
  if [ "$arena" = true ]; then
    # Faulted in when the resident size stops growing (the arena's background thread).
    last=0
    for _ in $(seq 600); do
      sleep 0.5
      now="$(rss_kib "$server_pid")"
      [ "$now" -le "$last" ] && break
      last="$now"
    done
    ready="$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')"
  fi
  rss="$(awk -v k="$(rss_kib "$server_pid")" 'BEGIN { printf "%.2f GiB", k / 1048576 }')"
  huge="$(awk -v k="$(huge_kib "$server_pid")" 'BEGIN { printf "%.2f GiB", k / 1048576 }')"
  : >"$work/empty" && : >"$work/full" && : >"$work/idle"
  for _ in $(seq "$REPS"); do put >>"$work/empty"; done
  "$BIN/kvcache-bench" throughput --target=kvcache --addr="$addr" --op=fill --value-bytes="$VALUE" \
    --fill-bytes="$(( $(echo "$RAM" | sed 's/GiB//') * 5 / 4 ))GiB" --clients="$CLIENTS" >/dev/null
  for _ in $(seq "$REPS"); do put >>"$work/full"; done
  sleep "$IDLE"
  for _ in $(seq "$REPS"); do put >>"$work/idle"; done
  e="$(median <"$work/empty")"; f="$(median <"$work/full")"; i="$(median <"$work/idle")"
  echo "${config:-default}: empty $(tr '\n' ' ' <"$work/empty")| full $(tr '\n' ' ' <"$work/full")| after idle $(tr '\n' ' ' <"$work/idle")" >&2
  printf '| %s%s | %.2f | %.2f | %.2f | %.0f%% | **%.0f%%** | %s | %s | %s |\n' "$RAM" \
    "$([ -n "$config" ] && echo ", $config" || echo " (the default: arena, huge pages)")" "$e" "$f" "$i" \
    "$(awk -v e="$e" -v f="$f" 'BEGIN { print 100 * e / f }')" \
    "$(awk -v e="$e" -v f="$i" 'BEGIN { print 100 * e / f }')" "$rss" "$huge" "$ready" >>"$table"
  kill "$server_pid"; wait "$server_pid" || true
  server_pid=""
done

section="$work/section.md"
{
  echo "## Put into an empty vs a full RAM tier"
  echo
  echo "\`kvcache-bench throughput --target=kvcache --op=put --value-bytes=$VALUE --clients=$CLIENTS"
  echo "--seconds=$SECS\` against a fresh RAM-only kvcache-server of \`--ram-bytes=$RAM\`: **median of"
  echo "$REPS** while the tier is still mostly empty, then again after \`--op=fill\` wrote 1.25x its"
  echo "capacity (so Put evicts): at once, and again after $IDLE s without Puts. Without the arena"
  echo "(\`--ram-arena=false\`) every Put into the empty tier faults its payload's pages in; with it (the"
  echo "default since issue 12) the payloads are received into chunks of one region that a background"
  echo "thread faulted in from the start (the resident size is the capacity from then on) and eviction"
  echo "recycles; by default the region is advised for transparent huge pages, with"
  echo "\`--ram-huge-pages=false\` it stays on 4 KiB pages. All three configurations in one run,"
  echo "$(date -u +%Y-%m-%d), $(nproc) cores,"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end (shared with other sessions' builds:"
  echo "read the ratios)."
  echo
  cat "$table"
  echo
  echo "Made by: \`RAM=$RAM VALUE=$VALUE CLIENTS=$CLIENTS REPS=$REPS IDLE=$IDLE scripts/bench_put_fill.sh\`"
} >"$section"
replace_section docs/benchmarks.md put-fill "$section"
cat "$table"
