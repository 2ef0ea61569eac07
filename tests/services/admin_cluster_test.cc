// kvcache-admin over a cluster: three real kvcache-server processes on 127.0.0.1:0, blocks
// put through the cluster client, and the real kvcache-admin binary given the node list.
// Also the figures behind `cluster` (key shares, skew) as plain functions.

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "client/cache_client.h"
#include "client/rendezvous.h"
#include "gtest/gtest.h"
#include "services/admin_cluster.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using nlohmann::json;
using testing::Bin;
using testing::CommandResult;
using testing::Process;
using testing::TempDir;

TEST(KeySharesTest, EachOfThreeNodesOwnsAboutAThird) {
  const std::vector<std::string> nodes{"10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"};
  const std::vector<double> shares = SampledKeyShares(nodes, 1, 100000);
  ASSERT_EQ(shares.size(), 3u);
  EXPECT_NEAR(std::accumulate(shares.begin(), shares.end(), 0.0), 1.0, 1e-9);
  for (double s : shares) EXPECT_NEAR(s, 1.0 / 3, 0.01);
  // With R = 2 each node is one of the two owners of about 2/3 of the keys.
  for (double s : SampledKeyShares(nodes, 2, 100000)) EXPECT_NEAR(s, 2.0 / 3, 0.01);
  // Reproducible: a fixed seed.
  EXPECT_EQ(SampledKeyShares(nodes, 1, 1000), SampledKeyShares(nodes, 1, 1000));
  EXPECT_EQ(SampledKeyShares({"a:1"}, 3, 10), std::vector<double>{1.0});
}

TEST(SkewTest, IsMaxOverMeanAndUndefinedWithoutData) {
  const uint64_t even[] = {10, 10, 10};
  EXPECT_DOUBLE_EQ(*Skew(even), 1.0);
  const uint64_t uneven[] = {30, 0, 0};
  EXPECT_DOUBLE_EQ(*Skew(uneven), 3.0);
  const uint64_t empty_nodes[] = {0, 0};
  EXPECT_FALSE(Skew(empty_nodes).has_value());
  EXPECT_FALSE(Skew({}).has_value());
}

class AdminClusterTest : public ::testing::Test {
 protected:
  static constexpr int kBlocks = 60;

  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      auto server = std::make_unique<Process>(std::vector<std::string>{
          Bin("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=16MiB", "--disk-path=",
          "--metrics-listen="});
      ASSERT_TRUE(server->started());
      const std::string line = server->WaitForLine("listening on");
      const std::string address = testing::ListenAddress(line);
      ASSERT_FALSE(address.empty()) << server->output();
      addresses_.push_back(address);
      const size_t admin = line.find("| admin ");
      ASSERT_NE(admin, std::string::npos) << line;
      admin_addresses_.push_back(line.substr(admin + 8, line.find(' ', admin + 8) - admin - 8));
      servers_.push_back(std::move(server));
    }
    target_ = absl::StrJoin(addresses_, ",");
  }

  // Puts kBlocks blocks of 4 KiB through the cluster client (R = 1).
  void PutBlocks() {
    CacheClientOptions o;
    o.target = target_;
    o.timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<CacheClient>> client = NewCacheClient(o);
    ASSERT_TRUE(client.ok()) << client.status();
    std::vector<CacheBlock> blocks;
    for (int i = 0; i < kBlocks; ++i) {
      CacheBlock b;
      b.key = testing::TestKey(i + 1);
      b.payload = testing::TestPayload(4096, i);
      blocks.push_back(std::move(b));
    }
    absl::StatusOr<CachePutResult> put = (*client)->Put(ns_, blocks);
    ASSERT_TRUE(put.ok()) << put.status();
    // A node that failed its share would pass Put (publishing is best effort) and fail the
    // test later with a puzzling count; say so here.
    ASSERT_EQ(put->stored, static_cast<uint32_t>(kBlocks));
  }

  // On failure, what each server said, and whether it is still running: a node missing
  // from a cluster command is otherwise a mystery.
  void TearDown() override {
    if (!HasFailure()) return;
    for (size_t i = 0; i < servers_.size(); ++i) {
      Process& s = *servers_[i];
      // /proc's state letter: R or S running, Z exited (not yet waited for).
      std::ifstream stat("/proc/" + std::to_string(s.pid()) + "/stat");
      std::string pid, comm, state;
      stat >> pid >> comm >> state;
      s.WaitForLine("\x01", 1);  // Reads what is there.
      // Exited: its status (128 + signal when killed by one, as a crash is).
      const std::string exit = state == "Z" ? " exit status " + std::to_string(s.Wait()) : "";
      std::cerr << "server " << i << " (" << (i < addresses_.size() ? addresses_[i] : "?")
                << ") state " << state << exit << ", output:\n"
                << s.output() << "\n";
    }
  }

  CommandResult Admin(const std::string& target, std::vector<std::string> args) {
    args.insert(args.begin(), {Bin("kvcache-admin"), "--server=" + target, "--timeout=3s"});
    return testing::Run(std::move(args));
  }
  CommandResult Admin(std::vector<std::string> args) { return Admin(target_, std::move(args)); }

  // The JSON of a command's output (stdout and stderr are one pipe: JSON comes first and
  // the error line, if any, last).
  static json Json(const CommandResult& r) {
    const size_t end = r.output.rfind("\n}");
    EXPECT_NE(end, std::string::npos) << r.output;
    return json::parse(r.output.substr(0, end + 2));
  }

  static std::string Hex(const Key& k) { return KeyToHex(k); }

  std::vector<std::unique_ptr<Process>> servers_;
  std::vector<std::string> addresses_;
  std::vector<std::string> admin_addresses_;  // Each node's own admin listener.
  std::string target_;
  const Key ns_ = testing::TestKey(7, 0xaa);
};

TEST_F(AdminClusterTest, ClusterShowsEveryNodeWithBlocksAddingUpAndAThirdOfTheKeys) {
  PutBlocks();
  CommandResult r = Admin({"cluster", "--json"});
  ASSERT_EQ(r.exit_status, 0) << r.output;
  const json j = Json(r);
  ASSERT_EQ(j["nodes"].size(), 3u) << r.output;
  uint64_t blocks = 0, bytes = 0, max_blocks = 0;
  for (size_t i = 0; i < 3; ++i) {
    const json& n = j["nodes"][i];
    EXPECT_EQ(n["address"], addresses_[i]);
    EXPECT_EQ(n["health"], "SERVING");
    EXPECT_TRUE(n["error"].is_null());
    EXPECT_NEAR(n["key_share"].get<double>(), 1.0 / 3, 0.01) << n;
    EXPECT_EQ(n["blocks"], n["ram_blocks"].get<uint64_t>() + n["disk_blocks"].get<uint64_t>());
    blocks += n["blocks"].get<uint64_t>();
    bytes += n["bytes"].get<uint64_t>();
    max_blocks = std::max(max_blocks, n["blocks"].get<uint64_t>());
    for (const char* field : {"hit_ratio", "lookup_hit_ratio", "ram_bytes", "disk_bytes"}) {
      EXPECT_TRUE(n.contains(field)) << field;
    }
  }
  EXPECT_EQ(blocks, static_cast<uint64_t>(kBlocks));
  EXPECT_EQ(j["blocks"], blocks);
  EXPECT_EQ(j["bytes"], bytes);
  EXPECT_GE(bytes, kBlocks * 4096u);
  EXPECT_EQ(j["answered"], 3);
  EXPECT_DOUBLE_EQ(j["skew_blocks"].get<double>(), max_blocks / (kBlocks / 3.0));
  EXPECT_GE(j["skew_bytes"].get<double>(), 1.0);

  CommandResult text = Admin({"cluster"});
  ASSERT_EQ(text.exit_status, 0) << text.output;
  for (const std::string& a : addresses_) {
    EXPECT_NE(text.output.find(a + " "), std::string::npos) << text.output;
  }
  EXPECT_NE(text.output.find("total (3 of 3 nodes)"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("skew"), std::string::npos) << text.output;

  // One node is a cluster of one: it owns every key.
  CommandResult one = Admin(addresses_[0], {"cluster", "--json"});
  ASSERT_EQ(one.exit_status, 0) << one.output;
  EXPECT_DOUBLE_EQ(Json(one)["nodes"][0]["key_share"].get<double>(), 1.0);
}

TEST_F(AdminClusterTest, LocateNamesTheOwnerThatInspectFindsTheBlockOn) {
  PutBlocks();
  for (int i : {1, 17, 42}) {
    const Key key = testing::TestKey(i);
    CommandResult r = Admin({"locate", "--namespace=" + Hex(ns_), "--key=" + Hex(key),
                             "--replicas=2", "--json"});
    ASSERT_EQ(r.exit_status, 0) << r.output;
    const json j = Json(r);
    ASSERT_EQ(j["nodes"].size(), 3u);
    EXPECT_EQ(j["nodes"][0]["address"], LocateOwners(addresses_, ns_, key)[0]);
    EXPECT_EQ(j["nodes"][0]["rank"], 1);
    EXPECT_EQ(j["nodes"][0]["owner"], true);
    EXPECT_EQ(j["nodes"][1]["owner"], true);   // --replicas=2
    EXPECT_EQ(j["nodes"][2]["owner"], false);
    // Written with R = 1: held by its first owner only, in RAM (no disk tier).
    EXPECT_EQ(j["nodes"][0]["held"], true) << r.output;
    EXPECT_EQ(j["nodes"][0]["tier"], "ram");
    EXPECT_EQ(j["nodes"][1]["held"], false);
    EXPECT_EQ(j["nodes"][2]["held"], false);

    const std::string owner = j["nodes"][0]["address"];
    CommandResult inspect =
        Admin(owner, {"inspect", "--namespace=" + Hex(ns_), "--key=" + Hex(key), "--json"});
    ASSERT_EQ(inspect.exit_status, 0) << inspect.output;
    EXPECT_EQ(json::parse(inspect.output)["key"], Hex(key));
    // inspect over the cluster finds it on that node alone.
    CommandResult everywhere = Admin({"inspect", "--key=" + Hex(key), "--json"});
    ASSERT_EQ(everywhere.exit_status, 0) << everywhere.output;
    EXPECT_EQ(Json(everywhere)["node"], owner);
  }
  CommandResult text = Admin({"locate", "--namespace=" + Hex(ns_), "--key=" + Hex(ns_)});
  ASSERT_EQ(text.exit_status, 0) << text.output;
  EXPECT_NE(text.output.find("owner"), std::string::npos) << text.output;
  EXPECT_EQ(text.output.find("ram"), std::string::npos) << text.output;  // Held nowhere.
}

// Dialed on their admin listeners (as in deploy/), the nodes are still placed by their cache
// ports, as clients place blocks: locate names the owner that holds the block, and the key
// shares are those over the cache addresses.
TEST_F(AdminClusterTest, PlacementThroughAdminPortsIsByTheCachePorts) {
  PutBlocks();
  const std::string admin_target = absl::StrJoin(admin_addresses_, ",");
  for (int i : {3, 29}) {
    const Key key = testing::TestKey(i);
    CommandResult r = Admin(admin_target, {"locate", "--namespace=" + Hex(ns_),
                                           "--key=" + Hex(key), "--json"});
    ASSERT_EQ(r.exit_status, 0) << r.output;
    const json j = Json(r);
    const std::string owner = LocateOwners(addresses_, ns_, key)[0];
    EXPECT_EQ(j["nodes"][0]["placement_address"], owner) << r.output;
    const size_t n = std::find(addresses_.begin(), addresses_.end(), owner) - addresses_.begin();
    EXPECT_EQ(j["nodes"][0]["address"], admin_addresses_[n]) << r.output;
    EXPECT_EQ(j["nodes"][0]["held"], true) << r.output;
  }
  CommandResult c = Admin(admin_target, {"cluster", "--json"});
  ASSERT_EQ(c.exit_status, 0) << c.output;
  const std::vector<double> shares = SampledKeyShares(addresses_, 1, 10000);
  const json j = Json(c);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(j["nodes"][i]["key_share"].get<double>(), shares[i], 0.02) << c.output;
  }
}

TEST_F(AdminClusterTest, ClusterStatsAreTheSumOfTheNodes) {
  PutBlocks();
  CommandResult r = Admin({"stats", "--json"});
  ASSERT_EQ(r.exit_status, 0) << r.output;
  const json j = Json(r);
  ASSERT_EQ(j["nodes"].size(), 3u);
  uint64_t blocks = 0, bytes = 0, capacity = 0, inserts = 0;
  for (size_t i = 0; i < 3; ++i) {
    const json& n = j["nodes"][i];
    EXPECT_EQ(n["address"], addresses_[i]);
    // Each node's entry is what the node itself reports.
    CommandResult own = Admin(addresses_[i], {"stats", "--json"});
    ASSERT_EQ(own.exit_status, 0) << own.output;
    const json o = json::parse(own.output);
    EXPECT_EQ(n["ram"]["blocks"], o["ram"]["blocks"]);
    EXPECT_FALSE(o.contains("nodes"));  // One node: the output of old.
    blocks += n["ram"]["blocks"].get<uint64_t>();
    bytes += n["ram"]["bytes"].get<uint64_t>();
    capacity += n["ram"]["capacity_bytes"].get<uint64_t>();
    inserts += n["ram"]["inserts"].get<uint64_t>();
  }
  EXPECT_EQ(blocks, static_cast<uint64_t>(kBlocks));
  EXPECT_EQ(j["ram"]["blocks"], blocks);
  EXPECT_EQ(j["ram"]["bytes"], bytes);
  EXPECT_EQ(j["ram"]["capacity_bytes"], capacity);
  EXPECT_EQ(capacity, 3u * (16u << 20));
  EXPECT_EQ(j["ram"]["inserts"], inserts);

  CommandResult text = Admin({"stats"});
  ASSERT_EQ(text.exit_status, 0) << text.output;
  EXPECT_NE(text.output.find("summed over 3 of 3 nodes"), std::string::npos) << text.output;
}

TEST_F(AdminClusterTest, LsMergesTheNodesWithinTheLimit) {
  PutBlocks();
  CommandResult all = Admin({"ls", "--json", "--limit=1000"});
  ASSERT_EQ(all.exit_status, 0) << all.output;
  const json j = Json(all);
  EXPECT_EQ(j["blocks"].size(), static_cast<size_t>(kBlocks));
  EXPECT_EQ(j["truncated"], false);
  std::set<std::string> keys, nodes;
  for (const json& b : j["blocks"]) {
    keys.insert(b["key"].get<std::string>());
    nodes.insert(b["node"].get<std::string>());
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(kBlocks));
  EXPECT_EQ(nodes.size(), 3u);

  CommandResult some = Admin({"ls", "--json", "--limit=10"});
  ASSERT_EQ(some.exit_status, 0) << some.output;
  EXPECT_EQ(Json(some)["blocks"].size(), 10u);
  EXPECT_EQ(Json(some)["truncated"], true);
  CommandResult text = Admin({"ls", "--limit=10"});
  ASSERT_EQ(text.exit_status, 0) << text.output;
  EXPECT_NE(text.output.find("10 blocks on 3 of 3 nodes (more not shown"), std::string::npos)
      << text.output;
}

TEST_F(AdminClusterTest, EvictAndFlushEmptyEveryNode) {
  PutBlocks();
  CommandResult evict = Admin({"evict", "--namespace=" + Hex(ns_)});
  ASSERT_EQ(evict.exit_status, 0) << evict.output;
  EXPECT_NE(evict.output.find("evicted " + std::to_string(kBlocks) + " blocks in total (3 of 3"),
            std::string::npos)
      << evict.output;
  for (const std::string& a : addresses_) {
    EXPECT_NE(evict.output.find(a + ": evicted "), std::string::npos) << evict.output;
  }

  PutBlocks();
  CommandResult flush = Admin({"flush", "--tier=all"});
  ASSERT_EQ(flush.exit_status, 0) << flush.output;
  EXPECT_NE(flush.output.find("dropped " + std::to_string(kBlocks) + " blocks in total"),
            std::string::npos)
      << flush.output;
  const json after = Json(Admin({"cluster", "--json"}));
  EXPECT_EQ(after["blocks"], 0);
  for (const json& n : after["nodes"]) EXPECT_EQ(n["blocks"], 0) << n;
  EXPECT_TRUE(after["skew_blocks"].is_null());
}

TEST_F(AdminClusterTest, HealthIsOneLinePerNode) {
  CommandResult r = Admin({"health"});
  ASSERT_EQ(r.exit_status, 0) << r.output;
  for (const std::string& a : addresses_) {
    EXPECT_NE(r.output.find(a + " SERVING\n"), std::string::npos) << r.output;
  }
  CommandResult j = Admin({"health", "--json"});
  ASSERT_EQ(j.exit_status, 0) << j.output;
  EXPECT_EQ(Json(j)["status"], "SERVING");
  EXPECT_EQ(Json(j)["nodes"].size(), 3u);
}

TEST_F(AdminClusterTest, ADrainingNodeShowsNotServingWithItsFigures) {
  PutBlocks();
  servers_[2]->Kill(SIGTERM);  // Drains for the default 10 s: health NOT_SERVING, calls served.
  ASSERT_NE(servers_[2]->WaitForLine("draining"), "") << servers_[2]->output();
  CommandResult health = Admin({"health"});
  EXPECT_EQ(health.exit_status, 1) << health.output;
  EXPECT_NE(health.output.find(addresses_[2] + " NOT_SERVING\n"), std::string::npos)
      << health.output;
  EXPECT_NE(health.output.find("1 of 3 nodes are not SERVING"), std::string::npos)
      << health.output;
  CommandResult r = Admin({"cluster", "--json"});
  ASSERT_EQ(r.exit_status, 0) << r.output;
  const json j = Json(r);
  EXPECT_EQ(j["nodes"][2]["health"], "NOT_SERVING");
  EXPECT_FALSE(j["nodes"][2]["blocks"].is_null());
  EXPECT_EQ(j["answered"], 3);
  EXPECT_EQ(j["blocks"], kBlocks);
}

TEST_F(AdminClusterTest, AKilledNodeIsARowWithItsErrorNotAFailedCommand) {
  PutBlocks();
  servers_[1]->Kill(SIGKILL);
  CommandResult r = Admin({"cluster", "--json"});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  const json j = Json(r);
  EXPECT_EQ(j["answered"], 2);
  EXPECT_EQ(j["nodes"][1]["health"], "unreachable");
  EXPECT_NE(j["nodes"][1]["error"].get<std::string>().find(addresses_[1]), std::string::npos);
  EXPECT_TRUE(j["nodes"][1]["blocks"].is_null());
  EXPECT_EQ(j["nodes"][0]["health"], "SERVING");
  EXPECT_EQ(j["nodes"][2]["health"], "SERVING");

  CommandResult text = Admin({"cluster"});
  EXPECT_EQ(text.exit_status, 0) << text.output;
  const size_t row = text.output.find("\n" + addresses_[1] + " ");
  ASSERT_NE(row, std::string::npos) << text.output;
  EXPECT_NE(text.output.substr(row + 1, text.output.find('\n', row + 1) - row - 1)
                .find(" unreachable "),
            std::string::npos)
      << text.output;

  // Commands that must reach every node say which one they missed, and fail.
  CommandResult health = Admin({"health"});
  EXPECT_EQ(health.exit_status, 1) << health.output;
  EXPECT_NE(health.output.find(addresses_[1] + " unreachable"), std::string::npos);
  CommandResult stats = Admin({"stats", "--json"});
  EXPECT_EQ(stats.exit_status, 1) << stats.output;
  EXPECT_EQ(Json(stats)["nodes"][1]["ram"], nullptr);
  EXPECT_EQ(Admin({"flush", "--tier=ram"}).exit_status, 1);

  // No node at all: the command fails.
  servers_[0]->Kill(SIGKILL);
  servers_[2]->Kill(SIGKILL);
  CommandResult none = Admin({"cluster"});
  EXPECT_EQ(none.exit_status, 1) << none.output;
  EXPECT_NE(none.output.find("no node answered"), std::string::npos) << none.output;
}

TEST_F(AdminClusterTest, UsageErrorsExitTwoBeforeAnyCall) {
  const std::vector<std::vector<std::string>> cases = {
      {"locate", "--key=" + Hex(ns_)},                               // no --namespace
      {"locate", "--namespace=" + Hex(ns_)},                         // no --key
      {"locate", "--namespace=" + Hex(ns_), "--key=abc"},
      {"locate", "--namespace=" + Hex(ns_), "--key=" + Hex(ns_), "--replicas=0"},
      {"cluster", "--replicas=-1"},
  };
  for (const auto& c : cases) {
    CommandResult r = Admin(c);
    EXPECT_EQ(r.exit_status, 2) << absl::StrJoin(c, " ") << "\n" << r.output;
  }
  CommandResult bad_target = Admin(target_ + ",", {"cluster"});
  EXPECT_EQ(bad_target.exit_status, 2) << bad_target.output;
  EXPECT_NE(bad_target.output.find("--server"), std::string::npos) << bad_target.output;
  CommandResult bad_dns = Admin("dns:///name-without-port", {"stats"});
  EXPECT_EQ(bad_dns.exit_status, 2) << bad_dns.output;
  CommandResult no_name = Admin("dns:///no-such-host.invalid:50051", {"cluster"});
  EXPECT_EQ(no_name.exit_status, 1) << no_name.output;
}

}  // namespace
}  // namespace kvcache
