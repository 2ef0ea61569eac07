#!/usr/bin/env bash
# Where kvcache's Get/Put time goes: runs `kvcache-bench throughput` against a fresh
# kvcache-server (RAM tier, filled past its budget like the comparison does) and samples
# both processes with perf (cpu-clock: this VM has no hardware counters), plus perf stat's
# page faults and context switches. Prints, per op and size: throughput, CPU seconds per GB
# of each side, faults and switches per operation, the cost by category and the top symbols.
#
# Usage: bench/throughput_profile.sh [SIZES="256KiB 4MiB"] [OPS="get put"] [CLIENTS=4]
#   BIN_DIR=build/bin  SECONDS_=4  OUT=/tmp/kvcache-profile (perf.data files kept there)
#   SERVER_ENV="MALLOC_ARENA_MAX=2 ..."  environment for the server (to try tunings)
#   CLIENT_ENV="..."                     environment for the bench client
# Needs: linux-perf (Debian: linux-perf), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
BIN_DIR="${BIN_DIR:-build/bin}"
SIZES="${SIZES:-256KiB 4MiB}"
OPS="${OPS:-get put}"
CLIENTS="${CLIENTS:-4}"
SECS="${SECONDS_:-4}"
OUT="${OUT:-/tmp/kvcache-profile}"
STORE_MIB="${STORE_MIB:-1024}"
mkdir -p "$OUT"
SP=""
kill_at_exit SP

for size in $SIZES; do
  env ${SERVER_ENV:-} "$BIN_DIR/kvcache-server" --listen=127.0.0.1:0 --ram-bytes="${STORE_MIB}MiB" \
    --disk-path= --max-block-bytes=8MiB --metrics-listen= --shutdown-grace=0s >"$OUT/server.log" 2>&1 &
  SP=$!
  ADDR="$(listen_addr "$OUT/server.log")"
  env ${CLIENT_ENV:-} "$BIN_DIR/kvcache-bench" throughput --target=kvcache --addr="$ADDR" --op=fill \
    --fill-bytes="$((STORE_MIB * 5 / 4))MiB" --value-bytes="$size" --clients=4 >/dev/null
  for op in $OPS; do
    tag="$op-$size-c$CLIENTS"
    env ${CLIENT_ENV:-} "$BIN_DIR/kvcache-bench" throughput --target=kvcache --addr="$ADDR" \
      --op="$op" --value-bytes="$size" --clients="$CLIENTS" --seconds="$SECS" \
      --warmup-seconds=1 --server-pid="$SP" --json >"$OUT/$tag.json" &
    BP=$!
    sleep 1.2
    # Sample well inside the measured window: perf record can hang if its target exits first.
    D=$(python3 -c "print(max(1.0, $SECS - 1.5))")
    timeout -s INT -k 5 20 perf stat -x, -e task-clock,page-faults,context-switches -p "$SP" -- sleep "$D" </dev/null \
      2>"$OUT/$tag.stat-server" &
    P1=$!
    timeout -s INT -k 5 20 perf stat -x, -e task-clock,page-faults,context-switches -p "$BP" -- sleep "$D" </dev/null \
      2>"$OUT/$tag.stat-client" &
    P2=$!
    timeout -s INT -k 5 20 perf record -e cpu-clock -F 1999 -g -p "$SP" -o "$OUT/$tag.server.data" -- sleep "$D" </dev/null \
      >/dev/null 2>&1 &
    P3=$!
    timeout -s INT -k 5 20 perf record -e cpu-clock -F 1999 -g -p "$BP" -o "$OUT/$tag.client.data" -- sleep "$D" </dev/null \
      >/dev/null 2>&1
    wait "$P1" "$P2" "$P3" || true
    # A bench that does not exit within 30 s of its window is reported, then killed.
    for _ in $(seq 60); do kill -0 "$BP" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$BP" 2>/dev/null; then
      echo "throughput_profile: kvcache-bench ($tag) did not exit; killing it" >&2
      kill -9 "$BP" 2>/dev/null || true
    fi
    wait "$BP" 2>/dev/null || true
    for side in server client; do
      perf report -i "$OUT/$tag.$side.data" --no-children --sort sym --stdio -g none \
        --percent-limit 0.05 2>/dev/null </dev/null >"$OUT/$tag.$side.report" || true
    done
    python3 - "$OUT/$tag" "$D" <<'PY'
import json, re, sys
base, dur = sys.argv[1], float(sys.argv[2])
r = json.load(open(base + ".json"))
def stat(side):
    d = {}
    for line in open(base + ".stat-" + side):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            d[f[2]] = float(f[0])
    return d
ss, cs = stat("server"), stat("client")
ops = r["ops_per_s"] * dur
gb = r["gbps"] * dur
print("== %s %s %d B x%d: %.3f GB/s, %.0f ops/s, p50 %.0f us, p99 %.0f us" % (
    r["target"], r["op"], r["value_bytes"], r["clients"], r["gbps"], r["ops_per_s"],
    r["p50_us"], r["p99_us"]))
for name, s in (("server", ss), ("client", cs)):
    cpu = s.get("task-clock", 0) / 1e3
    print("   %s: %.2f CPU s/GB, %.0f page faults/op, %.1f context switches/op" % (
        name, cpu / gb if gb else 0, s.get("page-faults", 0) / max(ops, 1),
        s.get("context-switches", 0) / max(ops, 1)))
cats = [
    ("page faults: zeroing fresh pages", r"clear_page|do_anonymous_page|exc_page_fault|handle_mm_fault|__handle_mm_fault|alloc_.*pages|memcg|lru_add|folio|mem_cgroup|get_page_from_freelist|rmqueue|__pte_alloc|irqentry_exit"),
    ("munmap / madvise of freed buffers", r"unmap|zap_|free_pages|free_unref|tlb|release_pages|__munmap|madvise|mmap_region|do_vmi|vma"),
    ("kernel socket copies", r"_copy_to_iter|_copy_from_iter|copy_user|rep_movs|skb_copy|copy_page_to_iter|copy_page_from_iter"),
    ("TCP/IP stack + syscalls", r"tcp_|ip_|__sys_|sock_|skb|__dev_queue|net_rx|loopback|do_syscall|entry_SYSCALL|syscall_|softirq|__netif|napi|sendmsg|recvmsg|inet_|__x64_sys|epoll|ep_"),
    ("scheduler / wakeups / futex", r"schedule|finish_task_switch|futex|wake|try_to_wake|_raw_spin|sched|pick_next|update_|enqueue|dequeue|__switch_to|select_task|ttwu|sched_yield|hrtimer"),
    ("user memcpy/memmove", r"__memmove|__memcpy|memcpy|memmove"),
    ("malloc/free", r"malloc|_int_free|free|cfree|_int_realloc|realloc|arena|sysmalloc|tcache|mmap_chunk|munmap_chunk|operator new|operator delete"),
    ("checksum (XXH3)", r"XXH|xxh"),
    ("protobuf", r"google::protobuf|WireFormat|EpsCopy|ParseContext|InternalSerialize|ByteSize|ArenaStringPtr"),
    ("gRPC / HTTP2 / slices", r"grpc|chttp2|hpack|Slice|slice|absl::.*Cord|gpr_|Closure|Combiner|ExecCtx|ByteBuffer|call_|hpack"),
    ("string resize/assign", r"basic_string|_M_|_M_replace|_M_mutate"),
    ("memcmp/memset", r"memcmp|memset"),
]
for side in ("server", "client"):
    by_cat, top = {}, []
    for line in open(base + "." + side + ".report"):
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, kind, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        cat = "other"
        for name, rx in cats:
            if re.search(rx, sym):
                cat = name
                break
        by_cat[cat] = by_cat.get(cat, 0) + pct
        top.append((pct, kind, sym))
    total = sum(by_cat.values()) or 1
    print("   %s by category:" % side)
    for cat, pct in sorted(by_cat.items(), key=lambda x: -x[1]):
        if pct / total >= 0.02:
            print("      %5.1f%%  %s" % (100 * pct / total, cat))
    print("   %s top symbols:" % side)
    for pct, kind, sym in sorted(top, reverse=True)[:14]:
        print("      %5.1f%%  [%s] %s" % (100 * pct / total, kind, sym[:110]))
PY
  done
  kill "$SP" 2>/dev/null || true
  wait "$SP" 2>/dev/null || true
  SP=""
done
