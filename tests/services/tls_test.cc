// Transport security over real TLS on 127.0.0.1:0, with certificates made at test time
// (tests/tls_test_certs.h): each kind of caller gets its documented answer
// (docs/security.md), the cluster client's channels and health checks work over TLS, the
// data channel is never offered with TLS, plaintext is refused off loopback, and a
// certificate replaced on disk is served without a restart.

#include <filesystem>
#include <thread>

#include "absl/time/clock.h"
#include "client/admin_client.h"
#include "client/cache_client.h"
#include "client/cluster_client.h"
#include "common/cli.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "services/cache_server.h"
#include "tests/test_util.h"
#include "tests/tls_test_certs.h"

namespace kvcache {
namespace {

using testing::MakeTestCa;
using testing::MakeTestLeaf;
using testing::TempDir;
using testing::TestCert;
using testing::Trusting;
using testing::TestKey;
using testing::TestPayload;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeTestCa(dir_.path(), "ca");
    other_ca_ = MakeTestCa(dir_.path(), "other-ca");
    server_cert_ = MakeTestLeaf(dir_.path(), "server", ca_, 2);
    client_cert_ = MakeTestLeaf(dir_.path(), "client", ca_, 3);
    rogue_client_ = MakeTestLeaf(dir_.path(), "rogue-client", other_ca_, 4);
  }

  ServerOptions Options(bool mutual = false) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.store.ram.capacity_bytes = 8 << 20;
    o.store.max_block_bytes = 1 << 20;
    o.tls.cert_file = server_cert_.cert_file;
    o.tls.key_file = server_cert_.key_file;
    if (mutual) o.tls.client_ca_file = ca_.cert_file;
    return o;
  }

  std::unique_ptr<CacheServer> Start(const ServerOptions& o) {
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static std::unique_ptr<CacheClient> Client(const std::string& target,
                                             const TlsClientOptions& tls) {
    CacheClientOptions o;
    o.target = target;
    o.timeout = absl::Seconds(3);
    o.tls = tls;
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  static std::vector<CacheBlock> Blocks(size_t n, uint64_t seed) {
    std::vector<Key> chain;
    for (size_t i = 0; i < n; ++i) chain.push_back(TestKey(seed + i));
    std::vector<CacheBlock> blocks = ChainedBlocks(chain, 0);
    for (size_t i = 0; i < n; ++i) {
      blocks[i].payload = TestPayload(5000, seed + i);
      blocks[i].shape = testing::TestShape(5000);  // A shape that agrees with 5000 bytes.
    }
    return blocks;
  }

  // Lookup's status code from a client with `tls` against `server`.
  absl::StatusCode LookupCode(const CacheServer& server, const TlsClientOptions& tls) {
    std::unique_ptr<CacheClient> c = Client(server.address(), tls);
    if (c == nullptr) return absl::StatusCode::kInternal;
    const Key k = TestKey(1);
    return c->Lookup(TestKey(99), absl::MakeConstSpan(&k, 1)).status().code();
  }

  TempDir dir_;
  TestCert ca_, other_ca_, server_cert_, client_cert_, rogue_client_;
};

TEST_F(TlsTest, TlsClientPutsGetsLooksUpAndAdministers) {
  std::unique_ptr<CacheServer> server = Start(Options());
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->data_address().empty()) << "no plaintext data channel with TLS";
  EXPECT_NE(server->ConfigSummary().find("tls on"), std::string::npos);

  std::unique_ptr<CacheClient> client = Client(server->address(), Trusting(ca_));
  ASSERT_NE(client, nullptr);
  const Key ns = TestKey(7, 1);
  std::vector<CacheBlock> blocks = Blocks(4, 100);
  absl::StatusOr<CachePutResult> put = client->Put(ns, blocks);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored, 4u);
  std::vector<Key> keys;
  for (const CacheBlock& b : blocks) keys.push_back(b.key);
  absl::StatusOr<CacheLookup> lookup = client->Lookup(ns, keys);
  ASSERT_TRUE(lookup.ok()) << lookup.status();
  EXPECT_EQ(lookup->num_present, 4u);
  absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns, keys);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[3].payload, blocks[3].payload);
  EXPECT_EQ(client->data_channel_fallbacks(), 0u);

  // "localhost" is in the certificate too; a name it does not hold is refused unless the
  // server name override names one it does.
  EXPECT_EQ(LookupCode(*server, Trusting(ca_)), absl::StatusCode::kOk);

  absl::StatusOr<std::unique_ptr<AdminClient>> admin =
      NewAdminClient({server->address(), absl::Seconds(3), Trusting(ca_)});
  ASSERT_TRUE(admin.ok()) << admin.status();
  absl::StatusOr<std::string> health = (*admin)->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, "SERVING");
  absl::StatusOr<v1::GetStatsResponse> stats = (*admin)->GetStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
}

TEST_F(TlsTest, ServerNameOverrideIsCheckedAgainstTheCertificate) {
  std::unique_ptr<CacheServer> server = Start(Options());
  ASSERT_NE(server, nullptr);
  TlsClientOptions tls = Trusting(ca_);
  tls.server_name = "localhost";
  EXPECT_EQ(LookupCode(*server, tls), absl::StatusCode::kOk);
  tls.server_name = "cache.example.com";
  EXPECT_EQ(LookupCode(*server, tls), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, ClusterClientChannelsAndHealthChecksUseTls) {
  std::unique_ptr<CacheServer> a = Start(Options());
  std::unique_ptr<CacheServer> b = Start(Options());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  CacheClientOptions o;
  o.target = a->address() + "," + b->address();
  o.timeout = absl::Seconds(3);
  o.lookup_timeout = absl::Seconds(3);
  o.health_check_interval = absl::Milliseconds(50);
  o.tls = Trusting(ca_);
  absl::StatusOr<std::unique_ptr<ClusterCacheClient>> cluster = NewClusterCacheClient(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const Key ns = TestKey(8, 1);
  std::vector<CacheBlock> blocks = Blocks(16, 300);
  absl::StatusOr<CachePutResult> put = (*cluster)->Put(ns, blocks);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored, 16u);
  // Health checks run over the same credentials: after several intervals every node is
  // still usable (a failed check would open its breaker and turn its blocks into misses).
  absl::SleepFor(absl::Milliseconds(400));
  for (const ClusterNodeStats& n : (*cluster)->NodeStats()) {
    EXPECT_TRUE(n.healthy) << n.address << ": " << n.last_error;
  }
  std::vector<Key> keys;
  for (const CacheBlock& blk : blocks) keys.push_back(blk.key);
  absl::StatusOr<CacheLookup> lookup = (*cluster)->Lookup(ns, keys);
  ASSERT_TRUE(lookup.ok()) << lookup.status();
  EXPECT_EQ(lookup->num_present, 16u);
  absl::StatusOr<std::vector<CacheBlock>> got = (*cluster)->Get(ns, keys);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 16u);

  // A cluster client with plaintext channels gets nothing from TLS nodes: misses, never
  // blocks.
  o.tls = TlsClientOptions();
  absl::StatusOr<std::unique_ptr<ClusterCacheClient>> plain = NewClusterCacheClient(o);
  ASSERT_TRUE(plain.ok());
  absl::StatusOr<CacheLookup> miss = (*plain)->Lookup(ns, keys);
  EXPECT_TRUE(!miss.ok() || miss->num_present == 0);
}

TEST_F(TlsTest, PlaintextClientOfATlsServerIsUnavailable) {
  std::unique_ptr<CacheServer> server = Start(Options());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(LookupCode(*server, TlsClientOptions()), absl::StatusCode::kUnavailable);
  absl::StatusOr<std::unique_ptr<AdminClient>> admin =
      NewAdminClient({server->address(), absl::Seconds(3), TlsClientOptions()});
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ((*admin)->GetStats().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, UntrustedServerCertificateIsUnavailable) {
  std::unique_ptr<CacheServer> server = Start(Options());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(LookupCode(*server, Trusting(other_ca_)), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, MutualTlsServerAcceptsOnlyClientsWithATrustedCertificate) {
  std::unique_ptr<CacheServer> server = Start(Options(/*mutual=*/true));
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->ConfigSummary().find("tls on, mutual"), std::string::npos);
  EXPECT_EQ(LookupCode(*server, Trusting(ca_)), absl::StatusCode::kUnavailable)
      << "a client without a certificate";
  EXPECT_EQ(LookupCode(*server, Trusting(ca_, &rogue_client_)), absl::StatusCode::kUnavailable)
      << "a client certificate from another CA";
  EXPECT_EQ(LookupCode(*server, Trusting(ca_, &client_cert_)), absl::StatusCode::kOk);
  absl::StatusOr<std::unique_ptr<AdminClient>> admin =
      NewAdminClient({server->address(), absl::Seconds(3), Trusting(ca_, &client_cert_)});
  ASSERT_TRUE(admin.ok());
  EXPECT_TRUE((*admin)->GetConfig().ok());
}

TEST_F(TlsTest, ReplacedCertificateIsServedWithoutRestart) {
  // The server's files live where they will be replaced; the new certificate is signed by
  // another CA, so which one a handshake gets shows which file was read.
  const std::string live = dir_.Sub("live");
  std::filesystem::create_directory(live);
  std::filesystem::copy_file(server_cert_.cert_file, live + "/tls.crt");
  std::filesystem::copy_file(server_cert_.key_file, live + "/tls.key");
  ServerOptions o = Options();
  o.tls.cert_file = live + "/tls.crt";
  o.tls.key_file = live + "/tls.key";
  o.tls.reload_interval = absl::Seconds(1);
  std::unique_ptr<CacheServer> server = Start(o);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(LookupCode(*server, Trusting(ca_)), absl::StatusCode::kOk);
  EXPECT_EQ(LookupCode(*server, Trusting(other_ca_)), absl::StatusCode::kUnavailable);

  const TestCert next = MakeTestLeaf(dir_.path(), "server-next", other_ca_, 5);
  // Each file replaced by a rename (atomic); the key first, so that a reload between the
  // two sees a mismatched pair, which gRPC skips.
  std::filesystem::copy_file(next.key_file, live + "/tls.key.new");
  std::filesystem::copy_file(next.cert_file, live + "/tls.crt.new");
  std::filesystem::rename(live + "/tls.key.new", live + "/tls.key");
  std::filesystem::rename(live + "/tls.crt.new", live + "/tls.crt");

  absl::StatusCode code = absl::StatusCode::kUnknown;
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline) {
    code = LookupCode(*server, Trusting(other_ca_));
    if (code == absl::StatusCode::kOk) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_EQ(code, absl::StatusCode::kOk) << "the new certificate was not picked up";
  EXPECT_EQ(LookupCode(*server, Trusting(ca_)), absl::StatusCode::kUnavailable)
      << "the old certificate is still served";
}

TEST_F(TlsTest, BadFilesAndTheDataChannelAreRefusedAtStart) {
  ServerOptions o = Options();
  o.tls.key_file = client_cert_.key_file;  // Not the certificate's key.
  absl::StatusOr<std::unique_ptr<CacheServer>> s = StartCacheServer(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--tls-key"), std::string::npos) << s.status();

  o = Options();
  o.tls.cert_file = dir_.Sub("missing.crt");
  s = StartCacheServer(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--tls-cert"), std::string::npos) << s.status();

  o = Options();
  o.data_listen = "127.0.0.1:0";
  s = StartCacheServer(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--data-listen"), std::string::npos) << s.status();

  CacheClientOptions co;
  co.target = "127.0.0.1:1";
  co.tls.ca_file = dir_.Sub("missing.pem");
  EXPECT_EQ(NewCacheClient(co).status().code(), absl::StatusCode::kInvalidArgument);
  co.target = "127.0.0.1:1,127.0.0.1:2";
  EXPECT_EQ(NewCacheClient(co).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsTest, PlaintextIsRefusedOffLoopbackUnlessAllowed) {
  ServerOptions o;
  o.listen = "0.0.0.0:0";
  o.store.ram.capacity_bytes = 8 << 20;
  absl::StatusOr<std::unique_ptr<CacheServer>> s = StartCacheServer(o);
  EXPECT_TRUE(IsUsageError(s.status())) << s.status();
  EXPECT_NE(s.status().message().find("--allow-plaintext"), std::string::npos) << s.status();

  std::string warning;
  EXPECT_TRUE(CheckPlaintextPolicy("x", "0.0.0.0:1", false, true, &warning).ok());
  EXPECT_NE(warning.find("PLAINTEXT"), std::string::npos);
  EXPECT_TRUE(CheckPlaintextPolicy("x", "127.0.0.1:1", false, false, &warning).ok());
  EXPECT_NE(warning.find("warning"), std::string::npos);
  EXPECT_TRUE(CheckPlaintextPolicy("x", "10.0.0.1:1", true, false, &warning).ok());
  EXPECT_TRUE(warning.empty());

  for (const char* a : {"127.0.0.1:1", "127.1.2.3:0", "localhost:50051", "[::1]:0"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0:1", "[::]:0", "10.1.2.3:5", "cache.example.com:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

}  // namespace
}  // namespace kvcache
