#!/usr/bin/env bash
# The bulk data path, side by side: kvcache vs Redis vs memcached vs a raw TCP ceiling, on
# loopback, driven by the same C++ loop (`kvcache-bench throughput`); plus iperf3, kvcache
# Lookup latency of a 64-key chain and the RAM tier's index bytes per block.
#
# Usage: scripts/bench_throughput.sh            (one command on a fresh Debian 12 machine)
#   QUICK=1             256 KiB and 4 MiB, 4 clients, 1 repetition (a minute or two)
#   REPS=3              repetitions per cell (medians are reported). Default: 3 (QUICK: 1)
#   CELL_SECONDS=2      measured seconds per cell (after a 0.3 s warm-up). Default: 2
#   SIZES="64KiB 256KiB 1MiB 4MiB"  CLIENTS="1 4 16"  TARGETS="kvcache redis memcached rawtcp"
#   STORE_MIB=1024      memory budget of each store (kvcache --ram-bytes, Redis maxmemory,
#                       memcached -m). Default: 1024
#   SKIP_SETUP=1        do not run scripts/setup.sh (use an existing build)
#   BIN_DIR=build/bin   where kvcache-server and kvcache-bench are
#   BENCH=...           the bench binary (default: $BIN_DIR/kvcache-bench)
#   DOC=docs/benchmarks.md  CHART=docs/benchmarks-throughput.png  (WRITE_DOC=0: print only)
#   RESULTS_DIR=...     keep raw JSON lines there (default: a temp dir, removed at exit)
#
# Method: for each value size the four servers are started afresh and each is filled past
# its memory budget with values of that size (so every store is full and evicting, as a
# cache in service is, and no store pays first-touch page faults the others do not). Get
# cells read a key set (~256 MiB, at most 1024 keys) written once per size; Put cells write
# fresh keys. Repetitions are interleaved (rep, then clients, then target), so drift on this
# shared machine hits every target alike; the table shows medians and kvcache's ratios to
# the peers measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ROOT="$(pwd)"
COMMAND_LINE="$(for v in QUICK REPS CELL_SECONDS SIZES CLIENTS TARGETS STORE_MIB; do
  if [ -n "${!v:-}" ]; then printf '%s=%q ' "$v" "${!v}"; fi; done)scripts/bench_throughput.sh $*"

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then
  SIZES="${SIZES:-256KiB 4MiB}"
  CLIENTS="${CLIENTS:-4}"
  REPS="${REPS:-1}"
fi
SIZES="${SIZES:-64KiB 256KiB 1MiB 4MiB}"
CLIENTS="${CLIENTS:-1 4 16}"
REPS="${REPS:-3}"
CELL_SECONDS="${CELL_SECONDS:-2}"
WARMUP_SECONDS="${WARMUP_SECONDS:-0.3}"
TARGETS="${TARGETS:-kvcache redis memcached rawtcp}"
STORE_MIB="${STORE_MIB:-1024}"
BIN_DIR="${BIN_DIR:-build/bin}"
BENCH="${BENCH:-$BIN_DIR/kvcache-bench}"
SERVER="${SERVER:-$BIN_DIR/kvcache-server}"
DOC="${DOC:-docs/benchmarks.md}"
CHART="${CHART:-docs/benchmarks-throughput.png}"
WRITE_DOC="${WRITE_DOC:-1}"
INDEX_BLOCKS="${INDEX_BLOCKS:-10000 100000 1000000}"

log() { echo "bench_throughput: $*" >&2; }

# --- Build and peers -------------------------------------------------------------------
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup.sh
fi
apt_install_missing redis-server redis-tools memcached gnuplot-nox iperf3 python3
# Debian starts the packaged services; we run our own instances on free ports instead.
for bin in "$BENCH" "$SERVER"; do
  [ -x "$bin" ] || { log "missing $bin (build first, or set BIN_DIR / BENCH)"; exit 1; }
done

# --- Processes ---------------------------------------------------------------------------
WORK="$(mktemp -d /tmp/kvcache-bench-throughput.XXXXXX)"
RESULTS_DIR="${RESULTS_DIR:-$WORK}"
mkdir -p "$RESULTS_DIR"
RESULTS="$RESULTS_DIR/results.jsonl"
: > "$RESULTS"
declare -A PID ADDR
cleanup() {
  for name in "${!PID[@]}"; do
    kill "${PID[$name]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ "$RESULTS_DIR" = "$WORK" ] && rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop_servers() {
  for name in "${!PID[@]}"; do
    kill "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    unset "PID[$name]"
  done
}

start_servers() {
  local t port
  for t in $TARGETS; do
    case "$t" in
      kvcache)
        "$SERVER" --listen=127.0.0.1:0 --ram-bytes="${STORE_MIB}MiB" --disk-path= --shutdown-grace=0s \
          --max-block-bytes=8MiB --metrics-listen= >"$WORK/kvcache.log" 2>&1 &
        PID[kvcache]=$!
        ADDR[kvcache]="$(listen_addr "$WORK/kvcache.log" 20)" ;;
      redis)
        port="$(free_port)"
        redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 \
          --maxmemory "${STORE_MIB}mb" --maxmemory-policy allkeys-lru \
          >"$WORK/redis.log" 2>&1 &
        PID[redis]=$!
        ADDR[redis]="127.0.0.1:$port" ;;
      memcached)
        port="$(free_port)"
        local user=()
        [ "$(id -u)" -eq 0 ] && user=(-u nobody)
        memcached "${user[@]}" -l 127.0.0.1 -p "$port" -I 8m -m "$STORE_MIB" \
          >"$WORK/memcached.log" 2>&1 &
        PID[memcached]=$!
        ADDR[memcached]="127.0.0.1:$port" ;;
      rawtcp)
        "$BENCH" throughput --serve-rawtcp --listen=127.0.0.1:0 >"$WORK/rawtcp.log" 2>&1 &
        PID[rawtcp]=$!
        ADDR[rawtcp]="$(listen_addr "$WORK/rawtcp.log" 20)" ;;
      *) log "unknown target $t"; exit 2 ;;
    esac
    wait_port "${ADDR[$t]}"
  done
}

# Runs one bench invocation; appends its JSON (plus "rep") to $RESULTS. A failed cell is
# recorded with its error and the run goes on.
cell() {
  local rep="$1"; shift
  local out
  if out="$("$BENCH" throughput "$@" --json 2>"$WORK/cell.err")"; then :; else
    log "cell failed: $* :: $(tail -c 300 "$WORK/cell.err") $(echo "$out" | tail -c 300)"
  fi
  out="$(echo "$out" | grep '^{' | tail -1)"
  [ -z "$out" ] && out="{\"failed\":true,\"args\":\"$*\"}"
  echo "{\"rep\":$rep,${out#\{}" >>"$RESULTS"
  echo "$out" | python3 -c 'import json,sys
d=json.loads(sys.stdin.read())
if "gbps" in d and "p50_us" in d:
  print("  %-9s %-6s %8d B x%-3d %7.3f GB/s  p50 %8.1f us  p99 %8.1f us%s" % (d["target"], d["op"],
    d["value_bytes"], d["clients"], d["gbps"], d["p50_us"], d["p99_us"],
    "  ERRORS %d/%d" % (d["errors"], d["verify_failures"]) if d["errors"] or d["verify_failures"] else ""))
else:
  print("  ", json.dumps(d)[:200])' >&2 || true
}

# --- The matrix --------------------------------------------------------------------------
START_TIME="$(date -u +%s)"
log "targets: $TARGETS | sizes: $SIZES | clients: $CLIENTS | reps: $REPS | ${CELL_SECONDS}s per cell"
for size in $SIZES; do
  start_servers
  log "$size: filling each store past its ${STORE_MIB} MiB budget"
  for t in $TARGETS; do
    [ "$t" = rawtcp ] && continue
    "$BENCH" throughput --target="$t" --addr="${ADDR[$t]}" --op=fill \
      --fill-bytes="$((STORE_MIB * 5 / 4))MiB" --value-bytes="$size" --clients=4 >/dev/null
  done
  declare -A NONCE=()
  for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
      for t in $TARGETS; do
        populate=false
        if [ -z "${NONCE[$t]:-}" ]; then NONCE[$t]=$RANDOM$RANDOM; populate=true; fi
        cell "$rep" --target="$t" --addr="${ADDR[$t]}" --op=get --value-bytes="$size" \
          --clients="$c" --seconds="$CELL_SECONDS" --warmup-seconds="$WARMUP_SECONDS" \
          --nonce="${NONCE[$t]}" --populate="$populate" --server-pid="${PID[$t]}"
      done
    done
  done
  for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
      for t in $TARGETS; do
        cell "$rep" --target="$t" --addr="${ADDR[$t]}" --op=put --value-bytes="$size" \
          --clients="$c" --seconds="$CELL_SECONDS" --warmup-seconds="$WARMUP_SECONDS" \
          --server-pid="${PID[$t]}"
      done
    done
  done
  stop_servers
done

# Lookup of a 64-key chain (kvcache only), 1 and 4 clients.
if [[ " $TARGETS " == *" kvcache "* ]]; then
  TARGETS_SAVED="$TARGETS"; TARGETS=kvcache; start_servers; TARGETS="$TARGETS_SAVED"
  for rep in $(seq "$REPS"); do
    for c in 1 4; do
      cell "$rep" --target=kvcache --addr="${ADDR[kvcache]}" --op=lookup --chain=64 \
        --clients="$c" --seconds="$CELL_SECONDS" --warmup-seconds="$WARMUP_SECONDS" \
        --server-pid="${PID[kvcache]}"
    done
  done
  stop_servers
fi

# RAM-tier index cost, in-process, one size per process.
for n in $INDEX_BLOCKS; do
  cell 1 --op=index-scale --blocks="$n" --value-bytes=64 --clients=1 --seconds=1
done

# The loopback ceiling by iperf3: one stream and four. (No port probe: `iperf3 -s -1`
# would take the probe for its one client.)
for p in 1 4; do
  port="$(free_port)"
  iperf3 -s -1 -p "$port" -B 127.0.0.1 >/dev/null 2>&1 &
  PID[iperf3]=$!
  out=""
  for _ in 1 2 3 4 5; do
    sleep 0.3
    out="$(iperf3 -c 127.0.0.1 -p "$port" -t 3 -P "$p" -J 2>/dev/null)" && break
    out=""
  done
  if [ -n "$out" ]; then
    echo "$out" | python3 -c 'import json,sys
d=json.load(sys.stdin); p=int(sys.argv[1])
print(json.dumps({"rep":1,"target":"iperf3","op":"stream","clients":p,
  "gbps":d["end"]["sum_received"]["bits_per_second"]/8/1e9}))' "$p" >>"$RESULTS" ||
      log "iperf3 -P $p: unreadable result"
  else
    log "iperf3 -P $p failed"
  fi
  kill "${PID[iperf3]}" 2>/dev/null || true
  wait "${PID[iperf3]}" 2>/dev/null || true
  unset "PID[iperf3]"
done
ELAPSED="$(( $(date -u +%s) - START_TIME ))"

# --- Report ------------------------------------------------------------------------------
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
export RESULTS REPS CELL_SECONDS WARMUP_SECONDS STORE_MIB ELAPSED CPU_MODEL COMMAND_LINE
export NPROC="$(nproc)" MEM_GIB="$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)"
export KERNEL="$(uname -r)" DATE="$(date -u '+%Y-%m-%d %H:%M UTC')" DOC CHART WRITE_DOC
export REDIS_VERSION="$(redis-server --version | grep -o 'v=[^ ]*' | cut -d= -f2)"
export MEMCACHED_VERSION="$(memcached -V | awk '{print $2}')"
export CHART_DATA="$WORK/chart.dat"
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain -- client services cachestore common proto 2>/dev/null)" ]; then
  GIT_REV="$GIT_REV + uncommitted changes in client/ services/ cachestore/ common/ proto/"
fi
GIT_REV="$GIT_REV (kvcache-server built $(date -u -r "$SERVER" '+%Y-%m-%d %H:%M UTC'))"
export GIT_REV
python3 "$ROOT/bench/throughput_report.py"

if [ "$WRITE_DOC" = 1 ] && command -v gnuplot >/dev/null; then
  gnuplot <<EOF
set terminal pngcairo size 1100,480 font "DejaVu Sans,10" noenhanced
set output "$CHART"
set multiplot layout 1,2 title "kvcache vs Redis vs memcached vs raw TCP, loopback, 4 clients (median GB/s; $DATE)"
set logscale x 2
set xrange [48:5600]
set xlabel "value size (KiB)"
set ylabel "GB/s (10^9 B/s)"
set yrange [0:*]
set key outside bottom center horizontal
set grid
set xtics ("64" 64, "256" 256, "1024" 1024, "4096" 4096)
set title "Get"
plot for [col=2:5] "$CHART_DATA" index 0 using 1:col with linespoints lw 2 title columnheader(col)
set title "Put"
plot for [col=2:5] "$CHART_DATA" index 1 using 1:col with linespoints lw 2 title columnheader(col)
unset multiplot
EOF
  log "wrote $CHART"
fi
