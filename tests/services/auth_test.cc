// Callers, tenants and roles (services/access.h, docs/security.md) over real TLS on
// loopback with certificates made at test time: every kind of caller gets its documented
// answer on every RPC and on the data channel; tenant B can neither read, Lookup nor
// overwrite tenant A's blocks with A's exact namespace id and keys; conflicting Puts are
// kept out and listed; a reload (SIGHUP) revokes a caller at once.

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <map>

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/admin_client.h"
#include "client/cache_client.h"
#include "common/checksum.h"
#include "common/data_channel_wire.h"
#include "common/socket_io.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/grpc_status.h"
#include "services/access.h"
#include "services/cache_server.h"
#include "tests/test_util.h"
#include "tests/tls_test_certs.h"

namespace kvcache {
namespace {

namespace dc = data_channel;
using testing::MakeTestCa;
using testing::MakeTestLeaf;
using testing::TempDir;
using testing::TestCert;
using testing::Trusting;
using testing::TestKey;
using testing::TestPayload;

constexpr char kReaderA[] = "reader-a-0123456789abcdef";
constexpr char kWriterA[] = "writer-a-0123456789abcdef";
constexpr char kWriterB[] = "writer-b-0123456789abcdef";
constexpr char kAdmin[] = "admin-ops-0123456789abcdef";
constexpr char kExpired[] = "expired-a-0123456789abcdef";
constexpr char kUnknown[] = "unknown-x-0123456789abcdef";

std::string Sha256Hex(absl::string_view s) {
  unsigned char d[32];
  EVP_Digest(s.data(), s.size(), d, nullptr, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(d), 32));
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// One stored block's fields, as the RPCs send them.
struct TestBlock {
  Key key;
  std::string payload;
};

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeTestCa(dir_.path(), "ca");
    other_ca_ = MakeTestCa(dir_.path(), "other-ca");
    server_cert_ = MakeTestLeaf(dir_.path(), "server", ca_, 2);
    client_cert_ = MakeTestLeaf(dir_.path(), "client", ca_, 3);
    unlisted_cert_ = MakeTestLeaf(dir_.path(), "unlisted", ca_, 4);
    rogue_cert_ = MakeTestLeaf(dir_.path(), "rogue", other_ca_, 5);
    tokens_ = dir_.path() + "/tokens";
    WriteFile(tokens_, Tokens(/*with_writer_b=*/true));
  }

  static std::string Tokens(bool with_writer_b) {
    return absl::StrCat(
        "# callers of the test server\n",
        "token ", kReaderA, " tenant=a role=reader\n",
        "token sha256:", Sha256Hex(kWriterA), " tenant=a role=writer\n",
        with_writer_b ? absl::StrCat("token ", kWriterB, " tenant=b role=writer\n") : "",
        "token ", kAdmin, "   tenant=ops role=admin   # operators\n",
        "token ", kExpired, " tenant=a role=writer expires=2020-01-01T00:00:00Z\n",
        "cert kvcache%20test%20client tenant=a role=writer\n",
        "quota a ram=1GiB\n");
  }

  ServerOptions Options(bool tls, bool mutual = false) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.admin_listen = "127.0.0.1:0";
    o.store.ram.capacity_bytes = 8 << 20;
    o.store.max_block_bytes = 1 << 20;
    o.auth_tokens_file = tokens_;
    if (tls) {
      o.tls.cert_file = server_cert_.cert_file;
      o.tls.key_file = server_cert_.key_file;
      if (mutual) o.tls.client_ca_file = ca_.cert_file;
    } else {
      o.data_listen = "127.0.0.1:0";
    }
    return o;
  }

  std::unique_ptr<CacheServer> Start(const ServerOptions& o) {
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  static std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                                const TlsClientOptions& tls) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        MakeChannelCredentials(tls);
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    AddTlsChannelArgs(tls, &args);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address, *creds, args);
  }

  static void Prepare(grpc::ClientContext* ctx, const std::string& token) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  }

  static std::vector<TestBlock> Blocks(size_t n, uint64_t seed) {
    std::vector<TestBlock> out;
    for (size_t i = 0; i < n; ++i) out.push_back({TestKey(1000 + i), TestPayload(3000, seed + i)});
    return out;
  }

  // Each RPC's status code for a caller.
  struct Answers {
    grpc::StatusCode lookup, get, put, open_data, admin;
    uint32_t num_present = 0;
    std::vector<std::string> got;  // Payloads Get returned.
    v1::PutResponse put_response;
  };

  static Answers Call(const std::string& address, const std::string& admin_address,
                      const TlsClientOptions& tls, const std::string& token, const Key& ns,
                      const std::vector<TestBlock>& blocks, bool do_put = true) {
    Answers a;
    auto channel = Channel(address, tls);
    auto stub = v1::CacheService::NewStub(channel);
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::LookupRequest req;
      req.set_namespace_id(std::string(ns.view()));
      for (const TestBlock& b : blocks) req.add_keys(std::string(b.key.view()));
      v1::LookupResponse resp;
      a.lookup = stub->Lookup(&ctx, req, &resp).error_code();
      a.num_present = resp.num_present();
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::GetRequest req;
      req.set_namespace_id(std::string(ns.view()));
      for (const TestBlock& b : blocks) req.add_keys(std::string(b.key.view()));
      auto reader = stub->Get(&ctx, req);
      v1::GetResponse resp;
      while (reader->Read(&resp)) a.got.push_back(resp.block().payload());
      a.get = reader->Finish().error_code();
    }
    if (do_put) {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      auto writer = stub->Put(&ctx, &a.put_response);
      v1::PutRequest req;
      req.set_namespace_id(std::string(ns.view()));
      for (const TestBlock& b : blocks) {
        v1::Block* pb = req.add_blocks();
        pb->set_key(std::string(b.key.view()));
        pb->set_payload(b.payload);
        pb->set_checksum(PayloadChecksum(b.payload));
      }
      writer->Write(req);
      writer->WritesDone();
      a.put = writer->Finish().error_code();
    } else {
      a.put = grpc::StatusCode::OK;
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::OpenDataChannelResponse resp;
      a.open_data = stub->OpenDataChannel(&ctx, v1::OpenDataChannelRequest(), &resp).error_code();
    }
    {
      auto admin = v1::AdminService::NewStub(Channel(admin_address, tls));
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::GetStatsResponse resp;
      a.admin = admin->GetStats(&ctx, v1::GetStatsRequest(), &resp).error_code();
    }
    return a;
  }

  TempDir dir_;
  TestCert ca_, other_ca_, server_cert_, client_cert_, unlisted_cert_, rogue_cert_;
  std::string tokens_;
};

using C = grpc::StatusCode;


TEST_F(AuthTest, EveryCallerGetsItsDocumentedAnswerOnEveryRpc) {
  std::unique_ptr<CacheServer> server = Start(Options(/*tls=*/true));
  ASSERT_NE(server, nullptr);
  const std::string addr = server->address();
  const std::string admin = server->admin_address();
  const Key ns = TestKey(7, 1);
  const std::vector<TestBlock> blocks = Blocks(3, 10);
  const TlsClientOptions tls = Trusting(ca_);

  struct Case {
    const char* who;
    TlsClientOptions tls;
    std::string token;
    C lookup, get, put, open_data, admin;
  };
  // UNAVAILABLE for OpenDataChannel: a TLS server offers no plaintext data channel; the
  // caller got past authentication to learn that.
  const Case cases[] = {
      {"anonymous", tls, "", C::UNAUTHENTICATED, C::UNAUTHENTICATED, C::UNAUTHENTICATED,
       C::UNAUTHENTICATED, C::UNAUTHENTICATED},
      {"unknown token", tls, kUnknown, C::UNAUTHENTICATED, C::UNAUTHENTICATED,
       C::UNAUTHENTICATED, C::UNAUTHENTICATED, C::UNAUTHENTICATED},
      {"expired token", tls, kExpired, C::UNAUTHENTICATED, C::UNAUTHENTICATED,
       C::UNAUTHENTICATED, C::UNAUTHENTICATED, C::UNAUTHENTICATED},
      {"reader of a", tls, kReaderA, C::OK, C::OK, C::PERMISSION_DENIED, C::UNAVAILABLE,
       C::PERMISSION_DENIED},
      {"writer of a", tls, kWriterA, C::OK, C::OK, C::OK, C::UNAVAILABLE, C::PERMISSION_DENIED},
      {"admin of ops", tls, kAdmin, C::OK, C::OK, C::OK, C::UNAVAILABLE, C::OK},
      {"plaintext client", TlsClientOptions{}, kWriterA, C::UNAVAILABLE, C::UNAVAILABLE,
       C::UNAVAILABLE, C::UNAVAILABLE, C::UNAVAILABLE},
      {"untrusted server cert", Trusting(other_ca_), kWriterA, C::UNAVAILABLE, C::UNAVAILABLE,
       C::UNAVAILABLE, C::UNAVAILABLE, C::UNAVAILABLE},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.who);
    Answers a = Call(addr, admin, c.tls, c.token, ns, blocks);
    EXPECT_EQ(a.lookup, c.lookup);
    EXPECT_EQ(a.get, c.get);
    EXPECT_EQ(a.put, c.put);
    EXPECT_EQ(a.open_data, c.open_data);
    EXPECT_EQ(a.admin, c.admin);
    if (c.lookup != C::OK) {
      EXPECT_TRUE(a.got.empty()) << "a refused caller was sent blocks";
    }
  }
}

TEST_F(AuthTest, ClientCertificatesAuthenticateOverMutualTls) {
  std::unique_ptr<CacheServer> server = Start(Options(/*tls=*/true, /*mutual=*/true));
  ASSERT_NE(server, nullptr);
  const Key ns = TestKey(8, 1);
  const std::vector<TestBlock> blocks = Blocks(2, 20);
  // Listed: tenant a's writer, no token needed.
  Answers listed = Call(server->address(), server->admin_address(),
                        Trusting(ca_, &client_cert_), "", ns, blocks);
  EXPECT_EQ(listed.put, C::OK);
  EXPECT_EQ(listed.lookup, C::OK);
  EXPECT_EQ(listed.admin, C::PERMISSION_DENIED);
  // Signed by the trusted CA but not listed: the handshake passes, the calls do not.
  Answers unlisted = Call(server->address(), server->admin_address(),
                          Trusting(ca_, &unlisted_cert_), "", ns, blocks);
  EXPECT_EQ(unlisted.lookup, C::UNAUTHENTICATED);
  EXPECT_EQ(unlisted.put, C::UNAUTHENTICATED);
  // A token wins over the certificate.
  Answers both = Call(server->address(), server->admin_address(),
                      Trusting(ca_, &unlisted_cert_), kAdmin, ns, blocks);
  EXPECT_EQ(both.admin, C::OK);
  // Signed by another CA: no handshake.
  Answers rogue = Call(server->address(), server->admin_address(),
                       Trusting(ca_, &rogue_cert_), kWriterA, ns, blocks);
  EXPECT_EQ(rogue.lookup, C::UNAVAILABLE);
  EXPECT_EQ(rogue.put, C::UNAVAILABLE);
}

TEST_F(AuthTest, TenantsCannotReadProbeOrOverwriteEachOther) {
  std::unique_ptr<CacheServer> server = Start(Options(/*tls=*/true));
  ASSERT_NE(server, nullptr);
  const TlsClientOptions tls = Trusting(ca_);
  const Key ns = TestKey(9, 1);
  const std::vector<TestBlock> a_blocks = Blocks(4, 30);
  Answers a = Call(server->address(), server->admin_address(), tls, kWriterA, ns, a_blocks);
  ASSERT_EQ(a.put, C::OK);
  EXPECT_EQ(a.put_response.stored(), 4u);

  // B with A's exact namespace id and keys: nothing to see.
  Answers b = Call(server->address(), server->admin_address(), tls, kWriterB, ns, a_blocks,
                   /*do_put=*/false);
  EXPECT_EQ(b.lookup, C::OK);
  EXPECT_EQ(b.num_present, 0u) << "Lookup probed another tenant's blocks";
  EXPECT_TRUE(b.got.empty()) << "Get read another tenant's blocks";

  // B writes other bytes under the same ids: stored as B's own, A's stay A's.
  const std::vector<TestBlock> b_blocks = [&] {
    std::vector<TestBlock> v = a_blocks;
    for (size_t i = 0; i < v.size(); ++i) v[i].payload = TestPayload(3000, 900 + i);
    return v;
  }();
  Answers b_put = Call(server->address(), server->admin_address(), tls, kWriterB, ns, b_blocks);
  EXPECT_EQ(b_put.put, C::OK);
  EXPECT_EQ(b_put.put_response.stored(), 4u);
  EXPECT_EQ(b_put.put_response.conflicts(), 0u);
  Answers a_again =
      Call(server->address(), server->admin_address(), tls, kReaderA, ns, a_blocks, false);
  ASSERT_EQ(a_again.got.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(a_again.got[i], a_blocks[i].payload);
  Answers b_again =
      Call(server->address(), server->admin_address(), tls, kWriterB, ns, b_blocks, false);
  ASSERT_EQ(b_again.got.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(b_again.got[i], b_blocks[i].payload);

  // The admin sees both, by tenant.
  absl::StatusOr<std::unique_ptr<AdminClient>> admin = [&] {
    TlsClientOptions t = tls;
    t.token = kAdmin;
    return NewAdminClient({server->admin_address(), absl::Seconds(5), t});
  }();
  ASSERT_TRUE(admin.ok()) << admin.status();
  v1::ListBlocksRequest list;
  list.set_tenant("b");
  list.set_namespace_id(std::string(ns.view()));
  absl::StatusOr<v1::ListBlocksResponse> listed = (*admin)->ListBlocks(list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->blocks_size(), 4);
  EXPECT_EQ(listed->blocks(0).tenant(), "b");
}

TEST_F(AuthTest, ConflictingPutsKeepTheStoredBlockAndAreListed) {
  std::unique_ptr<CacheServer> server = Start(Options(/*tls=*/true));
  ASSERT_NE(server, nullptr);
  const TlsClientOptions tls = Trusting(ca_);
  const Key ns = TestKey(10, 1);
  const std::vector<TestBlock> good = Blocks(2, 40);
  std::vector<TestBlock> poison = good;
  poison[1].payload = TestPayload(3000, 666);
  ASSERT_EQ(Call(server->address(), server->admin_address(), tls, kWriterA, ns, good).put,
            C::OK);
  Answers again = Call(server->address(), server->admin_address(), tls, kWriterA, ns, poison);
  EXPECT_EQ(again.put, C::OK);
  EXPECT_EQ(again.put_response.already_present(), 2u);
  EXPECT_EQ(again.put_response.conflicts(), 1u);
  Answers read = Call(server->address(), server->admin_address(), tls, kReaderA, ns, good, false);
  ASSERT_EQ(read.got.size(), 2u);
  EXPECT_EQ(read.got[1], good[1].payload) << "a conflicting Put replaced the stored block";

  TlsClientOptions t = tls;
  t.token = kAdmin;
  absl::StatusOr<std::unique_ptr<AdminClient>> admin =
      NewAdminClient({server->admin_address(), absl::Seconds(5), t});
  ASSERT_TRUE(admin.ok());
  absl::StatusOr<v1::ListConflictsResponse> conflicts =
      (*admin)->ListConflicts(v1::ListConflictsRequest());
  ASSERT_TRUE(conflicts.ok()) << conflicts.status();
  ASSERT_EQ(conflicts->conflicts_size(), 1);
  EXPECT_EQ(conflicts->total(), 1u);
  const v1::Conflict& c = conflicts->conflicts(0);
  EXPECT_EQ(c.tenant(), "a");
  EXPECT_EQ(c.key(), std::string(good[1].key.view()));
  EXPECT_EQ(c.namespace_id(), std::string(ns.view())) << "listed as the caller sent it";
  EXPECT_EQ(c.stored_checksum(), PayloadChecksum(good[1].payload));
  EXPECT_EQ(c.offered_checksum(), PayloadChecksum(poison[1].payload));
  absl::StatusOr<v1::GetStatsResponse> stats = (*admin)->GetStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->conflicts(), 1u);
}

// Namespaces in a snapshot of SubscribeEvents (from_sequence 0) for a caller, or the code.
std::pair<grpc::StatusCode, std::vector<std::string>> SnapshotNamespaces(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  auto stub = v1::CacheService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::SubscribeEventsRequest req;
  auto reader = stub->SubscribeEvents(&ctx, req);
  std::vector<std::string> namespaces;
  v1::SubscribeEventsResponse resp;
  while (reader->Read(&resp)) {
    for (const v1::BlockStored& b : resp.snapshot().blocks()) {
      namespaces.push_back(b.namespace_id());
    }
    if (resp.has_snapshot() && resp.snapshot().last()) {
      ctx.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  return {status.error_code() == C::CANCELLED ? C::OK : status.error_code(), namespaces};
}

TEST_F(AuthTest, EventsShowATenantOnlyItsOwnBlocks) {
  std::unique_ptr<CacheServer> server = Start(Options(/*tls=*/true));
  ASSERT_NE(server, nullptr);
  const TlsClientOptions tls = Trusting(ca_);
  const Key ns = TestKey(12, 1);
  ASSERT_EQ(Call(server->address(), server->admin_address(), tls, kWriterA, ns, Blocks(3, 60))
                .put,
            C::OK);
  auto channel = Channel(server->address(), tls);
  EXPECT_EQ(SnapshotNamespaces(channel, "").first, C::UNAUTHENTICATED);
  auto [b_code, b_seen] = SnapshotNamespaces(channel, kWriterB);
  EXPECT_EQ(b_code, C::OK);
  EXPECT_TRUE(b_seen.empty()) << "tenant b saw tenant a's blocks in events";
  auto [a_code, a_seen] = SnapshotNamespaces(channel, kReaderA);
  EXPECT_EQ(a_code, C::OK);
  ASSERT_EQ(a_seen.size(), 3u);
  EXPECT_EQ(a_seen[0], std::string(StoredNamespace("a", ns).view())) << "the stored form";
  auto [admin_code, admin_seen] = SnapshotNamespaces(channel, kAdmin);
  EXPECT_EQ(admin_code, C::OK);
  EXPECT_EQ(admin_seen.size(), 3u);
}

// The data channel: its token is per caller, and every request is checked as the RPCs are.
class DataChannelAuth {
 public:
  DataChannelAuth(const std::string& address, const std::string& token) {
    auto stub = v1::CacheService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    status_ = stub->OpenDataChannel(&ctx, v1::OpenDataChannelRequest(), &open_).error_code();
  }
  grpc::StatusCode open_status() const { return status_; }
  const v1::OpenDataChannelResponse& open() const { return open_; }

  // A connection that said hello with the issued token (or `token` when given); -1 when
  // the server closed it.
  int Connect(const std::string* token = nullptr) {
    absl::StatusOr<int> fd = ConnectTcp(open_.address(), absl::Seconds(5));
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    Key t;
    const std::string raw = token ? *token : open_.token();
    std::copy(raw.begin(), raw.end(), t.bytes.begin());
    char hello[dc::kHelloBytes];
    dc::EncodeHello(t, hello);
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    char accepted = 1;
    if (!WriteFull(*fd, hello, sizeof(hello), deadline).ok() ||
        !ReadFull(*fd, &accepted, 1, deadline).ok() || accepted != 0) {
      ::close(*fd);
      return -1;
    }
    return *fd;
  }

  // PUT one block; the reply's first byte (kStored or kError), and the error's code.
  static std::pair<int, absl::StatusCode> Put(int fd, const Key& ns, const TestBlock& b) {
    std::string frame(1 + kKeyBytes + dc::kBlockHeaderBytes, '\0');
    frame[0] = dc::kPut;
    std::copy(ns.bytes.begin(), ns.bytes.end(), frame.begin() + 1);
    dc::EncodeBlockHeader({b.key, std::nullopt, PayloadChecksum(b.payload), {}, b.payload.size()},
                          frame.data() + 1 + kKeyBytes);
    frame += b.payload;
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    if (!WriteFull(fd, frame.data(), frame.size(), deadline).ok()) return {-1, {}};
    return ReadReply(fd, deadline);
  }

  // GET keys; how many blocks came back (or the error).
  static std::pair<int, absl::StatusCode> Get(int fd, const Key& ns,
                                              const std::vector<TestBlock>& blocks) {
    std::string frame(1 + kKeyBytes + 4, '\0');
    frame[0] = dc::kGet;
    std::copy(ns.bytes.begin(), ns.bytes.end(), frame.begin() + 1);
    dc::PutU32(frame.data() + 1 + kKeyBytes, static_cast<uint32_t>(blocks.size()));
    for (const TestBlock& b : blocks) frame += std::string(b.key.view());
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    if (!WriteFull(fd, frame.data(), frame.size(), deadline).ok()) return {-1, {}};
    int n = 0;
    while (true) {
      char kind = 0;
      if (!ReadFull(fd, &kind, 1, deadline).ok()) return {-1, {}};
      if (kind == dc::kEnd) return {n, absl::StatusCode::kOk};
      if (kind == dc::kError) return {-1, ReadError(fd, deadline)};
      char head[dc::kBlockHeaderBytes];
      if (!ReadFull(fd, head, sizeof(head), deadline).ok()) return {-1, {}};
      absl::StatusOr<dc::BlockHeader> h = dc::DecodeBlockHeader({head, sizeof(head)});
      std::string payload(h->payload_bytes, '\0');
      if (!ReadFull(fd, payload.data(), payload.size(), deadline).ok()) return {-1, {}};
      ++n;
    }
  }

 private:
  static std::pair<int, absl::StatusCode> ReadReply(int fd, absl::Time deadline) {
    char kind = 0;
    if (!ReadFull(fd, &kind, 1, deadline).ok()) return {-1, {}};
    if (kind == dc::kStored) {
      char outcome;
      ReadFull(fd, &outcome, 1, deadline).IgnoreError();
      return {kind, absl::StatusCode::kOk};
    }
    return {kind, ReadError(fd, deadline)};
  }
  static absl::StatusCode ReadError(int fd, absl::Time deadline) {
    char head[dc::kErrorHeadBytes];
    if (!ReadFull(fd, head, sizeof(head), deadline).ok()) return absl::StatusCode::kUnknown;
    std::string message(dc::GetU32(head + 1), '\0');
    ReadFull(fd, message.data(), message.size(), deadline).IgnoreError();
    return static_cast<absl::StatusCode>(head[0]);
  }

  grpc::StatusCode status_;
  v1::OpenDataChannelResponse open_;
};

TEST_F(AuthTest, TheDataChannelChecksTenantAndRolePerCaller) {
  std::unique_ptr<CacheServer> server = Start(Options(/*tls=*/false));
  ASSERT_NE(server, nullptr);
  ASSERT_FALSE(server->data_address().empty());
  const Key ns = TestKey(11, 1);
  const std::vector<TestBlock> blocks = Blocks(3, 50);

  {  // Anonymous and unknown callers get no token.
    auto stub = v1::CacheService::NewStub(
        grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::OpenDataChannelResponse resp;
    EXPECT_EQ(stub->OpenDataChannel(&ctx, v1::OpenDataChannelRequest(), &resp).error_code(),
              C::UNAUTHENTICATED);
    EXPECT_EQ(DataChannelAuth(server->address(), kUnknown).open_status(), C::UNAUTHENTICATED);
  }
  DataChannelAuth writer_a(server->address(), kWriterA);
  DataChannelAuth reader_a(server->address(), kReaderA);
  DataChannelAuth writer_b(server->address(), kWriterB);
  ASSERT_EQ(writer_a.open_status(), C::OK);
  ASSERT_EQ(reader_a.open_status(), C::OK);
  ASSERT_EQ(writer_b.open_status(), C::OK);
  EXPECT_NE(writer_a.open().token(), reader_a.open().token()) << "tokens are per caller";

  // A made-up token is refused at hello.
  const std::string forged(32, 'x');
  EXPECT_EQ(writer_a.Connect(&forged), -1);

  int fd = writer_a.Connect();
  ASSERT_GE(fd, 0);
  for (const TestBlock& b : blocks) {
    EXPECT_EQ(DataChannelAuth::Put(fd, ns, b).first, dc::kStored);
  }
  EXPECT_EQ(DataChannelAuth::Get(fd, ns, blocks).first, 3);
  ::close(fd);

  fd = reader_a.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(DataChannelAuth::Get(fd, ns, blocks).first, 3);
  std::pair<int, absl::StatusCode> denied = DataChannelAuth::Put(fd, ns, blocks[0]);
  EXPECT_EQ(denied.first, dc::kError);
  EXPECT_EQ(denied.second, absl::StatusCode::kPermissionDenied);
  ::close(fd);

  fd = writer_b.Connect();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(DataChannelAuth::Get(fd, ns, blocks).first, 0) << "B read A's blocks";
  ::close(fd);

  // A reload that drops writer b revokes its channel token on the next request.
  fd = writer_b.Connect();
  ASSERT_GE(fd, 0);
  WriteFile(tokens_, Tokens(/*with_writer_b=*/false));
  ASSERT_TRUE(server->ReloadAccess().ok());
  std::pair<int, absl::StatusCode> revoked = DataChannelAuth::Get(fd, ns, blocks);
  EXPECT_EQ(revoked.second, absl::StatusCode::kUnauthenticated);
  ::close(fd);
  EXPECT_EQ(writer_b.Connect(), -1);
  EXPECT_EQ(DataChannelAuth(server->address(), kWriterB).open_status(), C::UNAUTHENTICATED);
  // A broken file keeps the callers in use.
  WriteFile(tokens_, "token short tenant=a role=writer\n");
  absl::Status bad = server->ReloadAccess();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find(":1:"), std::string::npos) << bad.message();
  EXPECT_EQ(DataChannelAuth(server->address(), kWriterA).open_status(), C::OK);
}

TEST_F(AuthTest, AdminServiceLivesOnItsOwnListener) {
  ServerOptions o = Options(/*tls=*/true);
  std::unique_ptr<CacheServer> server = Start(o);
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->admin_address(), server->address());
  // Loopback --listen: served on both; an admin role needed on either.
  for (const std::string& address : {server->admin_address(), server->address()}) {
    auto admin = v1::AdminService::NewStub(Channel(address, Trusting(ca_)));
    grpc::ClientContext ctx;
    Prepare(&ctx, kAdmin);
    v1::GetConfigResponse config;
    ASSERT_EQ(admin->GetConfig(&ctx, v1::GetConfigRequest(), &config).error_code(), C::OK)
        << address;
    EXPECT_EQ(config.auth(), tokens_);
    EXPECT_EQ(config.admin_listen(), server->admin_address());
  }
}

TEST(AuthPolicy, AnonymousAccessOffLoopbackNeedsAFlag) {
  ServerOptions o;
  o.listen = "0.0.0.0:0";
  o.allow_plaintext = true;
  std::vector<std::string> warnings;
  absl::Status refused = CheckServerPolicies(o, &warnings);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("--auth-tokens"), std::string::npos) << refused.message();
  o.allow_anonymous = true;
  ASSERT_TRUE(CheckServerPolicies(o, &warnings).ok());
  EXPECT_NE(absl::StrJoin(warnings, "\n").find("anonymous"), std::string::npos);
  // The admin listener off loopback needs the same.
  ServerOptions a;
  a.listen = "127.0.0.1:0";
  a.admin_listen = "0.0.0.0:0";
  EXPECT_FALSE(CheckServerPolicies(a, &warnings).ok());
}

TEST(AccessControlFile, MalformedFilesNameTheLine) {
  TempDir dir;
  const std::string path = dir.path() + "/t";
  const std::pair<const char*, const char*> bad[] = {
      {"token abcdefghijklmnopqrstuvwxyz tenant=a\n", "role="},
      {"token abcdefghijklmnopqrstuvwxyz tenant=a role=root\n", "reader, writer or admin"},
      {"token short tenant=a role=reader\n", "at least 16"},
      {"token abcdefghijklmnopqrstuvwxyz tenant=a/b role=reader\n", "tenant"},
      {"token abcdefghijklmnopqrstuvwxyz tenant=a role=reader expires=tomorrow\n", "RFC 3339"},
      {"user x tenant=a role=reader\n", "token, cert or quota"},
      {"quota a ram=lots\n", "ram"},
      {"cert bad%zz tenant=a role=reader\n", "hex"},
  };
  for (const auto& [text, why] : bad) {
    WriteFile(path, std::string("# header\n") + text);
    absl::StatusOr<std::unique_ptr<AccessControl>> a = AccessControl::Load(path);
    ASSERT_FALSE(a.ok()) << text;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(a.status().message().find(":2:"), std::string::npos) << a.status().message();
    EXPECT_NE(a.status().message().find(why), std::string::npos) << a.status().message();
  }
  EXPECT_EQ(AccessControl::Load(dir.path() + "/missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(AccessControlFile, StoredNamespacesAreTheTenantsOwn) {
  const Key ns = TestKey(1);
  EXPECT_EQ(StoredNamespace("", ns), ns) << "anonymous: as sent";
  EXPECT_NE(StoredNamespace("a", ns), ns);
  EXPECT_NE(StoredNamespace("a", ns), StoredNamespace("b", ns));
  EXPECT_EQ(StoredNamespace("a", ns), StoredNamespace("a", ns)) << "stable across calls";
  EXPECT_NE(StoredNamespace("a", ns), StoredNamespace("a", TestKey(2)));
  // Tenant names are length-prefixed: "ab"+ns never equals "a"+("b"...)
  EXPECT_NE(StoredNamespace("ab", ns), StoredNamespace("a", ns));
}

}  // namespace
}  // namespace kvcache
