// The gRPC surface's limits (services/call_limits.h, docs/operations.md "Limits"), each hit
// over a real server on 127.0.0.1:0 and answered with its documented status and a message
// that names the flag: keys per request, blocks per Put stream, message size, bytes in
// flight (a Get stream pinning a block its reader does not take), call duration (a slow
// stream and a stalled one), streams per connection, idle connections.

#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/checksum.h"
#include "gtest/gtest.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "services/cache_server.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;
using testing::TestPayload;

class LimitsTest : public ::testing::Test {
 protected:
  void Start(const CallLimits& limits, uint64_t max_block_bytes = 1 << 20) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.limits = limits;
    o.store.ram.capacity_bytes = 64 << 20;
    o.store.max_block_bytes = max_block_bytes;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = NewChannel();
    stub_ = v1::CacheService::NewStub(channel_);
  }

  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetInt("kvcache.test.unique", ++channels_);  // A connection of its own.
    return grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(),
                                     args);
  }

  v1::Block RawBlock(uint64_t n, size_t size) {
    v1::Block b;
    b.set_key(std::string(TestKey(n).view()));
    b.set_payload(TestPayload(size, n));
    b.set_checksum(PayloadChecksum(b.payload()));
    return b;
  }

  v1::PutRequest PutOf(std::vector<v1::Block> blocks) {
    v1::PutRequest r;
    r.set_namespace_id(ns_);
    for (v1::Block& b : blocks) *r.add_blocks() = std::move(b);
    return r;
  }

  grpc::Status Put(v1::CacheService::Stub* stub, const std::vector<v1::PutRequest>& requests,
                   v1::PutResponse* response) {
    grpc::ClientContext ctx;
    auto writer = stub->Put(&ctx, response);
    for (const v1::PutRequest& r : requests) {
      if (!writer->Write(r)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::LookupRequest LookupOf(int keys) {
    v1::LookupRequest r;
    r.set_namespace_id(ns_);
    for (int i = 0; i < keys; ++i) r.add_keys(std::string(TestKey(i).view()));
    return r;
  }

  static void ExpectStatus(const grpc::Status& s, grpc::StatusCode code,
                           const std::string& needle) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), needle)) << s.error_message();
  }

  std::unique_ptr<CacheServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CacheService::Stub> stub_;
  const std::string ns_ = std::string(TestKey(7, 9).view());
  int channels_ = 0;
};

TEST_F(LimitsTest, KeysPerRequestIsResourceExhaustedForLookupAndGet) {
  CallLimits limits;
  limits.max_keys_per_request = 10;
  Start(limits);
  v1::LookupResponse response;
  {
    grpc::ClientContext ctx;
    EXPECT_TRUE(stub_->Lookup(&ctx, LookupOf(10), &response).ok());
  }
  {
    grpc::ClientContext ctx;
    ExpectStatus(stub_->Lookup(&ctx, LookupOf(11), &response),
                 grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-keys-per-request");
  }
  v1::GetRequest get;
  get.set_namespace_id(ns_);
  for (int i = 0; i < 11; ++i) get.add_keys(std::string(TestKey(i).view()));
  grpc::ClientContext ctx;
  auto reader = stub_->Get(&ctx, get);
  v1::GetResponse r;
  while (reader->Read(&r)) {
  }
  ExpectStatus(reader->Finish(), grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-keys-per-request");
}

TEST_F(LimitsTest, BlocksPerPutStreamKeepsTheBlocksBefore) {
  CallLimits limits;
  limits.max_blocks_per_put = 3;
  Start(limits);
  v1::PutResponse response;
  ExpectStatus(Put(stub_.get(),
                   {PutOf({RawBlock(0, 100), RawBlock(1, 100)}),
                    PutOf({RawBlock(2, 100), RawBlock(3, 100)})},
                   &response),
               grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-blocks-per-put");
  grpc::ClientContext ctx;
  v1::LookupResponse lookup;
  ASSERT_TRUE(stub_->Lookup(&ctx, LookupOf(4), &lookup).ok());
  EXPECT_EQ(lookup.num_present(), 2u);  // The first message's blocks are kept.
}

TEST_F(LimitsTest, MessageSizeIsResourceExhausted) {
  CallLimits limits;
  limits.max_message_bytes = 64 << 10;
  Start(limits);
  v1::PutResponse response;
  EXPECT_TRUE(Put(stub_.get(), {PutOf({RawBlock(0, 60 << 10)})}, &response).ok());
  grpc::Status s = Put(stub_.get(), {PutOf({RawBlock(1, 100 << 10)})}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
}

TEST_F(LimitsTest, InflightBytesCountBlocksPinnedByAGetStream) {
  CallLimits limits;
  limits.max_inflight_bytes = 12 << 20;
  Start(limits, /*max_block_bytes=*/8 << 20);
  v1::PutResponse response;
  ASSERT_TRUE(Put(stub_.get(), {PutOf({RawBlock(0, 8 << 20)})}, &response).ok());
  ASSERT_TRUE(Put(stub_.get(), {PutOf({RawBlock(1, 8 << 20)})}, &response).ok());

  // A reader that asks for a block and does not read it: the server's write cannot finish,
  // so the block stays pinned and counted.
  v1::GetRequest get;
  get.set_namespace_id(ns_);
  get.add_keys(std::string(TestKey(0).view()));
  std::shared_ptr<grpc::Channel> slow_channel = NewChannel();
  auto slow_stub = v1::CacheService::NewStub(slow_channel);
  grpc::ClientContext slow_ctx;
  auto slow_reader = slow_stub->Get(&slow_ctx, get);
  absl::SleepFor(absl::Milliseconds(500));

  get.set_keys(0, std::string(TestKey(1).view()));
  grpc::Status refused;
  for (int attempt = 0; attempt < 20; ++attempt) {  // Until the slow Get has its block.
    grpc::ClientContext ctx;
    auto reader = stub_->Get(&ctx, get);
    v1::GetResponse r;
    while (reader->Read(&r)) {
    }
    refused = reader->Finish();
    if (!refused.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ExpectStatus(refused, grpc::StatusCode::RESOURCE_EXHAUSTED, "--max-inflight-bytes");

  // Once the slow reader goes, its block is released and the Get is served.
  slow_ctx.TryCancel();
  slow_reader->Finish().IgnoreError();
  grpc::Status served;
  for (int attempt = 0; attempt < 50; ++attempt) {
    grpc::ClientContext ctx;
    auto reader = stub_->Get(&ctx, get);
    v1::GetResponse r;
    int n = 0;
    while (reader->Read(&r)) ++n;
    served = reader->Finish();
    if (served.ok() && n == 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(served.ok()) << served.error_message();
}

TEST_F(LimitsTest, ASlowPutStreamIsDeadlineExceededAndAStalledOneCancelled) {
  CallLimits limits;
  limits.max_call_duration = absl::Seconds(1);
  Start(limits);
  {
    v1::PutResponse response;
    grpc::ClientContext ctx;
    auto writer = stub_->Put(&ctx, &response);
    ASSERT_TRUE(writer->Write(PutOf({RawBlock(0, 100)})));
    absl::SleepFor(absl::Milliseconds(1500));
    writer->Write(PutOf({RawBlock(1, 100)}));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    // The watchdog may cancel the idle stream before the second message arrives.
    if (s.error_code() != grpc::StatusCode::CANCELLED) {
      ExpectStatus(s, grpc::StatusCode::DEADLINE_EXCEEDED, "--max-call-duration");
    }
  }
  {
    // A stream that sends nothing: cancelled by the server within about a second.
    v1::PutResponse response;
    grpc::ClientContext ctx;
    const absl::Time start = absl::Now();
    auto writer = stub_->Put(&ctx, &response);
    grpc::Status s = writer->Finish();  // Waits for the server's verdict.
    EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  }
  // A quick call is untouched.
  v1::PutResponse response;
  EXPECT_TRUE(Put(stub_.get(), {PutOf({RawBlock(2, 100)})}, &response).ok());
}

TEST_F(LimitsTest, StreamsPerConnectionWaitAtTheClient) {
  CallLimits limits;
  limits.max_concurrent_streams = 2;
  Start(limits);
  // Two open Put streams take both slots of this connection.
  v1::PutResponse r1, r2;
  grpc::ClientContext c1, c2;
  auto w1 = stub_->Put(&c1, &r1);
  auto w2 = stub_->Put(&c2, &r2);
  ASSERT_TRUE(w1->Write(PutOf({RawBlock(0, 100)})));
  ASSERT_TRUE(w2->Write(PutOf({RawBlock(1, 100)})));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    v1::LookupResponse lookup;
    grpc::Status s = stub_->Lookup(&ctx, LookupOf(1), &lookup);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  }
  {  // Another connection is served.
    auto other = v1::CacheService::NewStub(NewChannel());
    grpc::ClientContext ctx;
    v1::LookupResponse lookup;
    EXPECT_TRUE(other->Lookup(&ctx, LookupOf(1), &lookup).ok());
  }
  w1->WritesDone();
  w2->WritesDone();
  EXPECT_TRUE(w1->Finish().ok());
  EXPECT_TRUE(w2->Finish().ok());
  grpc::ClientContext ctx;  // The slots are free again.
  v1::LookupResponse lookup;
  EXPECT_TRUE(stub_->Lookup(&ctx, LookupOf(1), &lookup).ok());
}

TEST_F(LimitsTest, AnIdleConnectionIsClosedAndTheClientReconnects) {
  CallLimits limits;
  limits.max_connection_idle = absl::Milliseconds(300);
  Start(limits);
  v1::LookupResponse lookup;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Lookup(&ctx, LookupOf(1), &lookup).ok());
  }
  EXPECT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (channel_->GetState(false) == GRPC_CHANNEL_READY && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(channel_->GetState(false), GRPC_CHANNEL_READY);  // The server sent GOAWAY.
  grpc::ClientContext ctx;
  EXPECT_TRUE(stub_->Lookup(&ctx, LookupOf(1), &lookup).ok());
}

// A full disk (free space under --disk-min-free-bytes: here more than any disk has) leaves
// the server serving from RAM and says so in its stats, without failing any call.
TEST(DiskTroubleTest, AFullDiskIsReportedWhileRamKeepsServing) {
  testing::TempDir dir;
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.store.ram.capacity_bytes = 1 << 20;
  o.store.max_block_bytes = 256 << 10;
  o.store.disk = DiskTierOptions{};
  o.store.disk->path = dir.Sub("db");
  o.store.disk->capacity_bytes = 64 << 20;
  o.store.disk->min_free_bytes = ~0ull;
  absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::CacheService::NewStub(channel);
  auto admin = v1::AdminService::NewStub(channel);
  const std::string ns(TestKey(7, 9).view());
  // 40 blocks of 100 KiB through a 1 MiB RAM tier: most are victims the disk cannot take.
  for (uint64_t i = 0; i < 40; ++i) {
    v1::PutRequest r;
    r.set_namespace_id(ns);
    v1::Block* b = r.add_blocks();
    b->set_key(std::string(TestKey(i).view()));
    b->set_payload(TestPayload(100 << 10, i));
    b->set_checksum(PayloadChecksum(b->payload()));
    v1::PutResponse response;
    grpc::ClientContext ctx;
    auto writer = stub->Put(&ctx, &response);
    ASSERT_TRUE(writer->Write(r));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }
  v1::GetRequest get;  // The newest block is in RAM and served.
  get.set_namespace_id(ns);
  get.add_keys(std::string(TestKey(39).view()));
  grpc::ClientContext get_ctx;
  auto reader = stub->Get(&get_ctx, get);
  v1::GetResponse block;
  int served = 0;
  while (reader->Read(&block)) ++served;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(served, 1);

  grpc::ClientContext ctx;
  v1::GetStatsResponse stats;
  ASSERT_TRUE(admin->GetStats(&ctx, v1::GetStatsRequest(), &stats).ok());
  EXPECT_TRUE(stats.disk().degraded());
  EXPECT_TRUE(absl::StrContains(stats.disk().fault(), "disk full")) << stats.disk().fault();
  EXPECT_GT(stats.ram().demotion_failures(), 0u);
  EXPECT_EQ(stats.disk().blocks(), 0u);
}

}  // namespace
}  // namespace kvcache
