// What KV events cost a Put: the tiered store (RAM only, in-process, one thread) storing
// small blocks into a full tier, so every Put also evicts, with events off, on with nobody
// reading, and on with a reader draining the ring as a subscriber would. Prints ns per Put
// (median of 5 runs); never asserts (docs/events.md has the figures).
//
//   build/bin/kvcache-events-put-cost [--puts=200000] [--value-bytes=64] [--ring=65536]

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "cachestore/block_store.h"
#include "common/cli.h"
#include "services/events.h"

ABSL_FLAG(int64_t, puts, 200000, "Puts per run");
ABSL_FLAG(int64_t, value_bytes, 64, "payload bytes of each block");
ABSL_FLAG(int64_t, ring, 65536, "events the ring keeps (kvcache-server --events-ring)");

namespace kvcache {
namespace {

Key KeyOf(uint64_t n) {
  Key k;
  for (size_t i = 0; i < 8; ++i) k.bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  k.bytes[31] = 1;
  return k;
}

double RunOnce(const char* mode, int64_t puts, int64_t value_bytes) {
  const std::string m(mode);
  std::unique_ptr<EventLog> log;
  if (m != "off") log = std::make_unique<EventLog>(absl::GetFlag(FLAGS_ring));
  TieredStoreOptions o;
  o.ram.capacity_bytes = 4096 * ChargeOf(value_bytes);  // Full after 4096 Puts.
  o.ram.num_shard_bits = 0;
  o.listener = log.get();
  std::unique_ptr<TieredStore> store = *NewTieredStore(o);
  std::vector<BlockPtr> blocks;
  blocks.reserve(puts);
  const std::string payload(value_bytes, 'x');
  for (int64_t i = 0; i < puts; ++i) blocks.push_back(MakeBlock({KeyOf(0), KeyOf(i)}, {}, payload));
  std::atomic<bool> stop{false};
  std::thread reader;
  if (m == "subscriber") {
    reader = std::thread([&] {
      uint64_t next = 1;
      std::vector<StoreEvent> out;
      while (!stop.load(std::memory_order_relaxed)) {
        out.clear();
        EventLog::Position p;
        switch (log->Read(next, 256, &out, nullptr, &p)) {
          case EventLog::ReadResult::kEvents: next = out.back().sequence + 1; break;
          case EventLog::ReadResult::kLagged: next = p.oldest; break;
          case EventLog::ReadResult::kWaiting: std::this_thread::yield(); break;
        }
      }
    });
  }
  const absl::Time start = absl::Now();
  for (const BlockPtr& b : blocks) store->Put(b).IgnoreError();
  const double ns = absl::ToDoubleNanoseconds(absl::Now() - start) / puts;
  stop = true;
  if (reader.joinable()) reader.join();
  return ns;
}

}  // namespace
}  // namespace kvcache

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "kvcache-events-put-cost: ns per Put with KV events off, on, and on with a reader.\n"
      "usage: kvcache-events-put-cost [--puts=N] [--value-bytes=N] [--ring=N]");
  kvcache::ParseFlags(argc, argv);
  const int64_t puts = absl::GetFlag(FLAGS_puts);
  const int64_t value_bytes = absl::GetFlag(FLAGS_value_bytes);
  if (puts < 1 || value_bytes < 1) {
    std::fprintf(stderr, "kvcache-events-put-cost: --puts and --value-bytes must be positive\n");
    return kvcache::kExitUsage;
  }
  std::printf("Put of %lld-byte blocks into a full RAM tier (each Put evicts one), %lld Puts, "
              "median of 5 runs:\n", static_cast<long long>(value_bytes),
              static_cast<long long>(puts));
  for (const char* mode : {"off", "on", "subscriber"}) {
    std::vector<double> runs;
    for (int r = 0; r < 5; ++r) runs.push_back(kvcache::RunOnce(mode, puts, value_bytes));
    std::sort(runs.begin(), runs.end());
    std::printf("  events %-10s %7.0f ns/Put  (min %.0f, max %.0f)\n", mode, runs[2], runs[0],
                runs[4]);
  }
  return 0;
}
