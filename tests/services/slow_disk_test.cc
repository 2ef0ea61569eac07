// A stuck disk does not take the server's health checks down with it: the store work that
// may wait on the disk runs on the server's I/O threads (--io-threads, common/io_executor.h),
// never on gRPC's callback threads. A real server with a disk tier whose reads are held (the
// disk tier's test hook, cachestore/disk_tier_internal.h) takes many Gets of disk-resident
// blocks; while they are stuck, health checks (grpc.health.v1, on both listeners), Lookup
// and admin stats answer within a bound, only --io-threads reads are waiting on the disk, and
// /metrics shows it (kvcache_io_tasks). Once the disk answers, every Get gets its block with
// the bytes that were put.

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cachestore/disk_tier_internal.h"
#include "common/checksum.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "services/cache_server.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TestKey;
using testing::TestPayload;

// The stuck disk: every read waits in HoldRead until Release.
absl::Mutex g_mu;
int g_reads_waiting ABSL_GUARDED_BY(g_mu) = 0;
bool g_released ABSL_GUARDED_BY(g_mu) = false;

void HoldRead() {
  absl::MutexLock lock(&g_mu);
  ++g_reads_waiting;
  g_mu.Await(absl::Condition(&g_released));
  --g_reads_waiting;
}

int ReadsWaiting() {
  absl::MutexLock lock(&g_mu);
  return g_reads_waiting;
}

// GET /metrics over a plain socket.
std::string HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// The value of the sample line `name_and_labels value` in a Prometheus text body, or -1.
double Sample(const std::string& body, const std::string& name_and_labels) {
  const std::string prefix = "\n" + name_and_labels + " ";
  const size_t at = body.find(prefix);
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + prefix.size()));
}

// Blocks of this size through a 1 MiB RAM tier: all but the newest few live on disk only.
constexpr size_t kBlockBytes = 100 << 10;
constexpr uint64_t kBlocks = 40;
constexpr int kIoThreads = 2;
constexpr int kStuckGets = 64;  // More than gRPC has callback threads.
// Generous: CI machines are noisy. An answer that waited on the disk would never come.
constexpr absl::Duration kAnswerBound = absl::Seconds(2);

class SlowDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.admin_listen = "127.0.0.1:0";
    o.metrics_listen = "127.0.0.1:0";
    o.io_threads = kIoThreads;
    o.store.ram.capacity_bytes = 1 << 20;
    o.store.max_block_bytes = 256 << 10;
    o.store.demotion_queue_bytes = 0;  // Victims are on disk when their Put returns.
    o.store.disk = DiskTierOptions{};
    o.store.disk->path = dir_.Sub("db");
    o.store.disk->capacity_bytes = 64 << 20;
    o.store.disk->min_free_bytes = 0;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::CacheService::NewStub(channel_);
  }

  void TearDown() override {
    Release();
    internal::SetDiskReadHookForTesting(nullptr);
  }

  static void Release() {
    absl::MutexLock lock(&g_mu);
    g_released = true;
  }

  void PutBlock(uint64_t n) {
    v1::PutRequest r;
    r.set_namespace_id(ns_);
    v1::Block* b = r.add_blocks();
    b->set_key(std::string(TestKey(n).view()));
    b->set_payload(TestPayload(kBlockBytes, n));
    b->set_checksum(PayloadChecksum(b->payload()));
    v1::PutResponse response;
    grpc::ClientContext ctx;
    auto writer = stub_->Put(&ctx, &response);
    ASSERT_TRUE(writer->Write(r));
    writer->WritesDone();
    ASSERT_TRUE(writer->Finish().ok());
  }

  // Whether `channel`'s health service answers SERVING within kAnswerBound.
  static ::testing::AssertionResult Healthy(const std::shared_ptr<grpc::Channel>& channel) {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kAnswerBound));
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status s = health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &response);
    if (!s.ok()) {
      return ::testing::AssertionFailure() << "health Check: " << s.error_code() << " "
                                           << s.error_message();
    }
    if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      return ::testing::AssertionFailure() << "health Check: " << response.status();
    }
    return ::testing::AssertionSuccess();
  }

  testing::TempDir dir_;
  std::unique_ptr<CacheServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CacheService::Stub> stub_;
  const std::string ns_ = std::string(TestKey(7, 9).view());
};

TEST_F(SlowDiskTest, HealthLookupAndStatsAnswerWhileGetsAreStuckOnTheDisk) {
  for (uint64_t i = 0; i < kBlocks; ++i) PutBlock(i);
  auto admin = v1::AdminService::NewStub(channel_);
  {
    grpc::ClientContext ctx;
    v1::GetStatsResponse stats;
    ASSERT_TRUE(admin->GetStats(&ctx, v1::GetStatsRequest(), &stats).ok());
    ASSERT_GE(stats.disk().blocks(), kBlocks / 2) << "the blocks read must be on disk";
  }
  {
    absl::MutexLock lock(&g_mu);
    g_released = false;
    g_reads_waiting = 0;
  }
  internal::SetDiskReadHookForTesting(&HoldRead);

  // Gets of the oldest blocks (on disk only), a block each, from several connections.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 4; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("kvcache.test.unique", c);
    channels.push_back(grpc::CreateCustomChannel(server_->address(),
                                                 grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::string> got(kStuckGets);
  std::vector<grpc::Status> statuses(kStuckGets);
  std::vector<std::thread> getters;
  for (int g = 0; g < kStuckGets; ++g) {
    getters.emplace_back([&, g] {
      auto stub = v1::CacheService::NewStub(channels[g % channels.size()]);
      v1::GetRequest request;
      request.set_namespace_id(ns_);
      request.add_keys(std::string(TestKey(g % (kBlocks / 2)).view()));
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
      auto reader = stub->Get(&ctx, request);
      v1::GetResponse response;
      if (reader->Read(&response)) got[g] = response.block().payload();
      statuses[g] = reader->Finish();
    });
  }
  // The I/O threads are all stuck on the disk; give the other Gets time to reach the server.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (ReadsWaiting() < kIoThreads && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(ReadsWaiting(), kIoThreads);
  absl::SleepFor(absl::Milliseconds(500));

  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(Healthy(channel_)) << "round " << round;
    EXPECT_TRUE(Healthy(grpc::CreateChannel(server_->admin_address(),
                                            grpc::InsecureChannelCredentials())))
        << "admin listener, round " << round;
    grpc::ClientContext lookup_ctx;
    lookup_ctx.set_deadline(absl::ToChronoTime(absl::Now() + kAnswerBound));
    v1::LookupRequest lookup;
    lookup.set_namespace_id(ns_);
    for (uint64_t i = 0; i < kBlocks; ++i) lookup.add_keys(std::string(TestKey(i).view()));
    v1::LookupResponse found;
    const grpc::Status looked = stub_->Lookup(&lookup_ctx, lookup, &found);
    EXPECT_TRUE(looked.ok()) << looked.error_message();
    EXPECT_EQ(found.num_present(), kBlocks);
    grpc::ClientContext stats_ctx;
    stats_ctx.set_deadline(absl::ToChronoTime(absl::Now() + kAnswerBound));
    v1::GetStatsResponse stats;
    const grpc::Status stated = admin->GetStats(&stats_ctx, v1::GetStatsRequest(), &stats);
    EXPECT_TRUE(stated.ok()) << stated.error_message();
  }
  // The pool is bounded: no more reads wait on the disk than there are I/O threads. The
  // metrics say so, and that the other Gets wait for a thread.
  EXPECT_EQ(ReadsWaiting(), kIoThreads);
  const std::string metrics = HttpGet(server_->metrics_address(), "/metrics");
  EXPECT_EQ(Sample(metrics, "kvcache_io_threads"), kIoThreads) << metrics;
  EXPECT_EQ(Sample(metrics, "kvcache_io_tasks{state=\"running\"}"), kIoThreads) << metrics;
  EXPECT_GT(Sample(metrics, "kvcache_io_tasks{state=\"queued\"}"), 0) << metrics;

  Release();
  for (std::thread& t : getters) t.join();
  for (int g = 0; g < kStuckGets; ++g) {
    ASSERT_TRUE(statuses[g].ok()) << g << ": " << statuses[g].error_message();
    EXPECT_EQ(got[g], TestPayload(kBlockBytes, g % (kBlocks / 2))) << g;
  }
}

}  // namespace
}  // namespace kvcache
