#!/usr/bin/env bash
# Cross-checks the harness's Redis figures against Redis's own tool: redis-benchmark vs
# `kvcache-bench throughput --target=redis` on the same redis-server, next to kvcache, in one
# run. Both stores get the same memory budget ($MIB MiB: redis maxmemory + allkeys-lru,
# kvcache --ram-bytes, RAM only) and are filled past it first, so SET/Put evict. 4 clients,
# no pipelining; redis-benchmark SETs random keys of a keyspace (-r) and GETs the same
# keyspace. Medians of $REPS, the tools interleaved. Writes docs/benchmarks.md section
# "redis-check" and prints the table.
# Usage: scripts/bench_redis_check.sh   env: SIZES="256KiB 4MiB" REPS=3 MIB=1024
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
apt_install_missing redis-server redis-tools
BIN="${BUILD_DIR:-build}/bin"
SIZES="${SIZES:-256KiB 4MiB}"
REPS="${REPS:-3}"
MIB="${MIB:-1024}"

make_work_dir
work="$WORK"
redis_pid="" kv_pid=""
kill_at_exit redis_pid
kill_at_exit kv_pid
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bytes_of() { case "$1" in *KiB) echo $(( ${1%KiB} * 1024 ));; *MiB) echo $(( ${1%MiB} * 1048576 ));; *) echo "$1";; esac; }
port=$(( 20000 + RANDOM % 20000 ))
redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 --maxmemory "${MIB}mb" \
  --maxmemory-policy allkeys-lru >"$work/redis.log" 2>&1 &
redis_pid=$!
"$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes="${MIB}MiB" --disk-path= --shutdown-grace=0s \
  --metrics-listen= >"$work/kv.log" 2>&1 &
kv_pid=$!
kv="$(listen_addr "$work/kv.log" 30)"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
harness() {  # harness TARGET ADDR OP VALUE
  "$BIN/kvcache-bench" throughput --target="$1" --addr="$2" --op="$3" --value-bytes="$4" \
    --clients=4 --seconds=2 --warmup-seconds=0.3 --json | json_field gbps
}
for t in redis kvcache; do
  a="127.0.0.1:$port"; [ "$t" = kvcache ] && a="$kv"
  "$BIN/kvcache-bench" throughput --target="$t" --addr="$a" --op=fill --value-bytes=256KiB \
    --fill-bytes="$(( MIB * 5 / 4 ))MiB" --clients=4 >/dev/null
done
table="$work/table.md"
{
  echo "| value | op | redis-benchmark | kvcache-bench --target=redis | harness / redis-benchmark | kvcache | kvcache / redis-benchmark | kvcache / harness's redis |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} >"$table"
for size in $SIZES; do
  b="$(bytes_of "$size")"
  keys=$(( MIB * 1048576 / b / 2 ))  # Half the budget: GETs mostly hit.
  n=$(( 2000000000 / b )); [ "$n" -lt 200 ] && n=200
  for op in put get; do : >"$work/rb_$op" && : >"$work/h_$op" && : >"$work/k_$op"; done
  for _ in $(seq "$REPS"); do
    for op in put get; do
      cmd=set; [ "$op" = get ] && cmd=get
      rps="$(redis-benchmark -h 127.0.0.1 -p "$port" -t "$cmd" -d "$b" -n "$n" -c 4 -r "$keys" --csv 2>/dev/null |
             tail -1 | cut -d, -f2 | tr -d '"')"
      awk -v r="$rps" -v b="$b" 'BEGIN { print r * b / 1e9 }' >>"$work/rb_$op"
      harness redis "127.0.0.1:$port" "$op" "$size" >>"$work/h_$op"
      harness kvcache "$kv" "$op" "$size" >>"$work/k_$op"
    done
  done
  for op in put get; do
    rb="$(median <"$work/rb_$op")"; h="$(median <"$work/h_$op")"; k="$(median <"$work/k_$op")"
    echo "$size $op: redis-benchmark $(tr '\n' ' ' <"$work/rb_$op")| harness $(tr '\n' ' ' <"$work/h_$op")| kvcache $(tr '\n' ' ' <"$work/k_$op")" >&2
    printf '| %s | %s | %.2f | %.2f | %.2fx | %.2f | **%.2fx** | %.2fx |\n' "$size" \
      "$([ "$op" = put ] && echo "SET / Put" || echo "GET / Get")" "$rb" "$h" \
      "$(awk -v a="$h" -v b="$rb" 'BEGIN { print a / b }')" "$k" \
      "$(awk -v a="$k" -v b="$rb" 'BEGIN { print a / b }')" \
      "$(awk -v a="$k" -v b="$h" 'BEGIN { print a / b }')" >>"$table"
  done
done
section="$work/section.md"
{
  echo "## Cross-check: the harness's Redis figures vs redis-benchmark"
  echo
  echo "Redis $(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2) with \`--maxmemory ${MIB}mb --maxmemory-policy allkeys-lru\`, kvcache with"
  echo "\`--ram-bytes=${MIB}MiB --disk-path=\`, both filled to 1.25x the budget first (so SET/Put evict)."
  echo "redis-benchmark: \`-t set|get -d BYTES -c 4 -r KEYS\` (random keys of a keyspace of half the"
  echo "budget, no pipelining); the harness: \`kvcache-bench throughput --target=redis|kvcache"
  echo "--op=put|get --clients=4 --seconds=2\`. GB/s of values (10⁹ B/s), **median of $REPS**, the three"
  echo "interleaved in one run, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the"
  echo "end (shared with other sessions' builds). memcaslap (libmemcached-tools) is not run yet."
  echo
  cat "$table"
  echo
  echo "Made by: \`SIZES=\"$SIZES\" REPS=$REPS MIB=$MIB scripts/bench_redis_check.sh\`"
} >"$section"
replace_section docs/benchmarks.md redis-check "$section"
cat "$table"
