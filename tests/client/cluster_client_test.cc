// The cluster client against three real cache servers in-process on 127.0.0.1:0 (each with
// its data channel on), and a frozen node (a TCP listener that accepts and never answers):
// placement across nodes, the longest prefix across nodes, replication, a node shut down or
// frozen mid-workload (calls still succeed, as misses, within one deadline), and a node
// coming back. Also prints the figures of docs/cluster.md: Lookup latency for a 64-block
// chain on 1 vs 3 nodes, failure-case latencies, and per-node Gets of a hot shared prefix
// with and without read replicas.

#include "client/cluster_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "client/rendezvous.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"
#include "services/cache_server.h"
#include "tests/client_test_util.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

constexpr absl::Duration kTimeout = absl::Seconds(1);
// What a call may take beyond its deadline: scheduling on a loaded 2-core machine.
constexpr absl::Duration kSlack = absl::Milliseconds(400);

// A node that is up at the TCP level and never answers: what a SIGSTOPped server looks like
// to its clients.
class FrozenNode {
 public:
  explicit FrozenNode(const std::string& listen = "127.0.0.1:0") {
    absl::StatusOr<std::pair<int, std::string>> l = ListenTcp(listen);
    if (!l.ok()) return;
    fd_ = l->first;
    address_ = l->second;
    acceptor_ = std::thread([this] {
      while (true) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        absl::MutexLock lock(&mu_);
        accepted_.push_back(c);
      }
    });
  }
  ~FrozenNode() {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    close(fd_);
    absl::MutexLock lock(&mu_);
    for (int c : accepted_) close(c);
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  std::string address_;
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<int> accepted_ ABSL_GUARDED_BY(mu_);
};

// A TCP proxy that holds every chunk it forwards for `delay`: a network with a round trip of
// about 2 x delay, so that Lookup latency shows round trips rather than this machine's CPU.
class DelayProxy {
 public:
  DelayProxy(const std::string& upstream, absl::Duration delay)
      : upstream_(upstream), delay_(delay) {
    absl::StatusOr<std::pair<int, std::string>> l = ListenTcp("127.0.0.1:0");
    if (!l.ok()) return;
    fd_ = l->first;
    address_ = l->second;
    acceptor_ = std::thread([this] {
      while (true) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        const int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        absl::StatusOr<int> u = ConnectTcp(upstream_, absl::Seconds(5));
        if (!u.ok()) {
          close(c);
          continue;
        }
        absl::MutexLock lock(&mu_);
        fds_.push_back(c);
        fds_.push_back(*u);
        pumps_.emplace_back([this, c, u = *u] { Pump(c, u); });
        pumps_.emplace_back([this, c, u = *u] { Pump(u, c); });
      }
    });
  }
  ~DelayProxy() {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    std::vector<std::thread> pumps;
    {
      absl::MutexLock lock(&mu_);
      for (int f : fds_) shutdown(f, SHUT_RDWR);
      pumps.swap(pumps_);
    }
    for (std::thread& t : pumps) t.join();
    close(fd_);
    for (int f : fds_) close(f);
  }
  const std::string& address() const { return address_; }

 private:
  void Pump(int from, int to) {
    std::string buf(1 << 16, '\0');
    while (true) {
      const ssize_t n = read(from, buf.data(), buf.size());
      if (n <= 0) break;
      absl::SleepFor(delay_);
      if (!WriteFull(to, buf.data(), static_cast<size_t>(n)).ok()) break;
    }
    shutdown(to, SHUT_WR);
  }

  const std::string upstream_;
  const absl::Duration delay_;
  int fd_ = -1;
  std::string address_;
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
};

class ClusterClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) servers_.push_back(StartNode(i, "127.0.0.1:0"));
  }

  std::unique_ptr<CacheServer> StartNode(int i, const std::string& listen) {
    ServerOptions o;
    o.listen = listen;
    o.data_listen = "127.0.0.1:0";
    o.store.ram.capacity_bytes = 16 << 20;
    o.store.max_block_bytes = 1 << 20;
    o.store.disk = DiskTierOptions{};
    o.store.disk->path = dir_.Sub(absl::StrCat("db", i, "-", restarts_++));
    o.store.disk->capacity_bytes = 64 << 20;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  CacheClientOptions Options(const std::vector<std::string>& addresses, int replicas = 1) {
    CacheClientOptions o;
    o.target = absl::StrJoin(addresses, ",");
    o.timeout = kTimeout;
    o.lookup_timeout = kTimeout;
    o.replicas = replicas;
    o.health_check_interval = absl::Milliseconds(100);
    o.breaker_initial_backoff = absl::Milliseconds(100);
    o.breaker_max_backoff = absl::Seconds(1);
    return o;
  }
  std::vector<std::string> Addresses() const {
    std::vector<std::string> out;
    for (const auto& s : servers_) out.push_back(s->address());
    return out;
  }
  std::unique_ptr<ClusterCacheClient> Cluster(const CacheClientOptions& o) {
    absl::StatusOr<std::unique_ptr<ClusterCacheClient>> c = NewClusterCacheClient(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  static std::vector<CacheBlock> Chain(size_t n, uint64_t seed = 0, size_t size = 4096) {
    return testing::TestChain(n, size, seed);
  }
  static std::vector<Key> KeysOf(const std::vector<CacheBlock>& blocks) {
    return testing::KeysOf(blocks);
  }

  // Index (in `addresses`) of the first owner of `key`.
  size_t OwnerOf(const std::vector<std::string>& addresses, const Key& key) const {
    std::vector<std::string> sorted = addresses;
    std::sort(sorted.begin(), sorted.end());
    const std::string owner = LocateOwners(sorted, ns_, key)[0];
    return std::find(addresses.begin(), addresses.end(), owner) - addresses.begin();
  }

  // Waits (up to 5 s) until the client's node at `address` is in use again.
  static bool WaitUntilClosed(ClusterCacheClient* c, const std::string& address) {
    const absl::Time give_up = absl::Now() + absl::Seconds(5);
    while (absl::Now() < give_up) {
      for (const ClusterNodeStats& s : c->NodeStats()) {
        if (s.address == address && s.breaker == "closed") return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  TempDir dir_;
  int restarts_ = 0;
  std::vector<std::unique_ptr<CacheServer>> servers_;
  Key ns_ = TestKey(100, 3);
};

TEST_F(ClusterClientTest, NewCacheClientPicksClusterForSeveralNodes) {
  CacheClientOptions o = Options(Addresses());
  std::unique_ptr<CacheClient> c = *NewCacheClient(o);
  EXPECT_NE(dynamic_cast<ClusterCacheClient*>(c.get()), nullptr);
  o.target = servers_[0]->address();
  std::unique_ptr<CacheClient> single = *NewCacheClient(o);
  EXPECT_EQ(dynamic_cast<ClusterCacheClient*>(single.get()), nullptr);
  o.target = "a:1,,b:2";
  EXPECT_EQ(NewCacheClient(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(Addresses(), 0);
  EXPECT_EQ(NewCacheClient(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClusterClientTest, PutLookupGetAcrossNodes) {
  auto client = Cluster(Options(Addresses()));
  std::vector<CacheBlock> chain = Chain(64);
  absl::StatusOr<CachePutResult> put = client->Put(ns_, chain);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored, 64u);
  EXPECT_EQ(client->Put(ns_, chain)->already_present, 64u);

  // Every node holds its share, and exactly the blocks rendezvous gives it.
  size_t total = 0;
  for (size_t n = 0; n < servers_.size(); ++n) {
    const size_t blocks = servers_[n]->store()->Stats().blocks;
    EXPECT_GT(blocks, 5u) << servers_[n]->address();
    total += blocks;
  }
  EXPECT_EQ(total, 64u);
  for (const CacheBlock& b : chain) {
    EXPECT_TRUE(servers_[OwnerOf(Addresses(), b.key)]->store()->Contains(BlockId{ns_, b.key}));
  }

  std::vector<Key> keys = KeysOf(chain);
  keys.push_back(TestKey(999));
  absl::StatusOr<CacheLookup> lookup = client->Lookup(ns_, keys);
  ASSERT_TRUE(lookup.ok()) << lookup.status();
  EXPECT_EQ(lookup->num_present, 64u);
  EXPECT_EQ(lookup->num_in_ram, 64u);
  absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, keys);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 64u);
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_EQ((*got)[i].key, chain[i].key);
    EXPECT_EQ((*got)[i].payload, chain[i].payload);
    EXPECT_EQ((*got)[i].parent, chain[i].parent);
  }
  // The data channel was used per node (no node fell back for lack of one).
  for (const ClusterNodeStats& s : client->NodeStats()) {
    EXPECT_GT(s.get_blocks, 0u) << s.address;
    EXPECT_EQ(s.failures, 0u) << s.address;
  }
  EXPECT_EQ(client->Lookup(ns_, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClusterClientTest, LongestPrefixAcrossNodes) {
  auto client = Cluster(Options(Addresses()));
  std::vector<CacheBlock> chain = Chain(48);
  ASSERT_TRUE(client->Put(ns_, chain).ok());
  // Lose block 30 on whichever node holds it: the prefix ends there, wherever the rest is.
  ASSERT_TRUE(servers_[OwnerOf(Addresses(), chain[30].key)]->store()->Erase(
      BlockId{ns_, chain[30].key}));
  EXPECT_EQ(client->Lookup(ns_, KeysOf(chain))->num_present, 30u);
  absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, KeysOf(chain));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 30u);
  // A prefix that starts with a missing block is empty.
  std::vector<Key> keys = KeysOf(chain);
  keys.insert(keys.begin(), TestKey(12345));
  EXPECT_EQ(client->Lookup(ns_, keys)->num_present, 0u);
  EXPECT_EQ(client->Get(ns_, keys)->size(), 0u);
}

TEST_F(ClusterClientTest, ReplicasServeWhatAnOwnerLost) {
  auto client = Cluster(Options(Addresses(), /*replicas=*/2));
  std::vector<CacheBlock> chain = Chain(40);
  ASSERT_TRUE(client->Put(ns_, chain).ok());
  client->WaitForBackgroundWrites();
  size_t total = 0;
  for (const auto& s : servers_) total += s->store()->Stats().blocks;
  EXPECT_EQ(total, 80u);  // Two copies of each, on two different nodes.
  // Each first owner loses its copy: the second replica still answers.
  for (const CacheBlock& b : chain) {
    ASSERT_TRUE(servers_[OwnerOf(Addresses(), b.key)]->store()->Erase(BlockId{ns_, b.key}));
  }
  EXPECT_EQ(client->Lookup(ns_, KeysOf(chain))->num_present, 40u);
  absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, KeysOf(chain));
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 40u);
  EXPECT_EQ(got->back().payload, chain.back().payload);
}

TEST_F(ClusterClientTest, NodeShutDownMidWorkloadCostsMissesNotErrors) {
  auto client = Cluster(Options(Addresses()));
  std::vector<CacheBlock> chain = Chain(64);
  ASSERT_TRUE(client->Put(ns_, chain).ok());
  const std::string dead = servers_[1]->address();
  size_t expected = 0;
  while (expected < chain.size() && OwnerOf(Addresses(), chain[expected].key) != 1) ++expected;
  servers_[1]->Shutdown(absl::ZeroDuration());
  servers_[1].reset();

  absl::Duration worst;
  for (int round = 0; round < 5; ++round) {
    absl::Time start = absl::Now();
    absl::StatusOr<CacheLookup> lookup = client->Lookup(ns_, KeysOf(chain));
    ASSERT_TRUE(lookup.ok()) << lookup.status();
    EXPECT_EQ(lookup->num_present, expected);
    absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, KeysOf(chain));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->size(), expected);
    worst = std::max(worst, absl::Now() - start);
  }
  EXPECT_LE(worst, kTimeout + kSlack);
  // Writes go on to the live nodes (the dead node's blocks to their next owner).
  std::vector<CacheBlock> fresh = Chain(32, 1000);
  absl::StatusOr<CachePutResult> put = client->Put(ns_, fresh);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored, 32u);
  EXPECT_EQ(client->Lookup(ns_, KeysOf(fresh))->num_present, 32u);
  std::printf("[ figure ] node shut down: Lookup+Get of 64 blocks took at most %s "
              "(deadline %s)\n",
              absl::FormatDuration(worst).c_str(), absl::FormatDuration(kTimeout).c_str());

  // The node comes back on its address: it is probed, closed, and used again.
  servers_[1] = StartNode(1, dead);
  ASSERT_NE(servers_[1], nullptr);
  ASSERT_TRUE(WaitUntilClosed(client.get(), dead));
  std::vector<CacheBlock> later = Chain(64, 5000);
  ASSERT_TRUE(client->Put(ns_, later).ok());
  EXPECT_GT(servers_[1]->store()->Stats().blocks, 5u);
  EXPECT_EQ(client->Lookup(ns_, KeysOf(later))->num_present, 64u);
}

TEST_F(ClusterClientTest, FrozenNodeCostsAtMostOneDeadline) {
  FrozenNode frozen;
  ASSERT_TRUE(frozen.ok());
  std::vector<std::string> addresses = {servers_[0]->address(), servers_[1]->address(),
                                        frozen.address()};
  auto client = Cluster(Options(addresses));
  std::vector<CacheBlock> chain = Chain(64);

  // The first calls find out (one deadline at most each); then the breaker is open and the
  // frozen node's blocks are misses at once.
  std::vector<absl::Duration> took;
  absl::Time start = absl::Now();
  absl::StatusOr<CachePutResult> put = client->Put(ns_, chain);
  took.push_back(absl::Now() - start);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_LT(put->stored, 64u);  // What it could: the live nodes' share.
  EXPECT_GT(put->stored, 10u);
  size_t expected = 0;
  while (expected < chain.size() && OwnerOf(addresses, chain[expected].key) != 2) ++expected;
  for (int round = 0; round < 4; ++round) {
    start = absl::Now();
    absl::StatusOr<CacheLookup> lookup = client->Lookup(ns_, KeysOf(chain));
    took.push_back(absl::Now() - start);
    ASSERT_TRUE(lookup.ok()) << lookup.status();
    EXPECT_EQ(lookup->num_present, expected);
    start = absl::Now();
    absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, KeysOf(chain));
    took.push_back(absl::Now() - start);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->size(), expected);
  }
  for (absl::Duration d : took) EXPECT_LE(d, kTimeout + kSlack);
  // After the first failure the node is skipped: the later calls do not wait for it.
  for (size_t i = 1; i < took.size(); ++i) EXPECT_LT(took[i], kTimeout / 2) << i;
  // A client whose first call is a Get (which would negotiate the frozen node's data
  // channel, then fall back to gRPC: two deadlines in the node client) or a Lookup still
  // returns within one.
  for (bool get : {true, false}) {
    auto fresh = Cluster(Options(addresses));
    start = absl::Now();
    if (get) {
      absl::StatusOr<std::vector<CacheBlock>> got = fresh->Get(ns_, KeysOf(chain));
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->size(), expected);
    } else {
      absl::StatusOr<CacheLookup> lookup = fresh->Lookup(ns_, KeysOf(chain));
      ASSERT_TRUE(lookup.ok()) << lookup.status();
      EXPECT_EQ(lookup->num_present, expected);
    }
    took.push_back(absl::Now() - start);
    EXPECT_LE(took.back(), kTimeout + kSlack) << (get ? "Get" : "Lookup");
  }
  std::vector<std::string> shown;
  for (absl::Duration d : took) shown.push_back(absl::FormatDuration(d));
  std::printf("[ figure ] frozen node, deadline %s: Put, then Lookup/Get x4, then a fresh "
              "client's first Get, and first Lookup took %s\n",
              absl::FormatDuration(kTimeout).c_str(), absl::StrJoin(shown, ", ").c_str());
  for (const ClusterNodeStats& s : client->NodeStats()) {
    EXPECT_EQ(s.healthy, s.address != frozen.address()) << s.address;
    EXPECT_EQ(s.breaker == "closed", s.address != frozen.address()) << s.address;
  }
}

TEST_F(ClusterClientTest, FrozenNodeThatRecoversIsUsedAgain) {
  auto frozen = std::make_unique<FrozenNode>();
  ASSERT_TRUE(frozen->ok());
  const std::string address = frozen->address();
  std::vector<std::string> addresses = {servers_[0]->address(), servers_[1]->address(), address};
  auto client = Cluster(Options(addresses));
  ASSERT_TRUE(client->Lookup(ns_, KeysOf(Chain(16))).ok());
  // It thaws: a real server on the same address.
  frozen.reset();
  std::unique_ptr<CacheServer> thawed = StartNode(3, address);
  ASSERT_NE(thawed, nullptr);
  ASSERT_TRUE(WaitUntilClosed(client.get(), address));
  std::vector<CacheBlock> chain = Chain(64, 7000);
  absl::StatusOr<CachePutResult> put = client->Put(ns_, chain);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored, 64u);
  EXPECT_GT(thawed->store()->Stats().blocks, 5u);
  EXPECT_EQ(client->Get(ns_, KeysOf(chain))->size(), 64u);
}

TEST_F(ClusterClientTest, DnsTargetResolvesToItsNodes) {
  const std::string port = servers_[0]->address().substr(servers_[0]->address().rfind(':') + 1);
  CacheClientOptions o = Options({});
  o.target = "dns:///localhost:" + port;
  o.resolve_interval = absl::Milliseconds(50);  // Re-resolved many times below: same nodes.
  std::unique_ptr<CacheClient> c = *NewCacheClient(o);
  auto* cluster = dynamic_cast<ClusterCacheClient*>(c.get());
  ASSERT_NE(cluster, nullptr);
  std::vector<std::string> members = cluster->Members();
  EXPECT_TRUE(std::count(members.begin(), members.end(), "127.0.0.1:" + port));
  // localhost may also resolve to ::1, where nothing listens: that node's share are misses
  // until its breaker opens; then everything lands on the live one.
  std::vector<CacheBlock> chain = Chain(8);
  c->Put(ns_, chain).IgnoreError();
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_TRUE(c->Put(ns_, chain).ok());
  EXPECT_EQ(c->Lookup(ns_, KeysOf(chain))->num_present, 8u);
  EXPECT_EQ(cluster->Members(), members);
}

// Figures, not assertions on time: a 64-block Lookup on one node vs on three.
TEST_F(ClusterClientTest, PrintsLookupLatency1vs3Nodes) {
  std::vector<CacheBlock> chain = Chain(64);
  CacheClientOptions one = Options({servers_[0]->address()});
  std::unique_ptr<CacheClient> single = *NewCacheClient(one);
  ASSERT_TRUE(single->Put(ns_, chain).ok());
  auto cluster = Cluster(Options(Addresses()));
  ASSERT_TRUE(cluster->Put(ns_, chain).ok());
  auto cluster2 = Cluster(Options(Addresses(), 2));
  const std::vector<Key> keys = KeysOf(chain);
  auto measure = [&](CacheClient* c, const char* what) {
    for (int i = 0; i < 50; ++i) ASSERT_EQ(c->Lookup(ns_, keys)->num_present, 64u);  // Warm.
    std::vector<double> us;
    for (int i = 0; i < 1000; ++i) {
      const absl::Time t = absl::Now();
      ASSERT_EQ(c->Lookup(ns_, keys)->num_present, 64u);
      us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
    }
    std::sort(us.begin(), us.end());
    std::printf("[ figure ] Lookup of a 64-block chain, %s: p50 %.0f us, p99 %.0f us\n", what,
                us[us.size() / 2], us[us.size() * 99 / 100]);
  };
  measure(single.get(), "1 node (plain client)");
  const std::vector<ClusterNodeStats> before = cluster->NodeStats();
  measure(cluster.get(), "3 nodes, R=1");
  // One round: each of the 1,050 Lookups made exactly one call to each node.
  const std::vector<ClusterNodeStats> after = cluster->NodeStats();
  for (size_t n = 0; n < after.size(); ++n) {
    EXPECT_EQ(after[n].lookups - before[n].lookups, 1050u) << after[n].address;
  }
  measure(cluster2.get(), "3 nodes, R=2");

  // For scale: the same three per-node Lookups made one after another (three round trips).
  std::vector<std::unique_ptr<CacheClient>> nodes;
  std::vector<std::vector<Key>> owned(servers_.size());
  for (size_t n = 0; n < servers_.size(); ++n) {
    nodes.push_back(*NewCacheClient(Options({servers_[n]->address()})));
  }
  for (const Key& k : keys) owned[OwnerOf(Addresses(), k)].push_back(k);
  std::vector<double> us;
  for (int i = 0; i < 1000; ++i) {
    const absl::Time t = absl::Now();
    for (size_t n = 0; n < nodes.size(); ++n) {
      absl::StatusOr<CacheLookup> r = nodes[n]->Lookup(ns_, owned[n]);
      ASSERT_TRUE(r.ok()) << r.status();
    }
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
  }
  std::sort(us.begin(), us.end());
  std::printf("[ figure ] Lookup of a 64-block chain, 3 nodes asked one after another: "
              "p50 %.0f us, p99 %.0f us\n",
              us[us.size() / 2], us[us.size() * 99 / 100]);
}

// The same over a network with a 2 ms round trip (a delaying proxy in front of each node):
// the cluster's 64-block Lookup costs one round trip, like one node's; asking the three nodes
// one after another would cost three.
TEST_F(ClusterClientTest, PrintsLookupLatencyOverA2msNetwork) {
  std::vector<CacheBlock> chain = Chain(64);
  const std::vector<Key> keys = KeysOf(chain);
  std::vector<std::unique_ptr<DelayProxy>> proxies;
  std::vector<std::string> proxied;
  for (const auto& s : servers_) {
    proxies.push_back(std::make_unique<DelayProxy>(s->address(), absl::Milliseconds(1)));
    proxied.push_back(proxies.back()->address());
  }
  // Placement follows the addresses the client is given: the proxies'. A long deadline: a
  // busy machine delays the proxies' threads too.
  auto options = [&](const std::vector<std::string>& addresses) {
    CacheClientOptions o = Options(addresses);
    o.timeout = absl::Seconds(10);
    o.lookup_timeout = absl::Seconds(10);
    return o;
  };
  std::unique_ptr<CacheClient> one = *NewCacheClient(options({proxied[0]}));
  ASSERT_TRUE(one->Put(ns_, chain).ok());
  auto three = Cluster(options(proxied));
  ASSERT_TRUE(three->Put(ns_, chain).ok());
  std::vector<std::unique_ptr<CacheClient>> nodes;
  std::vector<std::vector<Key>> owned(proxied.size());
  for (const std::string& p : proxied) nodes.push_back(*NewCacheClient(options({p})));
  for (const Key& k : keys) owned[OwnerOf(proxied, k)].push_back(k);
  auto measure = [&](const char* what, const std::function<void()>& lookup) {
    for (int i = 0; i < 10; ++i) lookup();
    std::vector<double> ms;
    for (int i = 0; i < 100; ++i) {
      const absl::Time t = absl::Now();
      lookup();
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
    }
    std::sort(ms.begin(), ms.end());
    std::printf("[ figure ] Lookup of a 64-block chain over a 2 ms network, %s: p50 %.2f ms, "
                "p99 %.2f ms\n",
                what, ms[ms.size() / 2], ms[ms.size() * 99 / 100]);
  };
  measure("1 node", [&] { ASSERT_EQ(one->Lookup(ns_, keys)->num_present, 64u); });
  measure("3 nodes (cluster client)",
          [&] { ASSERT_EQ(three->Lookup(ns_, keys)->num_present, 64u); });
  measure("3 nodes asked one after another", [&] {
    for (size_t n = 0; n < nodes.size(); ++n) {
      absl::StatusOr<CacheLookup> r = nodes[n]->Lookup(ns_, owned[n]);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  });
}

// Every request reads the same long prefix. Per-node Gets with read replicas off, then on;
// with them on, the busiest node serves at most 1.5x the mean.
TEST_F(ClusterClientTest, HotPrefixIsSpreadOverReadReplicas) {
  std::vector<CacheBlock> prefix = Chain(16, 300);
  {
    auto writer = Cluster(Options(Addresses()));
    ASSERT_TRUE(writer->Put(ns_, prefix).ok());
  }
  const std::vector<Key> keys = KeysOf(prefix);
  auto run = [&](int hot_min_reads) {
    constexpr int kWorkers = 4, kRequests = 100;
    std::map<std::string, uint64_t> served;
    absl::Mutex mu;
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&] {
        CacheClientOptions o = Options(Addresses());
        o.hot_min_reads = hot_min_reads;
        o.hot_window = absl::Seconds(60);
        auto c = Cluster(o);
        int short_gets = 0;
        for (int r = 0; r < kRequests; ++r) {
          absl::StatusOr<std::vector<CacheBlock>> got = c->Get(ns_, keys);
          ASSERT_TRUE(got.ok()) << got.status();
          short_gets += got->size() < keys.size();
        }
        // A read replica not yet copied to falls back to the owner: no Get comes up short.
        EXPECT_EQ(short_gets, 0);
        if (short_gets > 0) {
          for (const ClusterNodeStats& s : c->NodeStats()) {
            std::printf("  %s breaker %s failures %llu opens %llu: %s\n", s.address.c_str(),
                        s.breaker.c_str(), static_cast<unsigned long long>(s.failures),
                        static_cast<unsigned long long>(s.breaker_opens),
                        s.last_error.c_str());
          }
        }
        c->WaitForBackgroundWrites();
        absl::MutexLock lock(&mu);
        for (const ClusterNodeStats& s : c->NodeStats()) served[s.address] += s.get_blocks;
      });
    }
    for (auto& t : workers) t.join();
    uint64_t max = 0, sum = 0;
    std::vector<std::string> shown;
    for (const auto& [address, n] : served) {
      max = std::max(max, n);
      sum += n;
      shown.push_back(absl::StrCat(n));
    }
    const double skew = max / (static_cast<double>(sum) / served.size());
    std::printf("[ figure ] hot %zu-block prefix, 4 clients x 100 Gets, read replicas %s: "
                "blocks served per node %s, busiest %.2fx the mean\n",
                keys.size(), hot_min_reads ? "on" : "off", absl::StrJoin(shown, " / ").c_str(),
                skew);
    return skew;
  };
  run(0);
  EXPECT_LE(run(8), 1.5);
}

TEST_F(ClusterClientTest, HotBlocksCoolDown) {
  std::vector<CacheBlock> prefix = Chain(4, 300);
  CacheClientOptions o = Options(Addresses());
  o.hot_min_reads = 4;
  o.hot_window = absl::Milliseconds(200);
  auto c = Cluster(o);
  ASSERT_TRUE(c->Put(ns_, prefix).ok());
  for (int i = 0; i < 8; ++i) ASSERT_EQ(c->Get(ns_, KeysOf(prefix))->size(), 4u);
  EXPECT_EQ(c->NumHotBlocks(), 4u);
  c->WaitForBackgroundWrites();
  size_t total = 0;
  for (const auto& s : servers_) total += s->store()->Stats().blocks;
  EXPECT_EQ(total, 12u);  // Copied to the two other nodes.
  absl::SleepFor(absl::Milliseconds(1500));
  ASSERT_EQ(c->Get(ns_, {prefix[0].key})->size(), 1u);
  EXPECT_EQ(c->NumHotBlocks(), 0u);
}

}  // namespace
}  // namespace kvcache
