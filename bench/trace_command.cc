// `kvcache-bench trace`: flags and output of the trace tools; the logic is in kvcache_trace.
//
//   kvcache-bench trace --list-policies
//   kvcache-bench trace --simulate --trace=FILE --capacity-blocks=N [--disk-blocks=N]
//       [--eviction=NAME] [--json]
//   kvcache-bench trace --plan --trace=FILE --ram-sizes=1GiB,4GiB --disk-sizes=0,64GiB
//       --block-bytes=2MiB [--eviction=NAME]
//   kvcache-bench trace --server=HOST:PORT --trace=FILE --block-bytes=N [--speed=X]
//       [--limit-requests=N] [--json]
//
// --synthetic (with --seed) uses a generated trace instead of --trace; --shuffle-seed=N
// replays the trace's requests in a random order; --limit-requests=N keeps the first N;
// --write-trace=FILE saves the trace used. --ram-shard-bits=B simulates a RAM tier of 2^B
// shards (the server's layout) instead of one exact shard.

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/capacity_plan.h"
#include "bench/commands.h"
#include "bench/flags.h"
#include "bench/synthetic_trace.h"
#include "bench/trace.h"
#include "bench/trace_replay.h"
#include "common/tls_flags.h"
#include "bench/trace_sim.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "client/cache_client.h"
#include "common/byte_size.h"
#include "common/progress.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, trace, "", "request trace, JSONL in the Mooncake format");
ABSL_FLAG(bool, synthetic, false, "use a generated trace (chats + shared prompts) instead");
ABSL_FLAG(uint64_t, seed, 1, "seed of --synthetic");
ABSL_FLAG(int64_t, shuffle_seed, -1, "replay the requests in a random order (seed); -1: off");
ABSL_FLAG(std::string, write_trace, "", "write the trace used (after --synthetic/--shuffle)");
ABSL_FLAG(bool, list_policies, false, "print the eviction policy names, one a line");
ABSL_FLAG(bool, simulate, false, "simulate against the cachestore library (no server)");
ABSL_FLAG(bool, plan, false, "print a capacity plan (Markdown) over --ram-sizes etc.");
ABSL_FLAG(uint64_t, capacity_blocks, 0, "RAM capacity in blocks (same as --ram-blocks)");
ABSL_FLAG(uint64_t, ram_blocks, 0, "RAM capacity in blocks");
ABSL_FLAG(uint64_t, disk_blocks, 0, "disk capacity in blocks; 0: RAM only");
ABSL_FLAG(int, ram_shard_bits, 0, "log2 of RAM tier shards in simulation (0: one, exact)");
ABSL_FLAG(std::string, ram_bytes, "", "RAM capacity in bytes (with --block-bytes)");
ABSL_FLAG(std::string, disk_bytes, "", "disk capacity in bytes (with --block-bytes)");
ABSL_FLAG(std::string, block_bytes, "64KiB", "payload bytes per block; a comma list with --plan");
ABSL_FLAG(std::string, ram_sizes, "", "--plan: RAM sizes, comma separated");
ABSL_FLAG(std::string, disk_sizes, "0", "--plan: disk sizes, comma separated (0: none)");
ABSL_FLAG(std::string, server, "", "replay live against this kvcache-server, host:port");
ABSL_FLAG(double, speed, 0, "live: 0 = back to back; X = the trace's pace times X");
ABSL_FLAG(uint64_t, limit_requests, 0, "use only the first N requests; 0: all");

namespace kvcache {
namespace {

using nlohmann::json;

int Fail(const absl::Status& status) {
  std::cerr << "kvcache-bench trace: " << status.message() << "\n";
  return 1;
}

absl::StatusOr<std::vector<uint64_t>> ParseSizes(const std::string& text, const char* flag) {
  std::vector<uint64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    absl::StatusOr<uint64_t> v = ParseByteSize(absl::StripAsciiWhitespace(part), flag);
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  return out;
}

absl::StatusOr<uint64_t> OneSize(const char* flag, const std::string& text) {
  return ParseByteSize(text, flag);
}

absl::StatusOr<Trace> TheTrace() {
  Trace trace;
  if (absl::GetFlag(FLAGS_synthetic)) {
    SyntheticTraceOptions o;
    o.seed = absl::GetFlag(FLAGS_seed);
    trace = GenerateSyntheticTrace(o);
  } else {
    if (absl::GetFlag(FLAGS_trace).empty()) {
      return absl::InvalidArgumentError("--trace=FILE (or --synthetic) is required");
    }
    absl::StatusOr<Trace> loaded = LoadTrace(absl::GetFlag(FLAGS_trace));
    if (!loaded.ok()) return loaded.status();
    trace = *std::move(loaded);
  }
  if (absl::GetFlag(FLAGS_shuffle_seed) >= 0) {
    trace = ShuffleTrace(trace, absl::GetFlag(FLAGS_shuffle_seed));
  }
  const uint64_t limit = absl::GetFlag(FLAGS_limit_requests);
  if (limit > 0 && trace.requests.size() > limit) trace.requests.resize(limit);
  if (!absl::GetFlag(FLAGS_write_trace).empty()) {
    std::ofstream out(absl::GetFlag(FLAGS_write_trace), std::ios::binary);
    out << TraceToJsonl(trace);
    if (!out) return absl::InternalError("cannot write --write-trace");
  }
  return trace;
}

// Blocks from a block-count flag, else from a byte flag over what a block of --block-bytes
// costs `tier` with --eviction (ChargeOf plus the policy's state per block).
absl::StatusOr<uint64_t> Blocks(uint64_t blocks, const std::string& bytes, const char* flag,
                                TierId tier) {
  if (blocks > 0 || bytes.empty()) return blocks;
  absl::StatusOr<uint64_t> b = ParseByteSize(bytes, flag);
  if (!b.ok()) return b.status();
  absl::StatusOr<uint64_t> block = OneSize("--block-bytes", absl::GetFlag(FLAGS_block_bytes));
  if (!block.ok()) return block.status();
  return *b / (ChargeOf(*block, tier) + EvictionPolicyExtraBytes(absl::GetFlag(FLAGS_eviction)));
}

// The hit counters both simulation and replay report, by the same names.
json HitCountsJson(const HitCounts& r) {
  return {{"requests", r.requests},         {"block_reads", r.block_reads},
          {"block_hits", r.block_hits},     {"hit_ratio", r.HitRatio()},
          {"token_hit_ratio", r.TokenHitRatio()}, {"ram_hits", r.ram_hits},
          {"disk_hits", r.disk_hits}};
}

int RunSimulate(const Trace& trace) {
  uint64_t ram = absl::GetFlag(FLAGS_capacity_blocks);
  if (ram == 0) ram = absl::GetFlag(FLAGS_ram_blocks);
  absl::StatusOr<uint64_t> ram_blocks =
      Blocks(ram, absl::GetFlag(FLAGS_ram_bytes), "--ram-bytes", TierId::kRam);
  if (!ram_blocks.ok()) return Fail(ram_blocks.status());
  absl::StatusOr<uint64_t> disk_blocks =
      Blocks(absl::GetFlag(FLAGS_disk_blocks), absl::GetFlag(FLAGS_disk_bytes), "--disk-bytes",
             TierId::kDisk);
  if (!disk_blocks.ok()) return Fail(disk_blocks.status());
  if (*ram_blocks == 0) {
    return Fail(absl::InvalidArgumentError(
        "give the RAM capacity: --capacity-blocks=N, or --ram-bytes with --block-bytes"));
  }
  SimulationOptions o;
  o.ram_blocks = *ram_blocks;
  o.disk_blocks = *disk_blocks;
  o.eviction = absl::GetFlag(FLAGS_eviction);
  o.ram_shard_bits = absl::GetFlag(FLAGS_ram_shard_bits);
  const TraceKeys keys = KeysOf(trace);
  absl::StatusOr<SimulationResult> r = Simulate(trace, keys, o);
  if (!r.ok()) return Fail(r.status());
  if (absl::GetFlag(FLAGS_json)) {
    json j = HitCountsJson(*r);
    j.update({{"eviction", o.eviction},
              {"ram_blocks", o.ram_blocks},
              {"disk_blocks", o.disk_blocks},
              {"ram_shard_bits", o.ram_shard_bits},
              {"ram_hit_ratio", SimulationResult::Ratio(r->ram_hits, r->block_reads)},
              {"disk_hit_ratio", SimulationResult::Ratio(r->disk_hits, r->block_reads)},
              {"belady_hit_ratio", r->BeladyHitRatio()},
              {"belady_token_hit_ratio", r->BeladyTokenHitRatio()},
              {"unbounded_hit_ratio", r->CeilingHitRatio()},
              {"puts", r->puts},
              {"evictions", r->evictions},
              {"demotions", r->demotions},
              {"block_overhead_bytes", r->block_overhead_bytes},
              {"seconds", r->seconds}});
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << absl::StrFormat(
        "%s, RAM %d blocks, disk %d blocks: %d requests, %d block reads\n"
        "  hit ratio %.4f (RAM %.4f, disk %.4f), token hit ratio %.4f\n"
        "  Belady %.4f, unbounded cache %.4f; %d puts, %d evictions, %d demotions, %.2f s\n",
        o.eviction, o.ram_blocks, o.disk_blocks, r->requests, r->block_reads, r->HitRatio(),
        SimulationResult::Ratio(r->ram_hits, r->block_reads),
        SimulationResult::Ratio(r->disk_hits, r->block_reads), r->TokenHitRatio(),
        r->BeladyHitRatio(), r->CeilingHitRatio(), r->puts, r->evictions, r->demotions, r->seconds);
  }
  return 0;
}

int RunPlan(const Trace& trace) {
  PlanOptions o;
  o.eviction = absl::GetFlag(FLAGS_eviction);
  absl::StatusOr<std::vector<uint64_t>> ram =
      ParseSizes(absl::GetFlag(FLAGS_ram_sizes), "--ram-sizes");
  absl::StatusOr<std::vector<uint64_t>> disk =
      ParseSizes(absl::GetFlag(FLAGS_disk_sizes), "--disk-sizes");
  absl::StatusOr<std::vector<uint64_t>> block =
      ParseSizes(absl::GetFlag(FLAGS_block_bytes), "--block-bytes");
  for (const absl::Status& s : {ram.status(), disk.status(), block.status()}) {
    if (!s.ok()) return Fail(s);
  }
  o.ram_bytes = *ram;
  o.disk_bytes = *disk;
  o.block_bytes = *block;
  const TraceKeys keys = KeysOf(trace);
  absl::StatusOr<std::vector<PlanRow>> rows = PlanCapacity(trace, keys, o);
  if (!rows.ok()) return Fail(rows.status());
  std::cout << PlanToMarkdown(*rows);
  return 0;
}

json LatencyJson(const LatencySummary& s) {
  return {{"count", s.count},
          {"p50_us", s.p50_us},
          {"p90_us", s.p90_us},
          {"p99_us", s.p99_us},
          {"max_us", s.max_us}};
}

int RunReplay(const Trace& trace) {
  CacheClientOptions co;
  co.target = absl::GetFlag(FLAGS_server);
  co.tls = TlsClientOptionsFromFlags();
  absl::StatusOr<std::unique_ptr<CacheClient>> client = NewCacheClient(co);
  if (!client.ok()) return Fail(client.status());
  ReplayOptions o;
  absl::StatusOr<uint64_t> block = OneSize("--block-bytes", absl::GetFlag(FLAGS_block_bytes));
  if (!block.ok()) return Fail(block.status());
  o.block_bytes = *block;
  o.speed = absl::GetFlag(FLAGS_speed);
  o.limit_requests = absl::GetFlag(FLAGS_limit_requests);
  const TraceKeys keys = KeysOf(trace);
  ProgressOptions po;  // On a terminal only, and not with --json (common/progress.h).
  po.label = "replay";
  po.unit = "requests";
  po.enabled = !absl::GetFlag(FLAGS_json);
  ProgressMeter progress(po);
  o.on_progress = [&progress](uint64_t done, uint64_t total) {
    progress.SetTotal(total);
    progress.Set(done);
  };
  absl::StatusOr<ReplayResult> r = ReplayTrace(**client, trace, keys, o);
  progress.Finish();
  if (!r.ok()) return Fail(r.status());
  if (absl::GetFlag(FLAGS_json)) {
    json j = HitCountsJson(*r);
    j.update({{"server", co.target},
              {"block_bytes", o.block_bytes},
              {"bytes_read", r->bytes_read},
              {"bytes_written", r->bytes_written},
              {"stored", r->stored},
              {"already_present", r->already_present},
              {"not_admitted", r->not_admitted},
              {"errors", r->errors},
              {"seconds", r->seconds},
              {"lookup", LatencyJson(r->lookup)},
              {"get", LatencyJson(r->get)},
              {"put", LatencyJson(r->put)},
              {"request", LatencyJson(r->request)}});
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << absl::StrFormat(
        "%s: %d requests in %.1f s, %d block reads\n"
        "  hit ratio %.4f (RAM %d, disk %d blocks), token hit ratio %.4f\n"
        "  read %s, wrote %s; %d errors\n"
        "  request p50 %.0f us, p99 %.0f us; get p50 %.0f us; put p50 %.0f us\n",
        co.target, r->requests, r->seconds, r->block_reads, r->HitRatio(), r->ram_hits,
        r->disk_hits, r->TokenHitRatio(), FormatBytes(r->bytes_read), FormatBytes(r->bytes_written),
        r->errors, r->request.p50_us, r->request.p99_us, r->get.p50_us, r->put.p50_us);
  }
  return r->errors == 0 ? 0 : 1;
}

}  // namespace

const FlagScope kTraceFlags = {
    "usage: kvcache-bench trace --list-policies\n"
    "       kvcache-bench trace --simulate --trace=FILE --capacity-blocks=N [--disk-blocks=N]\n"
    "         [--eviction=NAME] [--json]\n"
    "       kvcache-bench trace --plan --trace=FILE --ram-sizes=1GiB,4GiB --disk-sizes=0,64GiB\n"
    "         --block-bytes=2MiB [--eviction=NAME]\n"
    "       kvcache-bench trace --server=HOST:PORT --trace=FILE --block-bytes=N [--speed=X]\n"
    "         [--limit-requests=N] [--json] [--tls-ca=PEM [--tls-cert=PEM --tls-key=PEM]]\n"
    "     (--synthetic [--seed=N] instead of --trace=FILE uses a generated trace)\n",
    "bench/trace_command.cc", "json,eviction,tls_ca,tls_cert,tls_key,tls_server_name,token_file"};

int TraceCommand(int argc, char** argv) {
  std::vector<std::string> rest = ParseFlags(argc, argv, kTraceFlags);
  rest.erase(rest.begin());  // The program's name.
  if (!rest.empty()) {
    return Fail(absl::InvalidArgumentError("unexpected argument '" + rest[0] + "'"));
  }
  if (absl::GetFlag(FLAGS_list_policies)) {
    for (const std::string& name : EvictionPolicyNames()) std::cout << name << "\n";
    return 0;
  }
  const int modes = absl::GetFlag(FLAGS_simulate) + absl::GetFlag(FLAGS_plan) +
                    !absl::GetFlag(FLAGS_server).empty();
  if (modes != 1) {
    return Fail(absl::InvalidArgumentError(
        "choose one of --list-policies, --simulate, --plan or --server=HOST:PORT"));
  }
  absl::StatusOr<Trace> trace = TheTrace();
  if (!trace.ok()) return Fail(trace.status());
  if (absl::GetFlag(FLAGS_simulate)) return RunSimulate(*trace);
  if (absl::GetFlag(FLAGS_plan)) return RunPlan(*trace);
  return RunReplay(*trace);
}

}  // namespace kvcache
