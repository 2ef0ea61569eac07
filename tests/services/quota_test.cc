// Per-tenant quotas (services/tenant_usage.h, docs/security.md "Quotas") on a real server on
// loopback with RAM and a RocksDB disk tier: a tenant over its quota makes room in its own
// share (RAM → disk → gone, oldest first) and never in another tenant's; a block larger than
// the quota is RESOURCE_EXHAUSTED over gRPC and over the data channel; a reload that lowers
// a quota trims at once; usage is counted again after a restart; stats and metrics show it.

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/admin_client.h"
#include "client/cache_client.h"
#include "gtest/gtest.h"
#include "services/cache_server.h"
#include "tests/http_get.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

constexpr char kTokenA[] = "writer-a-0123456789abcdef";
constexpr char kTokenB[] = "writer-b-0123456789abcdef";
constexpr char kAdmin[] = "admin-ops-0123456789abcdef";
constexpr size_t kPayload = 16 << 10;
constexpr uint64_t kCharge = kPayload + kBlockOverheadBytes;          // In RAM.
constexpr uint64_t kDiskCharge = kPayload + kDiskBlockOverheadBytes;  // On disk.

class QuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokens_ = dir_.path() + "/tokens";
    WriteTokens("quota a ram=256KiB disk=512KiB\n");
  }

  void WriteTokens(const std::string& quotas) {
    std::ofstream(tokens_) << "token " << kTokenA << " tenant=a role=writer\n"
                           << "token " << kTokenB << " tenant=b role=writer\n"
                           << "token " << kAdmin << " tenant=ops role=admin\n"
                           << quotas;
  }

  void StartServer() {
    server_.reset();
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.admin_listen = "127.0.0.1:0";
    o.data_listen = "127.0.0.1:0";
    o.metrics_listen = "127.0.0.1:0";
    o.auth_tokens_file = tokens_;
    o.store.ram.capacity_bytes = 8 << 20;
    o.store.ram.num_shard_bits = 0;
    o.store.max_block_bytes = 1 << 20;
    DiskTierOptions disk;
    disk.path = dir_.path() + "/disk";
    disk.capacity_bytes = 256 << 20;
    disk.min_free_bytes = 0;
    o.store.disk = disk;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<CacheClient> Client(const std::string& token, bool data_channel) {
    CacheClientOptions o;
    o.target = server_->address();
    o.tls.token = token;
    o.use_data_channel = data_channel;
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Puts blocks `first`..`first + n - 1` of 16 KiB, one Put each (as a worker publishes).
  static void PutBlocks(CacheClient& client, const Key& ns, int first, int n) {
    for (int i = first; i < first + n; ++i) {
      CacheBlock b;
      b.key = TestKey(i);
      b.payload = TestPayload(kPayload, i);
      absl::StatusOr<CachePutResult> put = client.Put(ns, {b});
      ASSERT_TRUE(put.ok()) << put.status();
    }
  }

  v1::TenantStats Tenant(const std::string& name) {
    AdminClientOptions o;
    o.target = server_->admin_address();
    o.tls.token = kAdmin;
    absl::StatusOr<std::unique_ptr<AdminClient>> admin = NewAdminClient(o);
    EXPECT_TRUE(admin.ok()) << admin.status();
    absl::StatusOr<v1::GetStatsResponse> stats = (*admin)->GetStats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    for (const v1::TenantStats& t : stats->tenants()) {
      if (t.tenant() == name) return t;
    }
    ADD_FAILURE() << "no tenant " << name << " in " << stats->DebugString();
    return {};
  }

  // Waits (up to 10 s) for the background demotions and trims to settle: `a` within both
  // its quotas and what it holds unchanged for 200 ms.
  v1::TenantStats Settled(const std::string& name, uint64_t ram_quota, uint64_t disk_quota) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    v1::TenantStats last = Tenant(name);
    while (absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(200));
      v1::TenantStats now = Tenant(name);
      if (now.ram_bytes() <= ram_quota && now.disk_bytes() <= disk_quota &&
          now.SerializeAsString() == last.SerializeAsString()) {
        return now;
      }
      last = now;
    }
    return last;
  }

  TempDir dir_;
  std::string tokens_;
  std::unique_ptr<CacheServer> server_;
  const Key ns_ = TestKey(7, 0xaa);
};

TEST_F(QuotaTest, ATenantOverItsQuotaMakesRoomInItsOwnShareOnly) {
  StartServer();
  auto a = Client(kTokenA, /*data_channel=*/true);
  auto b = Client(kTokenB, /*data_channel=*/false);
  PutBlocks(*b, ns_, 1, 20);  // b: no quota; 340 KiB, more than a's RAM quota.
  PutBlocks(*a, ns_, 1, 60);  // a: 1 MiB into a 256 KiB RAM and a 512 KiB disk quota.

  const v1::TenantStats ta = Settled("a", 256 << 10, 512 << 10);
  EXPECT_LE(ta.ram_bytes(), 256u << 10);
  EXPECT_LE(ta.disk_bytes(), 512u << 10);
  EXPECT_EQ(ta.ram_quota_bytes(), 256u << 10);
  EXPECT_EQ(ta.disk_quota_bytes(), 512u << 10);
  // Its share is full (within a block of its quota), not emptied.
  EXPECT_GT(ta.ram_bytes() + kCharge, 256u << 10) << ta.DebugString();
  EXPECT_GT(ta.disk_bytes() + kDiskCharge, 512u << 10) << ta.DebugString();
  EXPECT_EQ(ta.ram_bytes(), ta.ram_blocks() * kCharge);
  EXPECT_GT(ta.ram_quota_evictions(), 0u);
  EXPECT_GT(ta.disk_quota_evictions(), 0u);

  // b is untouched: all 20 blocks still in RAM.
  const v1::TenantStats tb = Tenant("b");
  EXPECT_EQ(tb.ram_blocks(), 20u);
  EXPECT_EQ(tb.disk_blocks(), 0u);
  EXPECT_EQ(tb.ram_quota_evictions() + tb.disk_quota_evictions(), 0u);
  std::vector<Key> b_keys;
  for (int i = 1; i <= 20; ++i) b_keys.push_back(TestKey(i));
  absl::StatusOr<CacheLookup> lb = b->Lookup(ns_, b_keys);
  ASSERT_TRUE(lb.ok()) << lb.status();
  EXPECT_EQ(lb->num_in_ram, 20u);

  // a kept its newest blocks (RAM holds the last ones), and lost its oldest.
  absl::StatusOr<std::vector<CacheBlock>> newest = a->Get(ns_, {TestKey(60)});
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].payload, TestPayload(kPayload, 60));
  absl::StatusOr<CacheLookup> oldest = a->Lookup(ns_, {TestKey(1)});
  ASSERT_TRUE(oldest.ok());
  EXPECT_EQ(oldest->num_present, 0u);
  const StoreStats s = server_->store()->GetStoreStats();
  EXPECT_EQ(s.ram.blocks, ta.ram_blocks() + 20);

  // Metrics say the same.
  const std::string body = testing::HttpGet(server_->metrics_address());
  EXPECT_NE(body.find(absl::StrCat("kvcache_tenant_quota_bytes{tenant=\"a\",tier=\"ram\"} ",
                                   256 << 10)),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("kvcache_tenant_blocks{tenant=\"b\",tier=\"ram\"} 20"), std::string::npos)
      << body;
  EXPECT_NE(body.find("kvcache_tenant_quota_evictions_total{tenant=\"a\",tier=\"disk\"}"),
            std::string::npos);
}

TEST_F(QuotaTest, ABlockLargerThanTheRamQuotaIsResourceExhaustedOnBothPaths) {
  WriteTokens("quota a ram=64KiB\n");
  StartServer();
  for (bool data_channel : {false, true}) {
    auto a = Client(kTokenA, data_channel);
    CacheBlock big;
    big.key = TestKey(1);
    big.payload = TestPayload(100 << 10, 1);
    absl::StatusOr<CachePutResult> put = a->Put(ns_, {big});
    ASSERT_FALSE(put.ok()) << "stored over " << (data_channel ? "the data channel" : "gRPC");
    EXPECT_EQ(put.status().code(), absl::StatusCode::kResourceExhausted) << put.status();
    EXPECT_NE(put.status().message().find("the RAM quota of tenant 'a' (64.0 KiB)"),
              std::string::npos)
        << put.status();
    // Small blocks still go in.
    PutBlocks(*a, ns_, 10, 2);
  }
  const v1::TenantStats t = Tenant("a");
  EXPECT_EQ(t.ram_blocks() + t.disk_blocks(), 2u) << t.DebugString();
}

TEST_F(QuotaTest, AReloadThatLowersAQuotaTrimsAtOnce) {
  WriteTokens("");  // No quota.
  StartServer();
  auto a = Client(kTokenA, /*data_channel=*/true);
  PutBlocks(*a, ns_, 1, 40);
  EXPECT_EQ(Tenant("a").ram_blocks(), 40u);
  EXPECT_EQ(Tenant("a").ram_quota_bytes(), 0u);

  WriteTokens("quota a ram=128KiB disk=1MiB\n");
  ASSERT_TRUE(server_->ReloadAccess().ok());
  const v1::TenantStats t = Settled("a", 128 << 10, 1 << 20);
  EXPECT_LE(t.ram_bytes(), 128u << 10);
  EXPECT_EQ(t.ram_quota_bytes(), 128u << 10);
  // Demoted, not dropped: the disk quota holds the rest.
  EXPECT_EQ(t.ram_blocks() + t.disk_blocks(), 40u) << t.DebugString();
  EXPECT_EQ(t.disk_quota_evictions(), 0u);
}

TEST_F(QuotaTest, UsageIsCountedAgainAfterARestart) {
  StartServer();
  auto a = Client(kTokenA, /*data_channel=*/false);
  PutBlocks(*a, ns_, 1, 30);
  const v1::TenantStats before = Settled("a", 256 << 10, 512 << 10);
  ASSERT_GT(before.disk_blocks(), 0u);
  a.reset();
  StartServer();  // Same disk directory; RAM starts empty.
  const v1::TenantStats after = Tenant("a");
  EXPECT_EQ(after.ram_blocks(), 0u);
  EXPECT_EQ(after.disk_blocks(), before.disk_blocks());
  EXPECT_EQ(after.disk_bytes(), before.disk_bytes());
}

}  // namespace
}  // namespace kvcache
