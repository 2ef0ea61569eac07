#include "bench/capacity_plan.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "common/byte_size.h"

namespace kvcache {

absl::StatusOr<std::vector<PlanRow>> PlanCapacity(const Trace& trace, const TraceKeys& keys,
                                                  const PlanOptions& options) {
  if (options.ram_bytes.empty() || options.block_bytes.empty()) {
    return absl::InvalidArgumentError("the plan needs at least one RAM size and block size");
  }
  std::vector<uint64_t> disks = options.disk_bytes;
  if (disks.empty()) disks.push_back(0);
  std::vector<PlanRow> rows;
  for (uint64_t block : options.block_bytes) {
    if (block == 0) return absl::InvalidArgumentError("block sizes must be > 0");
    for (uint64_t ram : options.ram_bytes) {
      for (uint64_t disk : disks) {
        PlanRow row;
        row.block_bytes = block;
        row.ram_bytes = ram;
        row.disk_bytes = disk;
        const uint64_t extra = EvictionPolicyExtraBytes(options.eviction);
        row.ram_blocks = ram / (ChargeOf(block, TierId::kRam) + extra);
        row.disk_blocks = disk / (ChargeOf(block, TierId::kDisk) + extra);
        if (row.ram_blocks == 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "RAM size ", FormatBytes(ram), " holds no block of ", FormatBytes(block)));
        }
        SimulationOptions sim;
        sim.ram_blocks = row.ram_blocks;
        sim.disk_blocks = row.disk_blocks;
        sim.eviction = options.eviction;
        absl::StatusOr<SimulationResult> r = Simulate(trace, keys, sim);
        if (!r.ok()) return r.status();
        row.result = *r;
        rows.push_back(row);
      }
    }
  }
  return rows;
}

std::string PlanToMarkdown(const std::vector<PlanRow>& rows) {
  std::string out =
      "| block | RAM | disk | RAM blocks | disk blocks | hit ratio | token hit ratio | "
      "from RAM | from disk | Belady |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const PlanRow& row : rows) {
    const SimulationResult& r = row.result;
    absl::StrAppendFormat(&out, "| %s | %s | %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f |\n",
                          FormatBytes(row.block_bytes), FormatBytes(row.ram_bytes),
                          row.disk_bytes ? FormatBytes(row.disk_bytes) : std::string("-"),
                          row.ram_blocks, row.disk_blocks, r.HitRatio(), r.TokenHitRatio(),
                          SimulationResult::Ratio(r.ram_hits, r.block_reads),
                          SimulationResult::Ratio(r.disk_hits, r.block_reads), r.BeladyHitRatio());
  }
  return out;
}

}  // namespace kvcache
