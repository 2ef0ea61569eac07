// The worker's inference engine over a 3-node cluster of real servers (127.0.0.1:0): a warm
// request reuses blocks spread over every node, and with a node shut down or frozen every
// request still succeeds with output identical to a run without any cache (the lost blocks
// are recomputed), in about one deadline at most.

#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cluster_client.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"
#include "services/cache_server.h"
#include "tests/test_util.h"
#include "tests/worker/worker_test_util.h"
#include "worker/engine.h"
#include "worker/tokenizer.h"

namespace kvcache {
namespace {

using testing::RelativeError;
using testing::TempDir;

constexpr absl::Duration kTimeout = absl::Seconds(1);
// Generous for a loaded 2-core test machine; the default is 250 ms.
constexpr absl::Duration kLookupTimeout = absl::Milliseconds(400);

class ClusterWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteTinyModel(dir_.path(), 21);
    for (int i = 0; i < 3; ++i) {
      ServerOptions o;
      o.listen = "127.0.0.1:0";
      o.data_listen = "127.0.0.1:0";
      o.store.ram.capacity_bytes = 32 << 20;
      absl::StatusOr<std::unique_ptr<CacheServer>> s = StartCacheServer(o);
      ASSERT_TRUE(s.ok()) << s.status();
      servers_.push_back(*std::move(s));
    }
  }

  std::unique_ptr<ClusterCacheClient> Cluster(const std::vector<std::string>& addresses) {
    CacheClientOptions o;
    o.target = absl::StrJoin(addresses, ",");
    o.timeout = kTimeout;
    o.lookup_timeout = kLookupTimeout;
    o.health_check_interval = absl::Milliseconds(100);
    return *NewClusterCacheClient(o);
  }

  std::unique_ptr<InferenceEngine> Engine(CacheClient* cache) {
    EngineOptions options;
    options.cache = cache;
    return *InferenceEngine::Create(testing::LoadOrDie(dir_.path()), options);
  }

  GenerateResult Run(InferenceEngine* engine) {
    GenerateRequest r;
    r.prompt = TokenizeBytes(prompt_);
    r.max_new_tokens = 8;
    r.return_logits = true;
    absl::StatusOr<GenerateResult> result = engine->Generate(r);
    EXPECT_TRUE(result.ok()) << result.status();
    engine->WaitForPublishes();
    return result.ok() ? *std::move(result) : GenerateResult{};
  }

  static void ExpectSameOutput(const GenerateResult& got, const GenerateResult& want) {
    EXPECT_EQ(got.tokens, want.tokens);
    ASSERT_EQ(got.logits.size(), want.logits.size());
    EXPECT_LT(RelativeError(got.logits, want.logits), 1e-4);
  }

  TempDir dir_;
  std::vector<std::unique_ptr<CacheServer>> servers_;
  // 160 bytes: 10 full blocks of 16.
  const std::string prompt_ =
      "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs!! "
      "Sphinx of black quartz, judge my vow. How vexingly quick daft zebras jump!!!";
};

TEST_F(ClusterWorkerTest, WarmRequestsReuseBlocksFromEveryNode) {
  const GenerateResult baseline = Run(Engine(nullptr).get());
  auto cache = Cluster({servers_[0]->address(), servers_[1]->address(),
                        servers_[2]->address()});
  const GenerateResult cold = Run(Engine(cache.get()).get());
  ExpectSameOutput(cold, baseline);
  ASSERT_GT(cold.published_blocks, 5u);
  size_t total = 0;
  for (const auto& s : servers_) total += s->store()->Stats().blocks;
  EXPECT_EQ(total, cold.published_blocks);
  const GenerateResult warm = Run(Engine(cache.get()).get());
  EXPECT_EQ(warm.cached_tokens, cold.published_blocks * 16);
  ExpectSameOutput(warm, baseline);
}

TEST_F(ClusterWorkerTest, NodeDownOrFrozenCostsARecomputeNotAFailure) {
  const GenerateResult baseline = Run(Engine(nullptr).get());
  // A frozen third node: accepts connections, never answers.
  absl::StatusOr<std::pair<int, std::string>> frozen = ListenTcp("127.0.0.1:0");
  ASSERT_TRUE(frozen.ok());
  auto cache = Cluster({servers_[0]->address(), servers_[1]->address(), frozen->second});
  auto engine = Engine(cache.get());
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    const GenerateResult r = Run(engine.get());
    ExpectSameOutput(r, baseline);
    std::printf("[ figure ] request %d with a frozen node: %zu cached tokens, TTFT %.1f ms, "
                "total %s\n",
                i, r.cached_tokens, r.ttft_ms, absl::FormatDuration(absl::Now() - start).c_str());
    // About one Lookup deadline at most (the first request finds the node out), with room
    // for a busy machine; never a failure.
    EXPECT_LE(r.ttft_ms, absl::ToDoubleMilliseconds(kLookupTimeout) + 1000);
  }
  // And a node shut down: still identical output.
  servers_[1]->Shutdown(absl::ZeroDuration());
  servers_[1].reset();
  const GenerateResult r = Run(engine.get());
  ExpectSameOutput(r, baseline);
  shutdown(frozen->first, SHUT_RDWR);
  close(frozen->first);
}

}  // namespace
}  // namespace kvcache
