// Rendezvous placement: deterministic, R distinct owners, balanced, and a join or a leave
// moves only the blocks the node gains or owned. Prints the share moved when a 4th node joins
// a 3-node ring (docs/cluster.md).

#include "client/rendezvous.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;

const std::vector<std::string> kThree = {"10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"};
const Key kNs = TestKey(7, 9);
constexpr int kKeys = 40000;

TEST(RendezvousTest, OrderIsDeterministicAndIndependentOfListOrder) {
  std::vector<std::string> reversed(kThree.rbegin(), kThree.rend());
  for (int i = 0; i < 100; ++i) {
    const Key k = TestKey(i);
    EXPECT_EQ(RendezvousScore(kThree[0], kNs, k), RendezvousScore(kThree[0], kNs, k));
    EXPECT_EQ(LocateOwners(kThree, kNs, k), LocateOwners(reversed, kNs, k));
    EXPECT_EQ(LocateOwners(kThree, kNs, k), LocateOwners(kThree, kNs, k));
  }
}

TEST(RendezvousTest, NamespaceChangesPlacement) {
  int differ = 0;
  for (int i = 0; i < 300; ++i) {
    differ += RendezvousRank(kThree, kNs, TestKey(i), 1) !=
              RendezvousRank(kThree, TestKey(8, 9), TestKey(i), 1);
  }
  EXPECT_GT(differ, 100);  // About 2/3 of them.
}

TEST(RendezvousTest, ReplicasAreDistinctNodes) {
  for (int i = 0; i < 1000; ++i) {
    std::vector<size_t> owners = RendezvousRank(kThree, kNs, TestKey(i), 2);
    ASSERT_EQ(owners.size(), 2u);
    EXPECT_NE(owners[0], owners[1]);
    EXPECT_EQ(RendezvousRank(kThree, kNs, TestKey(i), 10).size(), 3u);
    // The first R of a longer ranking are the R owners.
    EXPECT_EQ(RendezvousRank(kThree, kNs, TestKey(i), 3)[0], owners[0]);
  }
}

TEST(RendezvousTest, KeysSpreadEvenly) {
  std::vector<int> count(kThree.size());
  for (int i = 0; i < kKeys; ++i) ++count[RendezvousRank(kThree, kNs, TestKey(i), 1)[0]];
  for (int c : count) EXPECT_NEAR(c, kKeys / 3.0, kKeys * 0.02);
}

TEST(RendezvousTest, JoinMovesAboutAQuarterToTheNewNodeOnly) {
  std::vector<std::string> four = kThree;
  four.push_back("10.0.0.4:50051");
  int moved = 0, moved_replica_sets = 0;
  for (int i = 0; i < kKeys; ++i) {
    const Key k = TestKey(i);
    const std::string before = kThree[RendezvousRank(kThree, kNs, k, 1)[0]];
    const std::string after = four[RendezvousRank(four, kNs, k, 1)[0]];
    if (before != after) {
      ++moved;
      EXPECT_EQ(after, four[3]) << "a block moved between two old nodes";
    }
    // R = 2: a replica set changes only by taking in the new node.
    std::set<std::string> b2, a2;
    for (size_t n : RendezvousRank(kThree, kNs, k, 2)) b2.insert(kThree[n]);
    for (size_t n : RendezvousRank(four, kNs, k, 2)) a2.insert(four[n]);
    if (b2 != a2) {
      ++moved_replica_sets;
      EXPECT_TRUE(a2.count(four[3])) << "a replica moved between two old nodes";
    }
  }
  const double share = static_cast<double>(moved) / kKeys;
  std::printf("[ figure ] 4th node joins 3: %.4f of blocks move (ideal 0.25), all to the new "
              "node; R=2: %.4f of replica sets change (ideal 0.5)\n",
              share, static_cast<double>(moved_replica_sets) / kKeys);
  EXPECT_NEAR(share, 0.25, 0.02);
}

TEST(RendezvousTest, LeaveMovesOnlyTheLeaversBlocks) {
  const std::vector<std::string> two = {kThree[0], kThree[2]};
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    const Key k = TestKey(i);
    const std::string before = kThree[RendezvousRank(kThree, kNs, k, 1)[0]];
    const std::string after = two[RendezvousRank(two, kNs, k, 1)[0]];
    if (before != after) {
      ++moved;
      EXPECT_EQ(before, kThree[1]);
    }
    // The second choice under three nodes is the first once the owner leaves.
    if (before == kThree[1]) {
      EXPECT_EQ(after, kThree[RendezvousRank(kThree, kNs, k, 2)[1]]);
    }
  }
  EXPECT_NEAR(static_cast<double>(moved) / kKeys, 1.0 / 3, 0.02);
}

TEST(RendezvousTest, ParsesTargets) {
  absl::StatusOr<ClusterTarget> t = ParseClusterTarget("a:1");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->is_cluster());
  t = ParseClusterTarget(" a:1, b:2 ,a:1,c:3");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->is_cluster());
  EXPECT_EQ(t->addresses, (std::vector<std::string>{"a:1", "b:2", "c:3"}));
  t = ParseClusterTarget("dns:///kvcache.ns.svc:50051");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->is_dns());
  EXPECT_TRUE(t->is_cluster());
  EXPECT_EQ(t->dns_host, "kvcache.ns.svc");
  EXPECT_EQ(t->dns_port, "50051");
  EXPECT_EQ(ParseClusterTarget("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseClusterTarget("a:1,,b:2").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseClusterTarget("dns:///noport").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RendezvousTest, ResolvesDnsTargets) {
  absl::StatusOr<std::vector<std::string>> r = ResolveClusterTarget("dns:///localhost:4321");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(std::count(r->begin(), r->end(), "127.0.0.1:4321")) << r->front();
  EXPECT_EQ(ResolveClusterTarget("dns:///no-such-host.invalid:1").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(*ResolveClusterTarget("b:2,a:1"), (std::vector<std::string>{"b:2", "a:1"}));
}

// Not an assertion: how evenly a shared prefix's blocks fall on 3 nodes by placement alone
// (the skew that hot read replicas remove; cluster_client_test measures it with real Gets).
TEST(RendezvousTest, PrintsSharedPrefixSkew) {
  for (int len : {16, 32, 64}) {
    double worst = 0;
    for (int trial = 0; trial < 200; ++trial) {
      const Key ns = TestKey(trial, 42);
      std::vector<int> count(3);
      for (int i = 0; i < len; ++i) ++count[RendezvousRank(kThree, ns, TestKey(i), 1)[0]];
      worst += *std::max_element(count.begin(), count.end()) / (len / 3.0);
    }
    std::printf("[ figure ] shared %d-block prefix on 3 nodes, placement only: busiest node "
                "%.2fx the mean (average over 200 namespaces)\n",
                len, worst / 200);
  }
}

}  // namespace
}  // namespace kvcache
