#!/usr/bin/env bash
# Cross-checks the harness's peer figures against each peer's own tool, next to kvcache, in
# one run: redis-benchmark vs `kvcache-bench throughput --target=redis` on one redis-server,
# and memcaslap (libmemcached-tools) vs `--target=memcached` on one memcached. Every store
# gets the same memory budget ($MIB MiB: redis maxmemory + allkeys-lru, memcached -m,
# kvcache --ram-bytes, RAM only), is started afresh for each value size and is filled past
# its budget first, so SET/Put evict. 4 clients,
# no pipelining. Medians of $REPS, the tools interleaved. Writes docs/benchmarks.md sections
# "redis-check" and "memcached-check" and prints the tables.
# Usage: scripts/bench_peer_check.sh   env: PEERS="redis memcached" SIZES="256KiB 4MiB"
#                                            REPS=3 MIB=1024
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
apt_install_missing redis-server redis-tools memcached libmemcached-tools
BIN="${BUILD_DIR:-build}/bin"
PEERS="${PEERS:-redis memcached}"
SIZES="${SIZES:-256KiB 4MiB}"
REPS="${REPS:-3}"
MIB="${MIB:-1024}"

make_work_dir
work="$WORK"
redis_pid="" mc_pid="" kv_pid=""
kill_at_exit redis_pid
kill_at_exit mc_pid
kill_at_exit kv_pid
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bytes_of() { case "$1" in *KiB) echo $(( ${1%KiB} * 1024 ));; *MiB) echo $(( ${1%MiB} * 1048576 ));; *) echo "$1";; esac; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0) ? a / b : 0 }'; }
harness() {  # harness TARGET ADDR OP VALUE
  local out rc=0
  out="$("$BIN/kvcache-bench" throughput --target="$1" --addr="$2" --op="$3" --value-bytes="$4" \
    --clients=4 --seconds=2 --warmup-seconds=0.3 --json 2>&1)" || rc=$?
  # A peer evicting under its memory budget can drop some of the keys the harness put just
  # before its GETs (Redis counts its clients' reply buffers against maxmemory): those come
  # back as misses, and GB/s counts the hits only, as redis-benchmark's figure here does.
  if [ "$rc" -ne 0 ] && [ "$3" = get ] && [ "$(json_field verify_failures <<<"$out")" = 0 ] &&
    grep -q '"first_error":"[a-z]*: miss"' <<<"$out"; then
    echo "kvcache-bench --target=$1 --op=get $4: $(json_field errors <<<"$out") misses, $(json_field ops <<<"$out") hits (GB/s of the hits)" >&2
    json_field gbps <<<"$out"
    return
  fi
  if [ "$rc" -ne 0 ]; then
    echo "kvcache-bench --target=$1 --op=$3 $4 exited $rc (counted as 0): $(tail -3 <<<"$out")" >&2
    echo 0
    return
  fi
  json_field gbps <<<"$out"
}
fill() {  # fill TARGET ADDR SIZE: 1.25x the budget in values of SIZE, so that what follows evicts
  # blocks of the size it writes (the steady state of a cache of one block size).
  "$BIN/kvcache-bench" throughput --target="$1" --addr="$2" --op=fill --value-bytes="$3" \
    --fill-bytes="$(( MIB * 5 / 4 ))MiB" --clients=4 >/dev/null ||
    echo "fill of $1 with $3 values failed: the cells that follow start from a part-filled store" >&2
}
# kvcache evicts least recently used, as its peers do here: under the default policy
# (reuse-density) a burst of new keys is evicted before the older ones it was compared with,
# so the harness's Get of the keys it has just put would miss. A fresh server per value size,
# as for the peers: each cell is the steady state of a cache of one block size.
start_kvcache() {
  "$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes="${MIB}MiB" --disk-path= \
    --shutdown-grace=0s --eviction=lru --metrics-listen= >"$work/kv.log" 2>&1 &
  kv_pid=$!
  kv="$(listen_addr "$work/kv.log" 30)"
}
stop_kvcache() { kill "$kv_pid"; wait "$kv_pid" 2>/dev/null || true; kv_pid=""; }

# "HITS MISSES" of a redis-server, from INFO stats.
redis_hits() {
  redis-cli -h "${1%:*}" -p "${1##*:}" info stats | tr -d '\r' |
    awk -F: '/^keyspace_hits:/ { h = $2 } /^keyspace_misses:/ { m = $2 } END { print h + 0, m + 0 }'
}
# SETs redis-benchmark's keys key:000000000000 .. key:<KEYS-1> (its -r names), BYTES each.
redis_populate() {  # redis_populate ADDR KEYS BYTES
  /usr/bin/python3 -c '
import sys
n, b = int(sys.argv[1]), int(sys.argv[2])
v, w = b"x" * b, sys.stdout.buffer
for i in range(n):
    k = b"key:%012d" % i
    w.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, b, v))
' "$2" "$3" | redis-cli -h "${1%:*}" -p "${1##*:}" --pipe >/dev/null
}

# The peer's own tool, one rep: "redis-benchmark" or "memcaslap", OP put|get, SIZE -> GB/s.
own_tool() {  # own_tool PEER ADDR OP BYTES
  local peer="$1" addr="$2" op="$3" b="$4"
  if [ "$peer" = redis ]; then
    local keys=$(( MIB * 1048576 / b / 2 ))  # Half the budget.
    local n=$(( 2000000000 / b )); [ "$n" -lt 200 ] && n=200
    local cmd=set; [ "$op" = get ] && cmd=get
    local rps before after
    # A GET of a key that was evicted is a nil reply of a few bytes, which redis-benchmark
    # counts as a GET all the same: so every key of its keyspace is SET first, and only
    # the GETs that hit (keyspace_hits, from INFO) count as values moved.
    [ "$op" = get ] && redis_populate "$addr" "$keys" "$b"
    before="$(redis_hits "$addr")"
    if ! redis-benchmark -h "${addr%:*}" -p "${addr##*:}" -t "$cmd" -d "$b" -n "$n" -c 4 \
           -r "$keys" --csv >"$work/rb.out" 2>&1; then
      echo "redis-benchmark $cmd $b failed (counted as 0): $(tail -3 "$work/rb.out")" >&2
      echo 0
      return
    fi
    after="$(redis_hits "$addr")"
    rps="$(grep '^"' "$work/rb.out" | tail -1 | cut -d, -f2 | tr -d '"')"
    if [ "$op" = get ]; then
      read -r h0 m0 <<<"$before"; read -r h1 m1 <<<"$after"
      echo "redis-benchmark GET $b: $(( h1 - h0 )) hits, $(( m1 - m0 )) misses" >&2
      awk -v r="$rps" -v b="$b" -v h=$(( h1 - h0 )) -v m=$(( m1 - m0 )) \
        'BEGIN { print (h + m > 0) ? r * b * h / (h + m) / 1e9 : 0 }'
    else
      awk -v r="$rps" -v b="$b" 'BEGIN { print r * b / 1e9 }'
    fi
    return
  fi
  # memcaslap: 4 threads of one connection each, 64-byte keys, fixed-size values, SET only or
  # GET only. For GET it first SETs its window of keys (1k a connection); GB/s counts hits.
  local set=1 get=0; [ "$op" = get ] && set=0 get=1
  printf 'key\n64 64 1\nvalue\n%d %d 1\ncmd\n0 %d\n1 %d\n' "$b" "$b" "$set" "$get" >"$work/mc.cfg"
  memcaslap -s "$addr" -F "$work/mc.cfg" -T 4 -c 4 -t 2s -w 1k >"$work/mc.out" 2>&1
  awk -v b="$b" -v op="$op" '
    /^cmd_get:/ { g = $2 } /^cmd_set:/ { s = $2 } /^get_misses:/ { m = $2 }
    /^Run time:/ { t = $3; sub("s", "", t) }
    END { n = (op == "get") ? g - m : s; print (t > 0) ? n * b / t / 1e9 : 0 }' "$work/mc.out"
}

start_peer() {  # start_peer PEER: a fresh store on a random port; sets addr
  local port=$(( 20000 + RANDOM % 20000 ))
  if [ "$1" = redis ]; then
    redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 --maxmemory "${MIB}mb" \
      --maxmemory-policy allkeys-lru >"$work/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  else
    user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)
    memcached "${user[@]}" -l 127.0.0.1 -p "$port" -I 8m -m "$MIB" >"$work/memcached.log" 2>&1 &
    mc_pid=$!
    wait_port "127.0.0.1:$port"
  fi
  addr="127.0.0.1:$port"
}
stop_peer() {
  if [ "$1" = redis ]; then kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""
  else kill "$mc_pid"; wait "$mc_pid" 2>/dev/null || true; mc_pid=""; fi
}

section="$work/section.md"
for peer in $PEERS; do
  if [ "$peer" = redis ]; then
    tool=redis-benchmark
    version="Redis $(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2) with \`--maxmemory ${MIB}mb --maxmemory-policy allkeys-lru\`"
    how="redis-benchmark: \`-t set|get -d BYTES -c 4 -r KEYS\` (random keys of a keyspace of half the budget, no pipelining; before a GET run every key of that keyspace is SET, and GB/s counts the GETs that hit, from INFO's keyspace_hits)"
  else
    tool=memcaslap
    version="memcached $(memcached -V | cut -d' ' -f2) with \`-m ${MIB} -I 8m\`"
    how="memcaslap: \`-T 4 -c 4 -t 2s -w 1k\` with a SET-only or GET-only command mix, 64-byte keys (it refuses values over 1 MiB, so 4 MiB has no cross-check); GET counts hits only"
  fi
  table="$work/table_$peer.md"
  {
    echo "| value | op | $tool | kvcache-bench --target=$peer | harness / $tool | kvcache | kvcache / $tool | kvcache / harness's $peer |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  } >"$table"
  for size in $SIZES; do
    b="$(bytes_of "$size")"
    start_peer "$peer"
    start_kvcache
    fill "$peer" "$addr" "$size"
    fill kvcache-tcp "$kv" "$size"  # The target measured below.
    for op in put get; do : >"$work/o_$op" && : >"$work/h_$op" && : >"$work/k_$op"; done
    for _ in $(seq "$REPS"); do
      for op in put get; do
        if [ "$peer" = memcached ] && [ "$b" -gt 1048576 ]; then echo 0 >>"$work/o_$op"
        else own_tool "$peer" "$addr" "$op" "$b" >>"$work/o_$op"; fi
        harness "$peer" "$addr" "$op" "$size" >>"$work/h_$op"
        # Over TCP, as the peers are: a same-host client would take shared memory instead
        # (scripts/bench_local.sh measures that path).
        harness kvcache-tcp "$kv" "$op" "$size" >>"$work/k_$op"
      done
    done
    stop_peer "$peer"
    stop_kvcache
    for op in put get; do
      o="$(median <"$work/o_$op")"; h="$(median <"$work/h_$op")"; k="$(median <"$work/k_$op")"
      echo "$peer $size $op: $tool $(tr '\n' ' ' <"$work/o_$op")| harness $(tr '\n' ' ' <"$work/h_$op")| kvcache $(tr '\n' ' ' <"$work/k_$op")" >&2
      if awk -v o="$o" 'BEGIN { exit !(o > 0) }'; then
        printf '| %s | %s | %.2f | %.2f | %.2fx | %.2f | **%.2fx** | %.2fx |\n' "$size" \
          "$([ "$op" = put ] && echo "SET / Put" || echo "GET / Get")" "$o" "$h" \
          "$(ratio "$h" "$o")" "$k" "$(ratio "$k" "$o")" "$(ratio "$k" "$h")" >>"$table"
      else
        printf '| %s | %s | - | %.2f | - | %.2f | - | %.2fx |\n' "$size" \
          "$([ "$op" = put ] && echo "SET / Put" || echo "GET / Get")" "$h" "$k" \
          "$(ratio "$k" "$h")" >>"$table"
      fi
    done
  done
  {
    echo "## Cross-check: the harness's $peer figures vs $tool"
    echo
    echo "$version, kvcache with"
    echo "\`--ram-bytes=${MIB}MiB --disk-path= --eviction=lru\`, both started afresh for each value size and filled to 1.25x"
    echo "the budget with values of that size first (so SET/Put evict values of their own size)."
    echo "$how; the harness: \`kvcache-bench throughput --target=$peer|kvcache-tcp"
    echo "--op=put|get --clients=4 --seconds=2\`. GB/s of values (10⁹ B/s), **median of $REPS**, the three"
    echo "interleaved in one run, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the"
    echo "end (shared with other sessions' builds)."
    echo
    cat "$table"
    echo
    echo "Made by: \`PEERS=$peer SIZES=\"$SIZES\" REPS=$REPS MIB=$MIB scripts/bench_peer_check.sh\`"
  } >"$section"
  replace_section docs/benchmarks.md "$peer-check" "$section"
  cat "$table"
done
