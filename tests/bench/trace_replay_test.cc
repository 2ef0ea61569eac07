// The real binaries, end to end: kvcache-bench's live replay against kvcache-server gives
// the same hits as its simulation of the same configuration, for every policy, in RAM and
// over disk.

#include <ostream>
#include <string>
#include <vector>

#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/process.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using nlohmann::json;
using testing::Bin;
using testing::Process;

constexpr uint64_t kBlockBytes = 4096;

struct Config {
  const char* eviction;
  uint64_t ram_blocks;
  uint64_t disk_blocks;
};

void PrintTo(const Config& c, std::ostream* os) {
  *os << c.eviction << ", RAM " << c.ram_blocks << " + disk " << c.disk_blocks << " blocks";
}

class TraceReplayTest : public ::testing::TestWithParam<Config> {
 protected:
  static json RunJson(std::vector<std::string> args) {
    args.insert(args.begin(), {Bin("kvcache-bench"), "trace", "--synthetic", "--seed=3",
                               "--limit-requests=400", "--json"});
    testing::CommandResult r = testing::Run(std::move(args));
    EXPECT_EQ(r.exit_status, 0) << r.output;
    json j = json::parse(r.output, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << r.output;
    return j;
  }

  testing::TempDir dir_;
};

TEST_P(TraceReplayTest, LiveReplayMatchesTheSimulation) {
  const Config c = GetParam();
  // What a block costs the server's tiers with this policy (its own state included).
  const uint64_t extra = EvictionPolicyExtraBytes(c.eviction);
  const uint64_t charge = ChargeOf(kBlockBytes, TierId::kRam) + extra;
  const uint64_t disk_charge = ChargeOf(kBlockBytes, TierId::kDisk) + extra;
  std::vector<std::string> server_args{
      Bin("kvcache-server"), "--listen=127.0.0.1:0",
      "--metrics-listen=",   "--ram-bytes=" + std::to_string(c.ram_blocks * charge),
      "--ram-shard-bits=0",  std::string("--eviction=") + c.eviction};
  if (c.disk_blocks > 0) {
    // Demotions on the Put's thread, as the simulation does (the background queue makes
    // what is on disk when depend on timing).
    server_args.push_back("--demotion-queue-bytes=0");
    server_args.push_back("--disk-path=" + dir_.Sub("disk"));
    server_args.push_back("--disk-bytes=" + std::to_string(c.disk_blocks * disk_charge));
    // Room for RocksDB's garbage beyond the blocks: otherwise, when its collection lags (a
    // loaded machine), the tier turns writes away or shrinks its live budget, which the
    // simulation (exactly N blocks) does not model.
    server_args.push_back("--disk-dir-slack=1GiB");
  } else {
    server_args.push_back("--disk-path=");
  }
  Process server(server_args);
  ASSERT_TRUE(server.started());
  const std::string address = testing::ListenAddress(server.WaitForLine("listening on"));
  ASSERT_FALSE(address.empty()) << server.output();

  const json live =
      RunJson({"--server=" + address, "--block-bytes=" + std::to_string(kBlockBytes)});
  const json sim = RunJson({"--simulate", "--ram-blocks=" + std::to_string(c.ram_blocks),
                            "--disk-blocks=" + std::to_string(c.disk_blocks),
                            std::string("--eviction=") + c.eviction});
  ASSERT_TRUE(live.is_object() && sim.is_object());
  EXPECT_EQ(live["errors"], 0);
  EXPECT_EQ(live["requests"], 400);
  EXPECT_EQ(live["block_reads"], sim["block_reads"]);
  EXPECT_GT(sim["block_hits"].get<uint64_t>(), 0u);
  EXPECT_EQ(live["block_hits"], sim["block_hits"]);
  EXPECT_EQ(live["ram_hits"], sim["ram_hits"]);
  EXPECT_EQ(live["disk_hits"], sim["disk_hits"]);
  EXPECT_DOUBLE_EQ(live["token_hit_ratio"].get<double>(), sim["token_hit_ratio"].get<double>());
  EXPECT_EQ(live["bytes_read"], live["block_hits"].get<uint64_t>() * kBlockBytes);
  EXPECT_GT(live["request"]["p50_us"].get<double>(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Policies, TraceReplayTest,
                         ::testing::Values(Config{"lru", 300, 0}, Config{"prefix-lfu", 300, 0},
                                           Config{"reuse-density", 300, 0},
                                           Config{"lru", 100, 400}, Config{"prefix-lfu", 100, 400},
                                           Config{"reuse-density", 100, 400}),
                         [](const ::testing::TestParamInfo<Config>& info) {
                           std::string name = info.param.eviction;
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name + (info.param.disk_blocks ? "_Tiered" : "_RamOnly");
                         });

}  // namespace
}  // namespace kvcache
