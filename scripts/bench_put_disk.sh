#!/usr/bin/env bash
# Put with a disk tier vs without one, in one run: two fresh kvcache-servers of the same RAM
# tier ($RAM), one RAM only, one over a RocksDB disk tier (a temp dir); each is filled past
# its RAM capacity so that every Put evicts (and, with the disk, demotes a victim), then Put
# is measured $REPS times per server, interleaved: as fast as the clients can, then at each
# offered rate of $RATES (Puts a second, all clients together: the disk keeping up when the
# rate is below what it can write). Writes the table into docs/benchmarks.md (section
# "put-disk") and prints it.
# Usage: scripts/bench_put_disk.sh     env: RAM=512MiB VALUE=256KiB CLIENTS=4 REPS=3 SECONDS_=1
#                                           RATES="200"
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN="${BUILD_DIR:-build}/bin"
RAM="${RAM:-512MiB}"
VALUE="${VALUE:-256KiB}"
CLIENTS="${CLIENTS:-4}"
REPS="${REPS:-3}"
SECS="${SECONDS_:-1}"
RATES="${RATES:-200}"

make_work_dir
work="$WORK"
ram_pid="" disk_pid=""
kill_at_exit ram_pid
kill_at_exit disk_pid
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
start() {  # start NAME EXTRA_FLAGS...
  local name="$1"; shift
  "$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes="$RAM" --shutdown-grace=0s \
    --metrics-listen= "$@" >"$work/$name.log" 2>&1 &
}
start ram --disk-path=
ram_pid=$!
start disk --disk-path="$work/disk" --disk-bytes=16GiB
disk_pid=$!
ram_addr="$(listen_addr "$work/ram.log" 30)"
disk_addr="$(listen_addr "$work/disk.log" 30)"
for addr in "$ram_addr" "$disk_addr"; do
  "$BIN/kvcache-bench" throughput --target=kvcache --addr="$addr" --op=fill --value-bytes="$VALUE" \
    --fill-bytes="$(( $(echo "$RAM" | sed 's/MiB//') * 3 / 2 ))MiB" --clients="$CLIENTS" >/dev/null
done
put() {  # put ADDR RATE -> "GB/s p50 p99"
  "$BIN/kvcache-bench" throughput --target=kvcache --addr="$1" --op=put --value-bytes="$VALUE" \
    --clients="$CLIENTS" --seconds="$SECS" --warmup-seconds=0.2 --rate="$2" --json >"$work/p.json"
  echo "$(json_field gbps <"$work/p.json") $(json_field p50_us <"$work/p.json") $(json_field p99_us <"$work/p.json")"
}
table="$work/table.md"
{
  echo "| offered | server | Put GB/s | Put p50 µs | Put p99 µs | GB/s vs RAM only |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
} >"$table"
for rate in 0 $RATES; do
  : >"$work/ram.txt" && : >"$work/disk.txt"
  for _ in $(seq "$REPS"); do
    put "$ram_addr" "$rate" >>"$work/ram.txt"
    put "$disk_addr" "$rate" >>"$work/disk.txt"
  done
  echo "rate $rate: RAM only: $(tr "\n" ";" <"$work/ram.txt")  with disk: $(tr "\n" ";" <"$work/disk.txt")" >&2
  col() { cut -d" " -f"$1" "$2" | median; }
  r="$(col 1 "$work/ram.txt")"; d="$(col 1 "$work/disk.txt")"
  offered="as fast as $CLIENTS clients can"
  [ "$rate" != 0 ] && offered="$rate Puts/s ($(awk -v r="$rate" -v b="$(json_field value_bytes <"$work/p.json")" 'BEGIN { printf "%.2f", r * b / 1e9 }') GB/s)"
  printf '| %s | RAM only, --ram-bytes=%s | %.2f | %.0f | %.0f | 100%% |\n' "$offered" "$RAM" \
    "$r" "$(col 2 "$work/ram.txt")" "$(col 3 "$work/ram.txt")" >>"$table"
  printf '| %s | the same RAM over a disk tier (every Put demotes a victim) | %.2f | %.0f | %.0f | **%.0f%%** |\n' \
    "$offered" "$d" "$(col 2 "$work/disk.txt")" "$(col 3 "$work/disk.txt")" \
    "$(awk -v a="$d" -v b="$r" 'BEGIN { print 100 * a / b }')" >>"$table"
done
stats="$("$BIN/kvcache-admin" stats --server="$disk_addr" --json 2>/dev/null || true)"
section="$work/section.md"
{
  echo "## Put with a disk tier vs without"
  echo
  echo "Two fresh kvcache-servers with the same RAM tier (\`--ram-bytes=$RAM\`), one RAM only, one"
  echo "over a RocksDB disk tier, each filled to 1.5x its RAM so every Put evicts and, with the"
  echo "disk, demotes the victim through the background writer. Each cell: \`kvcache-bench throughput"
  echo "--target=kvcache --op=put --value-bytes=$VALUE --clients=$CLIENTS --seconds=$SECS [--rate=R]\`, **median of $REPS**,"
  echo "the two servers interleaved in one run, $(date -u +%Y-%m-%d), $(nproc) cores, load average"
  echo "$(cut -d' ' -f1-3 /proc/loadavg) at the end (shared with other sessions' builds: read the ratio)."
  echo "Stats of the disk server after the run: $(echo "$stats" | grep -o '"demotions": *[0-9]*' | sed -n 2p),"
  echo "demotion waits (Puts that wrote their own victim because the queue was full):"
  echo "$(echo "$stats" | grep -o '"demotion_waits": *[0-9]*' | head -1 || echo 'not shown by kvcache-admin stats; see the kvcache_tier_demotion_waits_total metric')."
  echo
  cat "$table"
  echo
  echo "With \`--rate\` each client starts its Puts on a schedule and a latency counts from the"
  echo "scheduled start, so a Put that waited behind a slow one is not hidden."
  echo
  echo "Made by: \`RAM=$RAM VALUE=$VALUE CLIENTS=$CLIENTS REPS=$REPS RATES=\"$RATES\" scripts/bench_put_disk.sh\`"
} >"$section"
replace_section docs/benchmarks.md put-disk "$section"
cat "$table"
