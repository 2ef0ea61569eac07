#!/usr/bin/env bash
# The same-host path (shared memory) against the TCP data channel, side by side in one run:
# Get and Put of $SIZES values, $CLIENTS clients, against one RAM-only kvcache-server per
# value size, `kvcache-bench throughput --target=kvcache` (picks the same-host path by
# itself: the server is on this machine) vs `--target=kvcache-tcp` (the TCP data channel
# forced in the client). Repetitions are interleaved (rep, clients, target) so drift on this
# shared machine hits both alike; the table shows medians of $REPS and the ratio.
# Writes the table into docs/benchmarks.md (section "same-host") and prints it.
# A Get fetches one key, or $GET_KEYS consecutive keys as a worker fetches a prompt's blocks.
# Usage: scripts/bench_local.sh     env: SIZES="256KiB 4MiB" CLIENTS="1 4" GET_KEYS="1 16" REPS=3
#                                        CELL_SECONDS=2 STORE_MIB=1024 WRITE_DOC=1
#                                        SERVER_FLAGS="--ram-huge-pages=false" (more server flags)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN="${BUILD_DIR:-build}/bin"
SIZES="${SIZES:-256KiB 4MiB}"
CLIENTS="${CLIENTS:-1 4}"
GET_KEYS="${GET_KEYS:-1 16}"
REPS="${REPS:-3}"
CELL_SECONDS="${CELL_SECONDS:-2}"
SERVER_FLAGS="${SERVER_FLAGS:-}"
STORE_MIB="${STORE_MIB:-1024}"
WRITE_DOC="${WRITE_DOC:-1}"
TARGETS="kvcache kvcache-tcp"

make_work_dir
work="$WORK"
server_pid=""
kill_at_exit server_pid
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

# cell OP SIZE CLIENTS TARGET REP [extra flags]: appends "op size clients target gbps p50"
cell() {
  local op="$1" size="$2" c="$3" t="$4"; shift 4
  local out
  out="$("$BIN/kvcache-bench" throughput --target="$t" --addr="$addr" --op="${op%/*}" \
    --value-bytes="$size" --clients="$c" --seconds="$CELL_SECONDS" --warmup-seconds=0.3 \
    --server-pid="$server_pid" --json "$@" 2>"$work/cell.err" | grep '^{' | tail -1)" || true
  local gbps p50 errors
  gbps="$(echo "$out" | json_field gbps)"; p50="$(echo "$out" | json_field p50_us)"
  errors="$(echo "$out" | json_field errors)"
  if [ -z "$gbps" ] || [ "${errors:-1}" != 0 ]; then
    echo "bench_local: cell failed: $op $size x$c $t: $(tail -c 300 "$work/cell.err") $(echo "$out" | tail -c 200)" >&2
    return 0
  fi
  echo "$op $size $c $t $gbps $p50" >>"$work/cells"
  printf '  %-5s %-7s x%-2s %-12s %7.3f GB/s  p50 %8.1f us\n' "$op" "$size" "$c" "$t" "$gbps" "$p50" >&2
}

: >"$work/cells"
for size in $SIZES; do
  "$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes="${STORE_MIB}MiB" --disk-path= \
    --shutdown-grace=0s --max-block-bytes=8MiB --metrics-listen= --ram-arena $SERVER_FLAGS \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  addr="$(listen_addr "$work/server.log" 30)"
  # Full and evicting, as a cache in service is (and no first-touch faults in the cells).
  "$BIN/kvcache-bench" throughput --target=kvcache-tcp --addr="$addr" --op=fill \
    --fill-bytes="$((STORE_MIB * 5 / 4))MiB" --value-bytes="$size" --clients=4 >/dev/null
  nonce=$RANDOM$RANDOM
  populate=true  # One key set (~256 MiB), written once, read by both targets.
  for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
      for k in $GET_KEYS; do
        for t in $TARGETS; do
          op=get; [ "$k" -gt 1 ] && op="get/$k"
          cell "$op" "$size" "$c" "$t" --nonce="$nonce" --populate="$populate" --get-keys="$k"
          populate=false
        done
      done
    done
  done
  for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
      for t in $TARGETS; do cell put "$size" "$c" "$t"; done
    done
  done
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=""
done

table="$work/table.md"
{
  echo "| op | value | clients | same-host (GB/s) | TCP data channel (GB/s) | same-host / TCP | p50 same-host | p50 TCP |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  ops="get"; for k in $GET_KEYS; do [ "$k" -gt 1 ] && ops="$ops get/$k"; done
  for op in $ops put; do
    for size in $SIZES; do
      for c in $CLIENTS; do
        l="$(awk -v o=$op -v s=$size -v c=$c '$1==o && $2==s && $3==c && $4=="kvcache" { print $5 }' "$work/cells" | median)"
        t="$(awk -v o=$op -v s=$size -v c=$c '$1==o && $2==s && $3==c && $4=="kvcache-tcp" { print $5 }' "$work/cells" | median)"
        lp="$(awk -v o=$op -v s=$size -v c=$c '$1==o && $2==s && $3==c && $4=="kvcache" { print $6 }' "$work/cells" | median)"
        tp="$(awk -v o=$op -v s=$size -v c=$c '$1==o && $2==s && $3==c && $4=="kvcache-tcp" { print $6 }' "$work/cells" | median)"
        [ -z "$l" ] || [ -z "$t" ] && continue
        shown="$op"; [ "$op" != "${op%/*}" ] && shown="get, ${op#*/} keys a Get"
        printf '| %s | %s | %s | %.2f | %.2f | **%.2fx** | %.0f us | %.0f us |\n' "$shown" "$size" "$c" \
          "$l" "$t" "$(awk -v a="$l" -v b="$t" 'BEGIN { print (b > 0) ? a / b : 0 }')" "$lp" "$tp"
      done
    done
  done
} >"$table"

section="$work/section.md"
{
  echo "## Same-host path vs the TCP data channel"
  echo
  echo "\`kvcache-bench throughput --target=kvcache\` (the client finds the server on its own machine"
  echo "and moves payloads through a shared-memory region: docs/data-channel.md, \"Same-host"
  echo "path\") against \`--target=kvcache-tcp\` (the TCP data channel forced), Get and Put,"
  echo "**medians of $REPS** interleaved runs of ${CELL_SECONDS} s, against one RAM-only kvcache-server"
  echo "(\`--ram-bytes=${STORE_MIB}MiB --ram-arena${SERVER_FLAGS:+ $SERVER_FLAGS}\`) per value size, filled past its budget first (so Put evicts)."
  echo "One run, $(date -u +%Y-%m-%d), $(nproc) cores, load average $load_start at the start and"
  echo "$(cut -d' ' -f1-3 /proc/loadavg) at the end: the machine is shared with other sessions'"
  echo "builds, so client, server and compilers compete for 2 cores; read the ratios, not the"
  echo "absolute figures."
  echo
  cat "$table"
  echo
  echo "Made by: \`${SERVER_FLAGS:+SERVER_FLAGS=\"$SERVER_FLAGS\" }SIZES=\"$SIZES\" CLIENTS=\"$CLIENTS\" GET_KEYS=\"$GET_KEYS\" REPS=$REPS scripts/bench_local.sh\`"
} >"$section"
if [ "$WRITE_DOC" = 1 ]; then replace_section docs/benchmarks.md same-host "$section"; fi
cat "$table"
