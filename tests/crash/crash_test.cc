// The crash test, after RocksDB's db_crashtest: the real kvcache-server over a small RAM
// tier (so blocks are demoted to disk all the time) and a disk tier, concurrent writers and
// readers, SIGKILL at a random moment (mid-Put, mid-demotion, mid-compaction), then:
//   1. the disk directory, opened in this process as the server would, holds an index that
//      agrees with its contents: every block it lists reads back, passes its checksum and
//      carries the bytes derived from its key;
//   2. the server starts again, every time, and serves what it still holds;
//   3. every block ever served, during a cycle or after a restart, carries exactly the bytes
//      written for its key (a payload is derived from its key, so any read is checkable).
//
// KVCACHE_CRASH_CYCLES sets the cycles (default 3, for CI); scripts/crash_test.sh runs 50.
// KVCACHE_CRASH_SEED fixes the random kill moments (default: from the clock, printed).

#include <atomic>
#include <cstdlib>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cachestore/block_store.h"
#include "client/cache_client.h"
#include "common/checksum.h"
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

// The bytes written for `key`: 4 KiB to 128 KiB, a pattern seeded by the key.
std::string PayloadOf(const Key& key) {
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed = seed << 8 | key.bytes[i];
  const size_t size = 4096 * (1 + key.bytes[8] % 32);
  return TestPayload(size, seed);
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

class CrashTest : public ::testing::Test {
 protected:
  std::unique_ptr<Process> StartServer() {
    auto server = std::make_unique<Process>(std::vector<std::string>{
        Bin("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=4MiB",
        "--disk-path=" + dir_.Sub("data"), "--disk-bytes=48MiB", "--max-block-bytes=1MiB",
        "--metrics-listen=", "--shutdown-grace=0s"});
    const std::string line = server->WaitForLine("listening on", 60);
    address_ = testing::ListenAddress(line);
    return address_.empty() ? nullptr : std::move(server);
  }

  std::unique_ptr<CacheClient> Client() {
    CacheClientOptions o;
    o.target = address_;
    o.timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Checks blocks a Get returned; counts the wrong ones.
  void Check(const std::vector<CacheBlock>& got) {
    for (const CacheBlock& b : got) {
      served_.fetch_add(1);
      if (b.payload != PayloadOf(b.key)) corrupt_.fetch_add(1);
    }
  }

  // Writers put chains of new keys; readers get keys written so far. Until `stop`.
  void Load(std::atomic<bool>* stop, uint64_t seed) {
    std::vector<std::thread> threads;
    for (int w = 0; w < 3; ++w) {
      threads.emplace_back([this, stop] {
        std::unique_ptr<CacheClient> client = Client();
        while (client && !stop->load()) {
          std::vector<Key> chain;
          for (int i = 0; i < 4; ++i) chain.push_back(TestKey(next_key_.fetch_add(1)));
          std::vector<CacheBlock> blocks = ChainedBlocks(chain, 0);
          for (CacheBlock& b : blocks) b.payload = PayloadOf(b.key);
          client->Put(ns_, blocks).IgnoreError();  // The server may be gone.
        }
      });
    }
    for (int r = 0; r < 3; ++r) {
      threads.emplace_back([this, stop, seed, r] {
        std::unique_ptr<CacheClient> client = Client();
        std::mt19937_64 rng(seed + r);
        while (client && !stop->load()) {
          const uint64_t written = next_key_.load();
          if (written == 0) continue;
          std::vector<Key> keys;
          // Recent keys: in RAM, being demoted, or on disk.
          for (int i = 0; i < 8; ++i) {
            keys.push_back(TestKey(written - 1 - rng() % std::min<uint64_t>(written, 2000)));
          }
          absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, keys);
          if (got.ok()) Check(*got);
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }

  // Opens the killed server's directory as the server would and reads every block it lists.
  void VerifyDirectory(int cycle) {
    DiskTierOptions o;
    o.path = dir_.Sub("data");
    o.capacity_bytes = 48 << 20;
    absl::StatusOr<std::unique_ptr<BlockStore>> tier = NewDiskTier(o);
    ASSERT_TRUE(tier.ok()) << "cycle " << cycle << ": " << tier.status();
    const std::vector<BlockInfo> listed = (*tier)->List({}, 1 << 30);
    uint64_t unreadable = 0;
    for (const BlockInfo& info : listed) {
      absl::StatusOr<BlockPtr> block = (*tier)->Get(info.meta.id);
      if (!block.ok()) {
        ++unreadable;
        continue;
      }
      EXPECT_EQ((*block)->payload, PayloadOf(info.meta.id.key)) << "cycle " << cycle;
      EXPECT_EQ(info.payload_bytes, (*block)->payload.size());
    }
    const TierStats s = (*tier)->Stats();
    EXPECT_EQ(unreadable, 0u) << "cycle " << cycle << ": the index lists blocks it cannot read";
    EXPECT_EQ(s.checksum_failures, 0u) << "cycle " << cycle;
    disk_blocks_checked_ += listed.size();
  }

  TempDir dir_;
  std::string address_;
  const Key ns_ = TestKey(1, 77);
  std::atomic<uint64_t> next_key_{0};
  std::atomic<uint64_t> served_{0};
  std::atomic<uint64_t> corrupt_{0};
  uint64_t disk_blocks_checked_ = 0;
};

TEST_F(CrashTest, KilledAtRandomItServesOnlyWhatWasWrittenAndAlwaysRestarts) {
  const int cycles = EnvInt("KVCACHE_CRASH_CYCLES", 3);
  const uint64_t seed = std::getenv("KVCACHE_CRASH_SEED")
                            ? std::strtoull(std::getenv("KVCACHE_CRASH_SEED"), nullptr, 10)
                            : static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  std::printf("crash test: %d cycles, KVCACHE_CRASH_SEED=%llu\n", cycles,
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int cycle = 0; cycle < cycles; ++cycle) {
    std::unique_ptr<Process> server = StartServer();
    ASSERT_NE(server, nullptr) << "cycle " << cycle << ": the server did not start";

    // After a restart, what it still holds is served right.
    {
      std::unique_ptr<CacheClient> client = Client();
      const uint64_t written = next_key_.load();
      // The last 1,500 keys written: those the disk can still hold (one Get a key: a Get
      // stops at the first miss).
      for (uint64_t i = written > 1500 ? written - 1500 : 0; i < written; ++i) {
        const Key key = TestKey(i);
        absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, {key});
        ASSERT_TRUE(got.ok()) << "cycle " << cycle << ": " << got.status();
        Check(*got);
      }
    }

    std::atomic<bool> stop{false};
    std::thread load([&] { Load(&stop, seed + cycle); });
    const auto run_for = std::chrono::milliseconds(500 + rng() % 2500);
    std::this_thread::sleep_for(run_for);
    server->Kill(SIGKILL);  // Mid-whatever: Puts, demotions, compactions, Gets.
    stop = true;
    load.join();
    VerifyDirectory(cycle);
    std::printf("cycle %d: killed after %lld ms; %llu keys written so far, %llu blocks served, "
                "%llu corrupt, %llu disk blocks verified\n",
                cycle, static_cast<long long>(run_for.count()),
                static_cast<unsigned long long>(next_key_.load()),
                static_cast<unsigned long long>(served_.load()),
                static_cast<unsigned long long>(corrupt_.load()),
                static_cast<unsigned long long>(disk_blocks_checked_));
    std::fflush(stdout);
    ASSERT_EQ(corrupt_.load(), 0u) << "cycle " << cycle;
  }
  EXPECT_GT(served_.load(), 0u);
  EXPECT_GT(disk_blocks_checked_, 0u);
}

}  // namespace
}  // namespace kvcache
