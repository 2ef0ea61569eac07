#!/usr/bin/env python3
"""Turns scripts/bench_throughput.sh's raw results (JSON lines) into the Markdown section of
docs/benchmarks.md (between <!-- throughput:begin --> and <!-- throughput:end -->, nothing
else in the file is touched) and the data file of the chart. Prints the section.

Inputs come from the environment (set by the driver): RESULTS, DOC, WRITE_DOC, CHART,
CHART_DATA, and the run's description (DATE, NPROC, CPU_MODEL, ...)."""

import json
import os
import statistics
import sys
from collections import defaultdict

BEGIN = "<!-- throughput:begin -->"
END = "<!-- throughput:end -->"
PEERS = ["kvcache", "redis", "memcached", "rawtcp"]


def env(name, default=""):
    return os.environ.get(name, default)


def size_label(n):
    if n % (1 << 20) == 0:
        return "%d MiB" % (n >> 20)
    if n % 1024 == 0:
        return "%d KiB" % (n >> 10)
    return "%d B" % n


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    print("bench_throughput: bad result line: " + line[:200], file=sys.stderr)
    return rows


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    return "—" if v is None else ("%." + str(digits) + "f") % v


def ratio(a, b):
    return "—" if a is None or not b else "%.2f×" % (a / b)


def main():
    rows = load(env("RESULTS"))
    ok = lambda r: "gbps" in r and not r.get("failed") and not r.get("errors") and not r.get(
        "verify_failures")
    cells = defaultdict(list)  # (op, value, clients, target) -> rows
    failed = defaultdict(int)
    for r in rows:
        if r.get("op") in ("get", "put"):
            key = (r["op"], r["value_bytes"], r["clients"], r["target"])
            if ok(r):
                cells[key].append(r)
            else:
                failed[key] += 1
        elif r.get("failed"):
            print("bench_throughput: failed: " + r.get("args", ""), file=sys.stderr)

    def stat(key, field):
        return median([r.get(field) for r in cells.get(key, [])])

    def cpu_per_gb(key):
        vals = []
        for r in cells.get(key, []):
            if r.get("server_cpu_s", -1) >= 0 and r.get("bytes"):
                vals.append((r["client_cpu_s"] + r["server_cpu_s"]) / (r["bytes"] / 1e9))
        return median(vals)

    ops = sorted({k[0] for k in cells} | {k[0] for k in failed}, key=["get", "put"].index)
    sizes = sorted({k[1] for k in cells} | {k[1] for k in failed})
    clients = sorted({k[2] for k in cells} | {k[2] for k in failed})
    targets = [t for t in PEERS if any(k[3] == t for k in cells)]
    reps = max([len(v) for v in cells.values()] or [0])

    out = []
    w = out.append
    w(BEGIN)
    w("## Bulk data path: kvcache vs Redis vs memcached (loopback)")
    w("")
    w("Measured %s on %s × %s (%s GiB RAM, Linux %s); kvcache %s; Redis %s, memcached %s. "
      "Made by `%s` in %s s." % (env("DATE"), env("NPROC"), env("CPU_MODEL"), env("MEM_GIB"),
                                 env("KERNEL"), env("GIT_REV", "?"), env("REDIS_VERSION"),
                                 env("MEMCACHED_VERSION"), env("COMMAND_LINE").strip(),
                                 env("ELAPSED")))
    w("")
    w("Every cell is `kvcache-bench throughput --target=T --op=get|put --value-bytes=V "
      "--clients=C --seconds=%s`: C threads, each with its own connection (kvcache: its own "
      "`CacheClient`; Redis: hiredis; memcached: libmemcached), after a %s s warm-up; "
      "**median of %d repetition(s)**%s, interleaved so drift hits every target alike. "
      "GB/s counts value bytes (10⁹ B/s). Each store has a %s MiB memory budget and is filled "
      "past it before its cells run, so Put measures a full cache that evicts; Get reads "
      "random keys of a ~256 MiB key set (≤1024 keys), checking every value's length and key "
      "tag and every 32nd value in full; kvcache's client also verifies each block's XXH3 "
      "checksum. Raw TCP is the ceiling: a bare request/response of the same bytes, served "
      "by the bench binary (no storage, no protocol). This machine is shared and noisy: read "
      "the ratios, not the absolute numbers."
      % (env("CELL_SECONDS"), env("WARMUP_SECONDS"), reps,
         "" if reps >= 3 else " (**fewer than 3: QUICK or time-boxed run**)",
         env("STORE_MIB")))
    w("")
    w("### Throughput, GB/s")
    w("")
    head = "| op | value | clients | " + " | ".join(
        ("raw TCP" if t == "rawtcp" else t) for t in targets)
    if "kvcache" in targets and "redis" in targets:
        head += " | kvcache/redis"
    if "kvcache" in targets and "memcached" in targets:
        head += " | kvcache/memcached"
    w(head + " |")
    w("|" + " --- |" * (head.count("|")))
    for op in ops:
        for v in sizes:
            for c in clients:
                g = {t: stat((op, v, c, t), "gbps") for t in targets}
                line = "| %s | %s | %d | " % (op, size_label(v), c)
                parts = []
                for t in targets:
                    s = fmt(g[t])
                    if failed.get((op, v, c, t)):
                        s += " (%d failed)" % failed[(op, v, c, t)]
                    if t == "kvcache" and g[t] is not None:
                        s = "**" + s + "**"
                    parts.append(s)
                line += " | ".join(parts)
                if "kvcache" in targets and "redis" in targets:
                    line += " | " + ratio(g["kvcache"], g["redis"])
                if "kvcache" in targets and "memcached" in targets:
                    line += " | " + ratio(g["kvcache"], g["memcached"])
                w(line + " |")
    w("")
    w("### Latency per operation, p50 / p99 µs")
    w("")
    w("| op | value | clients | " + " | ".join(
        ("raw TCP" if t == "rawtcp" else t) for t in targets) + " |")
    w("|" + " --- |" * (3 + len(targets)))
    for op in ops:
        for v in sizes:
            for c in clients:
                parts = []
                for t in targets:
                    p50, p99 = stat((op, v, c, t), "p50_us"), stat((op, v, c, t), "p99_us")
                    parts.append("—" if p50 is None else "%.0f / %.0f" % (p50, p99))
                w("| %s | %s | %d | %s |" % (op, size_label(v), c, " | ".join(parts)))
    w("")
    cpu_clients = 4 if 4 in clients else (clients[0] if clients else 0)
    w("### CPU seconds per GB moved (client + server), %d clients" % cpu_clients)
    w("")
    w("Both sides run on the same %s cores, so CPU per byte is what bounds throughput here." %
      env("NPROC"))
    w("")
    w("| op | value | " + " | ".join(("raw TCP" if t == "rawtcp" else t) for t in targets) + " |")
    w("|" + " --- |" * (2 + len(targets)))
    for op in ops:
        for v in sizes:
            w("| %s | %s | %s |" % (op, size_label(v), " | ".join(
                fmt(cpu_per_gb((op, v, cpu_clients, t))) for t in targets)))
    w("")

    iperf = defaultdict(list)
    for r in rows:
        if r.get("target") == "iperf3":
            iperf[r["clients"]].append(r["gbps"])
    if iperf:
        w("### Loopback ceiling")
        w("")
        w("iperf3 (`iperf3 -c 127.0.0.1 -t 3 -P N`), one-way stream: " + ", ".join(
            "%d stream%s %.2f GB/s" % (p, "" if p == 1 else "s", median(v))
            for p, v in sorted(iperf.items())) +
          ". On this VM iperf3's one-way stream is not CPU-bound (about half a core per "
          "side) and stays below the request/response figures: the raw TCP column above is "
          "the ceiling to compare with, at each size and client count.")
        w("")

    lookups = defaultdict(list)
    for r in rows:
        if r.get("op") == "lookup" and ok(r):
            lookups[r["clients"]].append(r)
    if lookups:
        w("### Lookup of a 64-key chain (kvcache)")
        w("")
        w("| clients | lookups/s | p50 µs | p99 µs |")
        w("| --- | --- | --- | --- |")
        for c, rs in sorted(lookups.items()):
            w("| %d | %.0f | %.0f | %.0f |" % (c, median([r["ops_per_s"] for r in rs]),
                                             median([r["p50_us"] for r in rs]),
                                             median([r["p99_us"] for r in rs])))
        w("")

    index = [r for r in rows if r.get("op") == "index-scale"]
    if index:
        w("### RAM-tier index cost and speed by stored blocks (in-process, 64 B values)")
        w("")
        w("`kvcache-bench throughput --op=index-scale --blocks=N`: the server's tiered store "
          "(RAM only) in-process; resident memory (VmRSS) growth per block, minus the 64 "
          "payload bytes, is the index entry + metadata + allocator rounding. The store "
          "charges each block %d B against its budget for this. Rates are one thread."
          % index[0].get("charged_overhead_bytes", 256))
        w("")
        w("| blocks | resident B/block | beyond payload | Put/s | Get/s | 64-key Lookups/s |")
        w("| --- | --- | --- | --- | --- | --- |")
        for r in sorted(index, key=lambda r: r["blocks"]):
            w("| %d | %.0f | %.0f | %.0f | %.0f | %.0f |" % (
                r["blocks"], r["bytes_per_block"], r["index_bytes_per_block"],
                r["put_ops_per_s"], r["get_ops_per_s"], r["lookup64_per_s"]))
        w("")
    if env("WRITE_DOC") == "1":
        w("![GB/s by value size, 4 clients](%s)" % os.path.basename(env("CHART")))
        w("")
    w(END)
    section = "\n".join(out)
    print(section)

    # Chart data: one block per op (index 0 get, 1 put), 4 clients (or the first count).
    with open(env("CHART_DATA"), "w") as f:
        for op in ["get", "put"]:
            f.write("size_kib kvcache redis memcached raw-TCP\n")
            for v in sizes:
                vals = [stat((op, v, cpu_clients, t), "gbps") for t in PEERS]
                f.write("%d %s\n" % (v // 1024, " ".join("NaN" if x is None else "%.4f" % x
                                                           for x in vals)))
            f.write("\n\n")

    if env("WRITE_DOC") == "1":
        doc = env("DOC")
        text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n\n%s\n%s\n" % (BEGIN,
                                                                                         END)
        if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
            before = text[:text.index(BEGIN)]
            after = text[text.index(END) + len(END):]
            text = before + section + after
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        os.makedirs(os.path.dirname(doc) or ".", exist_ok=True)
        with open(doc, "w") as f:
            f.write(text)
        print("bench_throughput: wrote %s (between its throughput markers)" % doc,
              file=sys.stderr)


if __name__ == "__main__":
    main()
