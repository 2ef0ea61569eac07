// The cache and admin services on a real gRPC server on 127.0.0.1:0, over a real RocksDB in
// a temp directory: the data path, every bad input with its status code, concurrency,
// metrics and shutdown.

#include <grpcpp/grpcpp.h>

#include <thread>

#include "client/admin_client.h"
#include "client/cache_client.h"
#include "common/checksum.h"
#include "common/data_channel_wire.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "services/cache_server.h"
#include "tests/client_test_util.h"
#include "tests/http_get.h"
#include "tests/tcp_proxy.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

constexpr uint64_t kMaxBlockBytes = 1 << 20;

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*metrics=*/false); }

  // (Re)starts the server; the metrics endpoint is off unless asked (it is slow to stop).
  void StartServer(bool metrics, bool data_channel = true) {
    server_.reset();
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    if (data_channel) o.data_listen = "127.0.0.1:0";
    if (metrics) o.metrics_listen = "127.0.0.1:0";
    o.store.ram.capacity_bytes = 8 << 20;
    o.store.max_block_bytes = kMaxBlockBytes;
    o.store.disk = DiskTierOptions{};
    o.store.disk->path = dir_.Sub("db");
    o.store.disk->capacity_bytes = 64 << 20;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = NewClient();
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(),
                                         args);
    stub_ = v1::CacheService::NewStub(channel_);
    admin_stub_ = v1::AdminService::NewStub(channel_);
  }

  std::unique_ptr<CacheClient> NewClient(bool data_channel = true) {
    CacheClientOptions o;
    o.target = server_->address();
    o.use_data_channel = data_channel;
    return *NewCacheClient(o);
  }

  std::vector<CacheBlock> Chain(size_t n, size_t size = 10000, uint64_t seed = 0) {
    return testing::TestChain(n, size, seed);
  }
  static std::vector<Key> KeysOf(const std::vector<CacheBlock>& blocks) {
    return testing::KeysOf(blocks);
  }

  // A raw, valid Put block, for tests that then break one field.
  v1::Block RawBlock(uint64_t n, size_t size = 1000) {
    v1::Block b;
    b.set_key(std::string(TestKey(n).view()));
    b.set_payload(TestPayload(size, n));
    b.set_checksum(PayloadChecksum(b.payload()));
    return b;
  }

  // Puts `requests` as one raw client stream.
  grpc::Status RawPut(const std::vector<v1::PutRequest>& requests,
                      v1::PutResponse* response = nullptr) {
    v1::PutResponse ignored;
    grpc::ClientContext ctx;
    auto writer = stub_->Put(&ctx, response ? response : &ignored);
    for (const v1::PutRequest& r : requests) {
      if (!writer->Write(r)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::PutRequest PutOf(const Key& ns, std::vector<v1::Block> blocks) {
    v1::PutRequest r;
    r.set_namespace_id(std::string(ns.view()));
    for (v1::Block& b : blocks) *r.add_blocks() = std::move(b);
    return r;
  }

  grpc::Status RawLookup(const std::string& ns, const std::vector<std::string>& keys,
                         v1::LookupResponse* resp = nullptr) {
    v1::LookupRequest req;
    req.set_namespace_id(ns);
    for (const std::string& k : keys) req.add_keys(k);
    v1::LookupResponse ignored;
    grpc::ClientContext ctx;
    return stub_->Lookup(&ctx, req, resp ? resp : &ignored);
  }

  grpc::Status RawGet(const std::string& ns, const std::vector<std::string>& keys,
                      int* received = nullptr) {
    v1::GetRequest req;
    req.set_namespace_id(ns);
    for (const std::string& k : keys) req.add_keys(k);
    grpc::ClientContext ctx;
    auto reader = stub_->Get(&ctx, req);
    v1::GetResponse resp;
    int n = 0;
    while (reader->Read(&resp)) ++n;
    if (received) *received = n;
    return reader->Finish();
  }

  std::string K(uint64_t n) const { return std::string(TestKey(n).view()); }

  TempDir dir_;
  std::unique_ptr<CacheServer> server_;
  std::unique_ptr<CacheClient> client_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CacheService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_stub_;
  Key ns_ = TestKey(100, 3);
};

TEST_F(ServicesTest, PutLookupGetRoundTrip) {
  std::vector<CacheBlock> chain = Chain(5);
  absl::StatusOr<CachePutResult> put = client_->Put(ns_, chain);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored, 5u);
  EXPECT_EQ(client_->Put(ns_, chain)->already_present, 5u);  // Idempotent.

  std::vector<Key> keys = KeysOf(chain);
  keys.push_back(TestKey(50));
  absl::StatusOr<CacheLookup> lookup = client_->Lookup(ns_, keys);
  ASSERT_TRUE(lookup.ok()) << lookup.status();
  EXPECT_EQ(lookup->num_present, 5u);
  EXPECT_EQ(lookup->num_in_ram, 5u);

  absl::StatusOr<std::vector<CacheBlock>> got = client_->Get(ns_, keys);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*got)[i].payload, chain[i].payload);
    EXPECT_EQ((*got)[i].parent, chain[i].parent);
    EXPECT_EQ((*got)[i].shape, chain[i].shape);
  }
}

TEST_F(ServicesTest, GetStopsAtTheFirstMissingBlock) {
  std::vector<CacheBlock> chain = Chain(4);
  ASSERT_TRUE(client_->Put(ns_, chain).ok());
  ASSERT_TRUE(server_->store()->Erase(BlockId{ns_, chain[2].key}));
  EXPECT_EQ(client_->Get(ns_, KeysOf(chain))->size(), 2u);
  EXPECT_EQ(client_->Lookup(ns_, KeysOf(chain))->num_present, 2u);
}

TEST_F(ServicesTest, GetOfAMissingKeyIsOkAndEmpty) {
  int received = -1;
  grpc::Status s = RawGet(std::string(ns_.view()), {K(1)}, &received);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(received, 0);
}

TEST_F(ServicesTest, BadLookupsAreInvalidArgument) {
  const std::string ns(ns_.view());
  grpc::Status s = RawLookup(ns.substr(0, 31), {K(1)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("namespace_id"), std::string::npos) << s.error_message();

  s = RawLookup("", {K(1)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("empty"), std::string::npos) << s.error_message();

  s = RawLookup(ns, {K(1), K(2).substr(0, 31)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("keys[1]"), std::string::npos) << s.error_message();

  s = RawLookup(ns, {K(1) + "x"});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Over --max-keys-per-request (default 65536): a limit, RESOURCE_EXHAUSTED.
  s = RawLookup(ns, std::vector<std::string>(65537, K(1)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("65536"), std::string::npos) << s.error_message();
}

TEST_F(ServicesTest, BadGetsAreInvalidArgument) {
  const std::string ns(ns_.view());
  EXPECT_EQ(RawGet(ns, {}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawGet(ns, {"short"}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawGet("", {K(1)}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServicesTest, BadPutsAreRejectedAndStoreNothingBad) {
  // A good block first, then a bad one in the same stream: the good one stays.
  v1::Block bad = RawBlock(2);
  bad.set_checksum(bad.checksum() ^ 1);
  grpc::Status s = RawPut({PutOf(ns_, {RawBlock(1)}), PutOf(ns_, {bad})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("checksum"), std::string::npos) << s.error_message();
  EXPECT_TRUE(server_->store()->Contains(BlockId{ns_, TestKey(1)}));
  EXPECT_FALSE(server_->store()->Contains(BlockId{ns_, TestKey(2)}));

  v1::Block short_key = RawBlock(3);
  short_key.set_key("0123");
  s = RawPut({PutOf(ns_, {short_key})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("block.key"), std::string::npos) << s.error_message();

  v1::Block bad_parent = RawBlock(4);
  bad_parent.set_parent_key(std::string(33, 'p'));
  s = RawPut({PutOf(ns_, {bad_parent})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("parent_key"), std::string::npos) << s.error_message();

  v1::PutRequest no_ns = PutOf(ns_, {RawBlock(5)});
  no_ns.clear_namespace_id();
  s = RawPut({no_ns});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("namespace_id"), std::string::npos) << s.error_message();

  v1::Block empty = RawBlock(6);
  empty.clear_payload();
  empty.set_checksum(PayloadChecksum(""));
  s = RawPut({PutOf(ns_, {empty})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("empty payload"), std::string::npos) << s.error_message();

  // A payload whose size disagrees with its shape: 1000 bytes for a shape that needs 160.
  v1::Block misshapen = RawBlock(9);
  misshapen.mutable_shape()->set_format_version(1);
  misshapen.mutable_shape()->set_dtype(v1::DTYPE_F32);
  misshapen.mutable_shape()->set_num_layers(1);
  misshapen.mutable_shape()->set_num_kv_heads(1);
  misshapen.mutable_shape()->set_head_dim(1);
  misshapen.mutable_shape()->set_num_tokens(16);
  s = RawPut({PutOf(ns_, {misshapen})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("needs 160 bytes"), std::string::npos) << s.error_message();
  EXPECT_FALSE(server_->store()->Contains(BlockId{ns_, TestKey(9)}));

  // Over --max-block-bytes, but within the gRPC message limit.
  s = RawPut({PutOf(ns_, {RawBlock(7, kMaxBlockBytes + 1)})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("--max-block-bytes"), std::string::npos) << s.error_message();

  // Over the gRPC message limit too: refused before it reaches the service.
  s = RawPut({PutOf(ns_, {RawBlock(8, 6 * kMaxBlockBytes)})});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // Nothing stored was harmed.
  absl::StatusOr<std::vector<CacheBlock>> got = client_->Get(ns_, {TestKey(1)});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().payload, TestPayload(1000, 1));
  EXPECT_EQ(server_->store()->Stats().blocks, 1u);
}

TEST_F(ServicesTest, UnknownFieldsAreIgnored) {
  ASSERT_TRUE(client_->Put(ns_, Chain(2)).ok());
  v1::LookupRequest req;
  req.set_namespace_id(std::string(ns_.view()));
  req.add_keys(K(0));
  req.add_keys(K(1));
  // Field 99 is in no version of the contract: a newer client's field, say.
  req.GetReflection()->MutableUnknownFields(&req)->AddVarint(99, 42);
  req.GetReflection()->MutableUnknownFields(&req)->AddLengthDelimited(100, "future");
  v1::LookupResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub_->Lookup(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.num_present(), 2u);
}

TEST_F(ServicesTest, AdminErrors) {
  grpc::ClientContext c1;
  v1::InspectBlockRequest inspect;
  inspect.set_key(K(77));
  v1::InspectBlockResponse inspected;
  EXPECT_EQ(admin_stub_->InspectBlock(&c1, inspect, &inspected).error_code(),
            grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext c2;
  inspect.set_key("abc");
  EXPECT_EQ(admin_stub_->InspectBlock(&c2, inspect, &inspected).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c3;
  v1::EvictResponse evicted;
  EXPECT_EQ(admin_stub_->Evict(&c3, v1::EvictRequest(), &evicted).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c4;
  v1::FlushRequest flush;
  flush.set_tier(static_cast<v1::Tier>(7));
  v1::FlushResponse flushed;
  EXPECT_EQ(admin_stub_->Flush(&c4, flush, &flushed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c5;
  v1::ListBlocksRequest list;
  list.set_namespace_id("short");
  v1::ListBlocksResponse listed;
  EXPECT_EQ(admin_stub_->ListBlocks(&c5, list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServicesTest, AdminStatsInspectEvictFlush) {
  auto admin = *NewAdminClient({server_->address()});
  EXPECT_EQ(*admin->Health(), "SERVING");
  std::vector<CacheBlock> chain = Chain(3);
  ASSERT_TRUE(client_->Put(ns_, chain).ok());
  ASSERT_TRUE(client_->Put(TestKey(200, 3), Chain(2, 500, 1000)).ok());
  ASSERT_TRUE(client_->Get(ns_, KeysOf(chain)).ok());

  v1::GetStatsResponse stats = *admin->GetStats();
  EXPECT_EQ(stats.ram().blocks(), 5u);
  EXPECT_EQ(stats.ram().hits(), 3u);
  EXPECT_EQ(stats.ram().capacity_bytes(), 8u << 20);
  EXPECT_EQ(stats.disk().capacity_bytes(), 64u << 20);

  v1::InspectBlockRequest inspect;
  inspect.set_key(std::string(chain[1].key.view()));
  v1::InspectBlockResponse info = *admin->InspectBlock(inspect);
  ASSERT_EQ(info.blocks_size(), 1);
  EXPECT_EQ(info.blocks(0).tier(), v1::TIER_RAM);
  EXPECT_EQ(info.blocks(0).payload_bytes(), 10000u);
  EXPECT_EQ(info.blocks(0).parent_key(), std::string(chain[0].key.view()));
  EXPECT_EQ(info.blocks(0).shape().num_tokens(), chain[1].shape.num_tokens);
  EXPECT_EQ(info.blocks(0).checksum(), PayloadChecksum(chain[1].payload));

  v1::ListBlocksRequest list;
  list.set_namespace_id(std::string(ns_.view()));
  EXPECT_EQ(admin->ListBlocks(list)->blocks_size(), 3);
  list.set_limit(2);
  EXPECT_TRUE(admin->ListBlocks(list)->truncated());

  v1::EvictRequest evict;
  evict.set_key(std::string(chain[0].key.view()));
  EXPECT_EQ(admin->Evict(evict)->evicted(), 1u);
  EXPECT_EQ(client_->Lookup(ns_, KeysOf(chain))->num_present, 0u);
  evict.set_namespace_(std::string(ns_.view()));
  EXPECT_EQ(admin->Evict(evict)->evicted(), 2u);

  v1::FlushRequest flush;
  flush.set_tier(v1::TIER_RAM);
  EXPECT_EQ(admin->Flush(flush)->dropped(), 2u);
  EXPECT_EQ(admin->GetStats()->ram().blocks(), 0u);
  v1::GetConfigResponse config = *admin->GetConfig();
  EXPECT_EQ(config.max_block_bytes(), kMaxBlockBytes);
  EXPECT_EQ(config.listen(), server_->address());  // The port actually chosen, not 0.
  EXPECT_EQ(config.eviction(), "lru");
}

TEST_F(ServicesTest, ConcurrentClientsSeeConsistentBlocks) {
  std::vector<std::thread> threads;
  std::atomic<int> errors{0}, mismatches{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      auto client = NewClient();
      // Chains overlap across threads: the same keys are put and read concurrently.
      for (int round = 0; round < 10; ++round) {
        std::vector<CacheBlock> chain = Chain(4, 64 << 10, (t + round) % 5 * 10);
        if (!client->Put(ns_, chain).ok()) ++errors;
        absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns_, KeysOf(chain));
        if (!got.ok()) {
          ++errors;
          continue;
        }
        for (size_t i = 0; i < got->size(); ++i) {
          if ((*got)[i].payload != chain[i].payload) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  StoreStats s = server_->store()->GetStoreStats();
  EXPECT_LE(s.ram.bytes, s.ram.capacity_bytes);
}

TEST_F(ServicesTest, MetricsExposeTiersAndRpcLatency) {
  StartServer(/*metrics=*/true);
  ASSERT_TRUE(client_->Put(ns_, Chain(1)).ok());
  ASSERT_TRUE(client_->Put(ns_, {Chain(2)[1]}).ok());
  ASSERT_TRUE(client_->Get(ns_, {TestKey(0)}).ok());
  ASSERT_FALSE(server_->metrics_address().empty());
  const std::string body = testing::HttpGet(server_->metrics_address());
  EXPECT_NE(body.find("kvcache_tier_blocks{tier=\"ram\"} 2"), std::string::npos) << body;
  EXPECT_NE(body.find("kvcache_tier_hits_total{tier=\"ram\"} 1"), std::string::npos);
  EXPECT_NE(body.find("kvcache_tier_capacity_bytes{tier=\"disk\"}"), std::string::npos);
  EXPECT_NE(body.find("kvcache_rpc_latency_seconds_count{rpc=\"Put\",status=\"ok\"} 2"),
            std::string::npos);
}

TEST_F(ServicesTest, AfterShutdownCallsAreUnavailable) {
  ASSERT_TRUE(client_->Put(ns_, Chain(1)).ok());
  server_->Shutdown(absl::Seconds(1));
  absl::StatusOr<CacheLookup> r = client_->Lookup(ns_, {TestKey(0)});
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
}

TEST_F(ServicesTest, DeadlineExceededWhenTheServerIsUnreachable) {
  CacheClientOptions o;
  o.target = "127.0.0.1:1";  // Nothing listens on port 1.
  o.timeout = absl::Milliseconds(300);
  auto client = *NewCacheClient(o);
  absl::StatusOr<CacheLookup> r = client->Lookup(ns_, {TestKey(0)});
  EXPECT_TRUE(absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status()))
      << r.status();
}

// A connect that fails once or twice (a loaded node, a dropped SYN) is not a node that is
// down: the admin client retries it. The CI saw exactly this turn a node "unreachable".
TEST_F(ServicesTest, AdminCallsGetThroughConnectionsClosedAtAccept) {
  testing::TcpProxy proxy(server_->address());
  ASSERT_FALSE(proxy.address().empty());
  proxy.CloseNext(2);
  AdminClientOptions o;
  o.target = proxy.address();
  std::unique_ptr<AdminClient> admin = *NewAdminClient(o);
  absl::StatusOr<std::string> health = admin->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, "SERVING");
  proxy.CloseNext(1);  // The channel is connected: later calls do not reconnect.
  EXPECT_TRUE(admin->GetStats().ok());
}

// The same blocks through the data channel and through gRPC, each read back by the other.
TEST_F(ServicesTest, DataChannelAndGrpcCarryTheSameBlocks) {
  ASSERT_FALSE(server_->data_address().empty());
  auto grpc_only = NewClient(/*data_channel=*/false);
  std::vector<CacheBlock> a = Chain(3, 300 << 10, 0);
  std::vector<CacheBlock> b = Chain(3, 300 << 10, 100);
  ASSERT_EQ(client_->Put(ns_, a)->stored, 3u);
  ASSERT_EQ(grpc_only->Put(ns_, b)->stored, 3u);
  for (auto* reader : {client_.get(), grpc_only.get()}) {
    for (const std::vector<CacheBlock>* chain : {&a, &b}) {
      absl::StatusOr<std::vector<CacheBlock>> got = reader->Get(ns_, KeysOf(*chain));
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->size(), 3u);
      for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ((*got)[i].payload, (*chain)[i].payload);
        EXPECT_EQ((*got)[i].parent, (*chain)[i].parent);
        EXPECT_EQ((*got)[i].shape, (*chain)[i].shape);
      }
    }
  }
  // Over the data channel too, a Get stops at the first missing block, and bad input gets
  // the same codes as over gRPC.
  ASSERT_TRUE(server_->store()->Erase(BlockId{ns_, a[1].key}));
  EXPECT_EQ(client_->Get(ns_, KeysOf(a))->size(), 1u);
  CacheBlock big = Chain(1, kMaxBlockBytes + 1, 500)[0];
  absl::StatusOr<CachePutResult> put = client_->Put(ns_, {big});
  EXPECT_TRUE(absl::IsResourceExhausted(put.status())) << put.status();
  EXPECT_NE(put.status().message().find("--max-block-bytes"), std::string::npos);
  CacheBlock empty = Chain(1, 10, 600)[0];
  empty.payload.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Put(ns_, {empty}).status()));
  // The client reconnects after the server closed on the oversized block.
  EXPECT_EQ(client_->Get(ns_, KeysOf(b))->size(), 3u);
}

// The client's gRPC Put stream (generic stub, zero-copy messages): counts, a bad block in
// the middle of a stream, and an empty batch.
TEST_F(ServicesTest, GrpcPutStreamsCountsAndStopsAtABadBlock) {
  auto grpc_only = NewClient(/*data_channel=*/false);
  std::vector<CacheBlock> chain = Chain(4, 100 << 10, 700);
  absl::StatusOr<CachePutResult> first = grpc_only->Put(ns_, {chain[0], chain[1]});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->stored, 2u);
  absl::StatusOr<CachePutResult> again = grpc_only->Put(ns_, chain);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->already_present, 2u);
  EXPECT_EQ(again->stored, 2u);

  std::vector<CacheBlock> bad = Chain(3, 1000, 800);
  bad[1].payload = TestPayload(kMaxBlockBytes + 1, 801);
  absl::StatusOr<CachePutResult> put = grpc_only->Put(ns_, bad);
  EXPECT_TRUE(absl::IsResourceExhausted(put.status())) << put.status();
  EXPECT_NE(put.status().message().find("Put to " + server_->address() + ": "),
            std::string::npos)
      << put.status();
  EXPECT_NE(put.status().message().find("--max-block-bytes"), std::string::npos);
  EXPECT_EQ(client_->Lookup(ns_, KeysOf(bad))->num_present, 1u);  // The block before it.

  absl::StatusOr<CachePutResult> none = grpc_only->Put(ns_, {});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->stored + none->already_present + none->not_admitted, 0u);
}

TEST_F(ServicesTest, ClientsFallBackToGrpcWithoutADataChannel) {
  StartServer(/*metrics=*/false, /*data_channel=*/false);
  client_ = NewClient();
  EXPECT_TRUE(server_->data_address().empty());
  std::vector<CacheBlock> chain = Chain(2);
  ASSERT_EQ(client_->Put(ns_, chain)->stored, 2u);
  EXPECT_EQ(client_->Get(ns_, KeysOf(chain))->size(), 2u);
  grpc::ClientContext ctx;
  v1::OpenDataChannelResponse resp;
  EXPECT_EQ(stub_->OpenDataChannel(&ctx, {}, &resp).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// Raw bytes on the data channel: what a broken or hostile client may send.
class DataChannelWireTest : public ServicesTest {
 protected:
  int Connect(bool hello = true) {
    grpc::ClientContext ctx;
    v1::OpenDataChannelResponse resp;
    EXPECT_TRUE(stub_->OpenDataChannel(&ctx, {}, &resp).ok());
    token_ = resp.token();
    absl::StatusOr<int> fd = ConnectTcp(resp.address(), absl::Seconds(5));
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (hello) {
      std::string h = std::string(data_channel::kMagic, 4) + std::string(4, '\0') + token_;
      data_channel::PutU32(h.data() + 4, data_channel::kVersion);
      EXPECT_TRUE(WriteFull(*fd, h.data(), h.size()).ok());
      char accepted = 1;
      EXPECT_TRUE(ReadFull(*fd, &accepted, 1).ok());
      EXPECT_EQ(accepted, 0);
    }
    return *fd;
  }
  // Reads an error reply: its code.
  static absl::StatusCode ReadErrorCode(int fd) {
    char head[6];
    if (!ReadFull(fd, head, sizeof(head)).ok() || head[0] != data_channel::kError) {
      return absl::StatusCode::kUnknown;
    }
    std::string message(data_channel::GetU32(head + 2), '\0');
    (void)ReadFull(fd, message.data(), message.size());
    return static_cast<absl::StatusCode>(head[1]);
  }
  static bool Closed(int fd) {
    char c;
    return !ReadFull(fd, &c, 1).ok();
  }
  std::string PutFrame(const v1::Block& b, uint64_t checksum) {
    std::string frame(1 + 32 + data_channel::kBlockHeaderBytes, '\0');
    frame[0] = data_channel::kPut;
    std::memcpy(frame.data() + 1, ns_.bytes.data(), 32);
    data_channel::BlockHeader h;
    h.key = *KeyFromBytes(b.key(), "key");
    h.checksum = checksum;
    h.payload_bytes = b.payload().size();
    data_channel::EncodeBlockHeader(h, frame.data() + 33);
    return frame + b.payload();
  }
  std::string token_;
};

TEST_F(DataChannelWireTest, BadHelloIsClosedWithoutAnswer) {
  int fd = Connect(/*hello=*/false);
  std::string h = std::string(data_channel::kMagic, 4) + std::string(4, '\0') +
                  std::string(32, 'x');  // Wrong token.
  data_channel::PutU32(h.data() + 4, data_channel::kVersion);
  ASSERT_TRUE(WriteFull(fd, h.data(), h.size()).ok());
  EXPECT_TRUE(Closed(fd));
  close(fd);
}

TEST_F(DataChannelWireTest, ChecksumMismatchIsInvalidArgumentAndTheConnectionGoesOn) {
  int fd = Connect();
  v1::Block b = RawBlock(1);
  const std::string bad = PutFrame(b, b.checksum() ^ 1);
  ASSERT_TRUE(WriteFull(fd, bad.data(), bad.size()).ok());
  EXPECT_EQ(ReadErrorCode(fd), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(server_->store()->Contains(BlockId{ns_, TestKey(1)}));
  const std::string good = PutFrame(b, b.checksum());
  ASSERT_TRUE(WriteFull(fd, good.data(), good.size()).ok());
  char reply[2];
  ASSERT_TRUE(ReadFull(fd, reply, 2).ok());
  EXPECT_EQ(reply[0], data_channel::kStored);
  EXPECT_TRUE(server_->store()->Contains(BlockId{ns_, TestKey(1)}));
  close(fd);
}

TEST_F(DataChannelWireTest, UnknownOpsAndBadCountsAreRejectedAndClosed) {
  int fd = Connect();
  std::string frame(1 + 32, '\0');
  frame[0] = 9;
  ASSERT_TRUE(WriteFull(fd, frame.data(), frame.size()).ok());
  EXPECT_EQ(ReadErrorCode(fd), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Closed(fd));
  close(fd);

  fd = Connect();
  std::string get(1 + 32 + 4, '\0');
  get[0] = data_channel::kGet;
  ASSERT_TRUE(WriteFull(fd, get.data(), get.size()).ok());  // Zero keys.
  EXPECT_EQ(ReadErrorCode(fd), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Closed(fd));
  close(fd);
}

TEST_F(DataChannelWireTest, ShutdownEndsOpenConnections) {
  int idle = Connect();
  int half = Connect();
  const std::string partial(10, char{data_channel::kPut});  // A request cut short.
  ASSERT_TRUE(WriteFull(half, partial.data(), partial.size()).ok());
  server_->Shutdown(absl::Seconds(1));  // Returns: it does not wait for these clients.
  EXPECT_TRUE(Closed(idle));
  EXPECT_TRUE(Closed(half));
  close(idle);
  close(half);
}

}  // namespace
}  // namespace kvcache
