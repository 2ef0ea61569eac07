#!/usr/bin/env bash
# The demo: builds kvcache, starts a cache server, and shows blocks moving through it.
# Usage: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN="${BUILD_DIR:-build}/bin"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting kvcache-server (4 MiB RAM over a 64 MiB disk tier in $work/data)"
"$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes=4MiB --disk-path="$work/data" \
  --disk-bytes=64MiB --metrics-listen= >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
cat "$work/server.log"
addr="$(grep -o 'listening on [^ ]*' "$work/server.log" | cut -d' ' -f3)"
admin() { "$BIN/kvcache-admin" --server="$addr" "$@"; }

admin health
ns="$(printf 'a%.0s' $(seq 64))"
echo "== putting 24 blocks of 256 KiB: more than the RAM tier holds, so the oldest go to disk"
for i in $(seq 1 24); do
  head -c $((256 * 1024)) /dev/urandom >"$work/block$i"
  admin put --namespace="$ns" --key="$(printf '%064x' "$i")" --file="$work/block$i" >/dev/null
done
admin stats
echo "== block 1 now lives on disk:"
admin inspect --key="$(printf '%064x' 1)"
echo "== fetching it (a disk hit, promoted back to RAM) and comparing bytes:"
admin get --namespace="$ns" --key="$(printf '%064x' 1)" --out="$work/out1"
cmp "$work/block1" "$work/out1" && echo "byte-identical"
admin stats
