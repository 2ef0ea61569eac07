// The soak: 32 concurrent clients against the real kvcache-server over small tiers, for a
// bounded time, mixing every RPC (Lookup, Get, Put over gRPC and the data channel, admin
// stats, list, inspect, evict). Passes when:
//   - every answer is OK or one of the documented refusals (RESOURCE_EXHAUSTED from a
//     limit; docs/operations.md, "Limits"; DEADLINE_EXCEEDED, the client's own 5 s deadline
//     on a loaded machine), and every block served has the bytes written for its key;
//   - the server's peak RSS (VmHWM) stays within its configured budget, --ram-bytes +
//     --disk-index-bytes (as used) + --max-inflight-bytes, plus a stated overhead
//     (kOverheadBytes: code, gRPC, RocksDB's memtables and caches, thread stacks).
//
// KVCACHE_SOAK_SECONDS sets the time (default 20 s, for CI); scripts/soak.sh runs longer.

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/admin_client.h"
#include "client/cache_client.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::Process;
using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

constexpr uint64_t kRamBytes = 32 << 20;
constexpr uint64_t kInflightBytes = 64 << 20;
// Same-host clients' shared regions (16 MiB each), all of them together.
constexpr uint64_t kLocalRegionsBytes = 64 << 20;
// The RAM tier's arena keeps max(64 MiB, ram / 32) beyond --ram-bytes resident.
constexpr uint64_t kArenaSlackBytes = 64 << 20;
// What the server takes beyond its budgets: the binary and its libraries, gRPC's threads
// and buffers, RocksDB's memtables (two of 4 MiB for a 64 MiB tier), block cache and table
// readers, allocator slack. Measured at 60-90 MiB (see the test's output).
constexpr uint64_t kOverheadBytes = 160 << 20;
constexpr int kClients = 32;

std::string PayloadOf(const Key& key) {
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed = seed << 8 | key.bytes[i];
  return TestPayload(1024 * (1 + key.bytes[8] % 128), seed);  // 1 KiB .. 128 KiB.
}

// A /proc/<pid>/status field in bytes (VmRSS, VmHWM).
uint64_t ProcStatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
  }
  return 0;
}

TEST(SoakTest, ThirtyTwoClientsMixingEveryRpcGetOnlyDocumentedAnswersWithinTheBudget) {
  const char* env = std::getenv("KVCACHE_SOAK_SECONDS");
  const absl::Duration duration = absl::Seconds(env ? std::atoi(env) : 20);
  TempDir dir;
  Process server({Bin("kvcache-server"), "--listen=127.0.0.1:0",
                  absl::StrCat("--ram-bytes=", kRamBytes), "--disk-path=" + dir.Sub("data"),
                  "--disk-bytes=64MiB", "--max-block-bytes=1MiB", "--metrics-listen=",
                  absl::StrCat("--max-inflight-bytes=", kInflightBytes), "--shutdown-grace=0s",
                  absl::StrCat("--local-regions-max-bytes=", kLocalRegionsBytes)});
  const std::string address = testing::ListenAddress(server.WaitForLine("listening on", 60));
  ASSERT_FALSE(address.empty()) << server.output();
  const pid_t pid = server.pid();

  std::mutex mu;
  std::map<std::string, uint64_t> answers;  // "rpc code" -> count.
  std::atomic<uint64_t> corrupt{0}, served{0}, calls{0};
  std::atomic<bool> stop{false};
  auto count = [&](const char* rpc, const absl::Status& s) {
    calls.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    ++answers[absl::StrCat(rpc, " ", absl::StatusCodeToString(s.code()))];
  };
  const Key ns = TestKey(3, 33);
  std::atomic<uint64_t> next_key{0};

  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      CacheClientOptions o;
      o.target = address;
      o.use_data_channel = c % 2 == 0;  // Half over the data channel, half over gRPC.
      std::unique_ptr<CacheClient> client = *NewCacheClient(o);
      AdminClientOptions ao;
      ao.target = address;
      std::unique_ptr<AdminClient> admin = *NewAdminClient(ao);
      std::mt19937_64 rng(c);
      while (!stop.load()) {
        const uint64_t written = std::max<uint64_t>(1, next_key.load());
        const int op = static_cast<int>(rng() % 100);
        if (op < 30) {  // Put a chain of new blocks.
          std::vector<Key> chain;
          for (int i = 0; i < 4; ++i) chain.push_back(TestKey(next_key.fetch_add(1)));
          std::vector<CacheBlock> blocks = ChainedBlocks(chain, 0);
          for (CacheBlock& b : blocks) b.payload = PayloadOf(b.key);
          count("Put", client->Put(ns, blocks).status());
        } else if (op < 60) {
          std::vector<Key> keys;
          const uint64_t first = rng() % written;
          for (uint64_t i = 0; i < 4; ++i) keys.push_back(TestKey(first + i));
          absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns, keys);
          count("Get", got.status());
          if (got.ok()) {
            for (const CacheBlock& b : *got) {
              served.fetch_add(1);
              if (b.payload != PayloadOf(b.key)) corrupt.fetch_add(1);
            }
          }
        } else if (op < 85) {
          std::vector<Key> keys;
          const uint64_t first = rng() % written;
          for (uint64_t i = 0; i < 16; ++i) keys.push_back(TestKey(first + i));
          count("Lookup", client->Lookup(ns, keys).status());
        } else if (op < 90) {
          count("Stats", admin->GetStats().status());
        } else if (op < 94) {
          v1::ListBlocksRequest r;
          r.set_limit(50);
          count("List", admin->ListBlocks(r).status());
        } else if (op < 97) {
          v1::InspectBlockRequest r;
          r.set_namespace_id(std::string(ns.view()));
          r.set_key(std::string(TestKey(rng() % written).view()));
          absl::StatusOr<v1::InspectBlockResponse> got = admin->InspectBlock(r);
          count("Inspect", absl::IsNotFound(got.status()) ? absl::OkStatus() : got.status());
        } else {
          v1::EvictRequest r;
          r.set_key(std::string(TestKey(rng() % written).view()));
          count("Evict", admin->Evict(r).status());
        }
      }
    });
  }
  uint64_t peak_rss = 0;
  const absl::Time end = absl::Now() + duration;
  while (absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(200));
    peak_rss = std::max(peak_rss, ProcStatusBytes(pid, "VmRSS"));
  }
  stop = true;
  for (std::thread& t : clients) t.join();
  const uint64_t hwm = ProcStatusBytes(pid, "VmHWM");

  AdminClientOptions ao;
  ao.target = address;
  absl::StatusOr<v1::GetStatsResponse> stats = (*NewAdminClient(ao))->GetStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  const uint64_t index_bytes = stats->disk().index_bytes();
  const uint64_t budget = kRamBytes + kArenaSlackBytes + index_bytes + kInflightBytes +
                          kLocalRegionsBytes + kOverheadBytes;

  std::printf("soak: %d clients, %lld s, %llu calls, %llu blocks served, %llu corrupt\n",
              kClients, static_cast<long long>(absl::ToInt64Seconds(duration)),
              static_cast<unsigned long long>(calls.load()),
              static_cast<unsigned long long>(served.load()),
              static_cast<unsigned long long>(corrupt.load()));
  for (const auto& [what, n] : answers) {
    std::printf("  %-28s %llu\n", what.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("soak: peak RSS %.1f MiB (VmHWM %.1f MiB); budget %.1f MiB = ram %.0f + arena "
              "slack %.0f + disk index %.1f + in flight %.0f + same-host regions %.0f + "
              "overhead %.0f\n",
              peak_rss / 1048576.0, hwm / 1048576.0, budget / 1048576.0, kRamBytes / 1048576.0,
              kArenaSlackBytes / 1048576.0, index_bytes / 1048576.0, kInflightBytes / 1048576.0,
              kLocalRegionsBytes / 1048576.0, kOverheadBytes / 1048576.0);

  EXPECT_EQ(corrupt.load(), 0u);
  EXPECT_GT(served.load(), 0u);
  for (const auto& [what, n] : answers) {
    // OK, a limit's refusal, or the caller's own deadline (5 s) on a loaded CI machine.
    const bool documented = absl::EndsWith(what, " OK") ||
                            absl::EndsWith(what, " RESOURCE_EXHAUSTED") ||
                            absl::EndsWith(what, " DEADLINE_EXCEEDED");
    EXPECT_TRUE(documented) << what << " x" << n;
  }
  EXPECT_LE(hwm, budget);
  EXPECT_EQ(stats->disk().checksum_failures(), 0u);
  EXPECT_FALSE(stats->disk().degraded()) << stats->disk().fault();
}

}  // namespace
}  // namespace kvcache
