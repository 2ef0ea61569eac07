// The engine with and without a cache: identical greedy output cold, warm, partially warm,
// with a corrupt block, with the cache down, and under concurrent requests. The cache is an
// in-process fake of CacheClient; tests/worker/worker_e2e_test.cc covers the real server.

#include "worker/engine.h"

#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "nlohmann/json.hpp"
#include "tests/worker/worker_test_util.h"
#include "worker/decoder.h"
#include "worker/generate.h"
#include "worker/kv_block.h"
#include "worker/tokenizer.h"

namespace kvcache {
namespace {

using testing::RelativeError;
using testing::TempDir;
using testing::WriteTinyModel;

// A CacheClient over a map, with faults to inject.
class FakeCache final : public CacheClient {
 public:
  absl::StatusOr<CacheLookup> Lookup(const Key& ns, absl::Span<const Key> keys) override {
    absl::MutexLock lock(&mu_);
    ++lookups_;
    if (!fail_.ok()) return fail_;
    CacheLookup r;
    while (r.num_present < keys.size() && blocks_.count(std::make_pair(ns, keys[r.num_present]))) {
      ++r.num_present;
    }
    r.num_in_ram = r.num_present;
    return r;
  }
  absl::StatusOr<std::vector<CacheBlock>> Get(const Key& ns, absl::Span<const Key> keys) override {
    absl::MutexLock lock(&mu_);
    if (!fail_.ok()) return fail_;
    std::vector<CacheBlock> out;
    for (const Key& k : keys) {
      auto it = blocks_.find({ns, k});
      if (it == blocks_.end()) break;
      out.push_back(it->second);
      if (out.size() - 1 == corrupt_index_) out.back().payload[12] ^= 1;  // num_layers
    }
    return out;
  }
  absl::StatusOr<CachePutResult> Put(const Key& ns, absl::Span<const CacheBlock> blocks) override {
    absl::MutexLock lock(&mu_);
    ++puts_;
    if (!fail_.ok()) return fail_;
    CachePutResult r;
    for (const CacheBlock& b : blocks) {
      if (blocks_.emplace(std::make_pair(ns, b.key), b).second) {
        ++r.stored;
      } else {
        ++r.already_present;
      }
      if (b.parent.has_value()) parents_[b.key] = *b.parent;
    }
    return r;
  }

  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(s);
  }
  void CorruptOnGet(size_t index) {
    absl::MutexLock lock(&mu_);
    corrupt_index_ = index;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return blocks_.size();
  }
  int puts() {
    absl::MutexLock lock(&mu_);
    return puts_;
  }
  std::map<Key, Key> parents() {
    absl::MutexLock lock(&mu_);
    return parents_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::pair<Key, Key>, CacheBlock> blocks_ ABSL_GUARDED_BY(mu_);
  std::map<Key, Key> parents_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  size_t corrupt_index_ ABSL_GUARDED_BY(mu_) = SIZE_MAX;
  int lookups_ ABSL_GUARDED_BY(mu_) = 0;
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteTinyModel(dir_.path(), 21); }

  std::unique_ptr<InferenceEngine> NewEngine(CacheClient* cache, std::string salt = "") {
    std::unique_ptr<Model> model = testing::LoadOrDie(dir_.path());
    EngineOptions options;
    options.cache = cache;
    options.cache_salt = std::move(salt);
    auto engine = InferenceEngine::Create(std::move(model), options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return *std::move(engine);
  }

  static GenerateRequest Request(const std::string& text, uint32_t n = 12) {
    GenerateRequest r;
    r.prompt = TokenizeBytes(text);
    r.max_new_tokens = n;
    r.return_logits = true;
    return r;
  }

  GenerateResult Run(InferenceEngine* engine, const GenerateRequest& r) {
    absl::StatusOr<GenerateResult> result = engine->Generate(r);
    EXPECT_TRUE(result.ok()) << result.status();
    engine->WaitForPublishes();
    return result.ok() ? *std::move(result) : GenerateResult{};
  }

  // Same tokens, and logits within float tolerance.
  static void ExpectSameOutput(const GenerateResult& got, const GenerateResult& want) {
    EXPECT_EQ(got.tokens, want.tokens);
    ASSERT_EQ(got.logits.size(), want.logits.size());
    EXPECT_LT(RelativeError(got.logits, want.logits), 1e-4);
  }

  TempDir dir_;
  // 100 bytes: 6 full blocks of 16 and 4 tokens over.
  const std::string prompt_ =
      "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs!!"
      " 0123456789abc";
};

TEST_F(EngineTest, GeneratesWithoutCache) {
  auto engine = NewEngine(nullptr);
  GenerateResult r = Run(engine.get(), Request(prompt_));
  ASSERT_EQ(prompt_.size(), 100u);
  EXPECT_EQ(r.prompt_tokens, 100u);
  EXPECT_EQ(r.cached_tokens, 0u);
  EXPECT_EQ(r.tokens.size(), 12u);
  EXPECT_EQ(r.logits.size(), 12u * 260);
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    EXPECT_EQ(r.tokens[i], ArgMax(absl::MakeConstSpan(r.logits).subspan(i * 260, 260)));
  }
  EXPECT_GT(r.ttft_ms, 0);
  EXPECT_GE(r.total_ms, r.ttft_ms);
  // Greedy and deterministic.
  EXPECT_EQ(Run(engine.get(), Request(prompt_)).tokens, r.tokens);
}

TEST_F(EngineTest, ColdThenWarmGiveIdenticalOutput) {
  const GenerateResult baseline = Run(NewEngine(nullptr).get(), Request(prompt_));
  FakeCache cache;
  auto engine = NewEngine(&cache);
  const GenerateResult cold = Run(engine.get(), Request(prompt_));
  EXPECT_EQ(cold.cached_tokens, 0u);
  EXPECT_EQ(cold.published_blocks, 6u);
  EXPECT_EQ(cache.size(), 6u);
  ExpectSameOutput(cold, baseline);

  const GenerateResult warm = Run(engine.get(), Request(prompt_));
  EXPECT_EQ(warm.cached_tokens, 96u);
  EXPECT_EQ(warm.published_blocks, 0u);
  // The breakdown: parts of the TTFT; the cold run fetched nothing.
  EXPECT_EQ(cold.fetch_ms, 0);
  EXPECT_GT(warm.compute_ms, 0);
  EXPECT_LE(warm.lookup_ms + warm.fetch_ms + warm.place_ms + warm.compute_ms, warm.ttft_ms);
  EXPECT_TRUE(warm.cache_note.empty()) << warm.cache_note;
  ExpectSameOutput(warm, baseline);

  // Another engine (another worker) on the same model shares the blocks.
  const GenerateResult other = Run(NewEngine(&cache).get(), Request(prompt_));
  EXPECT_EQ(other.cached_tokens, 96u);
  ExpectSameOutput(other, baseline);
}

TEST_F(EngineTest, RequestsReuseTheBuffersOfEarlierOnes) {
  FakeCache cache;
  EngineOptions options;
  options.cache = &cache;
  options.buffer_pool = std::make_shared<BufferPool>(64 << 20);
  auto engine = InferenceEngine::Create(testing::LoadOrDie(dir_.path()), options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const GenerateResult first = Run(engine->get(), Request(prompt_));
  const BufferPool::Stats after_first = options.buffer_pool->stats();
  EXPECT_GT(after_first.pooled_bytes, 0u);  // Pages and published blocks came back.
  const GenerateResult second = Run(engine->get(), Request(prompt_));
  EXPECT_EQ(second.tokens, first.tokens);
  // The second request's pages came from the first one's buffers: no new allocation.
  EXPECT_GT(options.buffer_pool->stats().reused, after_first.reused);
  EXPECT_EQ(options.buffer_pool->stats().allocated, after_first.allocated);
}

TEST_F(EngineTest, LongPromptsPublishAndFetchInSeveralCalls) {
  std::string long_prompt;
  while (long_prompt.size() < 1100) long_prompt += prompt_;
  long_prompt.resize(1100);  // 68 full blocks: more than one 64-block call.
  const GenerateResult baseline = Run(NewEngine(nullptr).get(), Request(long_prompt, 4));
  FakeCache cache;
  auto engine = NewEngine(&cache);
  const GenerateResult cold = Run(engine.get(), Request(long_prompt, 4));
  EXPECT_EQ(cold.published_blocks, 68u);
  EXPECT_EQ(cache.size(), 68u);
  EXPECT_EQ(cache.puts(), 2);
  const GenerateResult warm = Run(engine.get(), Request(long_prompt, 4));
  EXPECT_EQ(warm.cached_tokens, 1088u);
  ExpectSameOutput(warm, baseline);
}

TEST_F(EngineTest, PublishedBlocksChainTheirParents) {
  FakeCache cache;
  auto engine = NewEngine(&cache);
  Run(engine.get(), Request(prompt_));
  const std::vector<Key> keys =
      ChainedBlockKeys(engine->namespace_id(), TokenizeBytes(prompt_), 16);
  const std::map<Key, Key> parents = cache.parents();
  ASSERT_EQ(keys.size(), 6u);
  EXPECT_EQ(parents.count(keys[0]), 0u);
  for (size_t i = 1; i < keys.size(); ++i) EXPECT_EQ(parents.at(keys[i]), keys[i - 1]);
}

TEST_F(EngineTest, WholePromptCachedRecomputesOnlyItsLastToken) {
  FakeCache cache;
  auto engine = NewEngine(&cache);
  const std::string exact = prompt_.substr(0, 96);  // Exactly 6 blocks.
  const GenerateResult baseline = Run(NewEngine(nullptr).get(), Request(exact));
  EXPECT_EQ(Run(engine.get(), Request(exact)).published_blocks, 6u);
  const GenerateResult warm = Run(engine.get(), Request(exact));
  // All 6 blocks come from the cache; the last token is computed again for its logits.
  EXPECT_EQ(warm.cached_tokens, 96u);
  EXPECT_EQ(warm.published_blocks, 0u);
  ExpectSameOutput(warm, baseline);
}

TEST_F(EngineTest, PartiallyWarmPrefix) {
  FakeCache cache;
  auto engine = NewEngine(&cache);
  Run(engine.get(), Request(prompt_.substr(0, 40)));  // Publishes 2 blocks.
  EXPECT_EQ(cache.size(), 2u);
  const GenerateResult baseline = Run(NewEngine(nullptr).get(), Request(prompt_));
  const GenerateResult partial = Run(engine.get(), Request(prompt_));
  EXPECT_EQ(partial.cached_tokens, 32u);
  EXPECT_EQ(partial.published_blocks, 4u);
  EXPECT_EQ(cache.size(), 6u);
  ExpectSameOutput(partial, baseline);
  // A prompt that diverges inside block 2 reuses blocks 0 and 1 only.
  std::string diverged = prompt_;
  diverged[40] = '#';
  EXPECT_EQ(Run(engine.get(), Request(diverged)).cached_tokens, 32u);
}

TEST_F(EngineTest, CorruptBlockEndsTheReusedPrefix) {
  FakeCache cache;
  auto engine = NewEngine(&cache);
  const GenerateResult cold = Run(engine.get(), Request(prompt_));
  cache.CorruptOnGet(2);
  const GenerateResult warm = Run(engine.get(), Request(prompt_));
  EXPECT_EQ(warm.cached_tokens, 32u);
  EXPECT_NE(warm.cache_note.find("num_layers"), std::string::npos) << warm.cache_note;
  EXPECT_EQ(warm.published_blocks, 0u);  // The server holds them all: nothing to send.
  ExpectSameOutput(warm, cold);
}

TEST_F(EngineTest, CacheDownCostsARecomputeNotAFailure) {
  FakeCache cache;
  cache.Fail(absl::UnavailableError("connection refused"));
  auto engine = NewEngine(&cache);
  const GenerateResult baseline = Run(NewEngine(nullptr).get(), Request(prompt_));
  const GenerateResult down = Run(engine.get(), Request(prompt_));
  EXPECT_EQ(down.cached_tokens, 0u);
  EXPECT_EQ(down.published_blocks, 0u);  // No publishing into a cache that is down.
  EXPECT_NE(down.cache_note.find("connection refused"), std::string::npos);
  EXPECT_EQ(cache.puts(), 0);
  ExpectSameOutput(down, baseline);
  cache.Fail(absl::DeadlineExceededError("slow"));
  ExpectSameOutput(Run(engine.get(), Request(prompt_)), baseline);
}

TEST_F(EngineTest, SaltsDoNotShare) {
  FakeCache cache;
  auto a = NewEngine(&cache, "tenant-a");
  auto b = NewEngine(&cache, "tenant-b");
  EXPECT_NE(a->namespace_id(), b->namespace_id());
  Run(a.get(), Request(prompt_));
  EXPECT_EQ(Run(b.get(), Request(prompt_)).cached_tokens, 0u);
  EXPECT_EQ(Run(a.get(), Request(prompt_)).cached_tokens, 96u);
}

TEST_F(EngineTest, ConcurrentRequestsSharingAPrefix) {
  FakeCache cache;
  auto engine = NewEngine(&cache);
  auto plain = NewEngine(nullptr);
  std::vector<GenerateRequest> requests;
  std::vector<GenerateResult> want;
  for (int i = 0; i < 4; ++i) {
    requests.push_back(Request(prompt_ + " variant " + std::to_string(i), 8));
    want.push_back(Run(plain.get(), requests.back()));
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<GenerateResult> got(requests.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] {
        absl::StatusOr<GenerateResult> r = engine->Generate(requests[i]);
        ASSERT_TRUE(r.ok()) << r.status();
        got[i] = *std::move(r);
      });
    }
    for (std::thread& t : threads) t.join();
    engine->WaitForPublishes();
    for (size_t i = 0; i < requests.size(); ++i) {
      ExpectSameOutput(got[i], want[i]);
      if (round == 1) {
        EXPECT_GE(got[i].cached_tokens, 96u);
      }
    }
  }
}

TEST_F(EngineTest, StreamsTokensAndStopsWhenAsked) {
  auto engine = NewEngine(nullptr);
  const GenerateResult all = Run(engine.get(), Request(prompt_, 8));
  GenerateRequest r = Request(prompt_, 8);
  std::vector<uint32_t> streamed;
  r.on_token = [&](uint32_t token) {
    streamed.push_back(token);
    return streamed.size() < 3;
  };
  absl::StatusOr<GenerateResult> stopped = engine->Generate(r);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(streamed, std::vector<uint32_t>(all.tokens.begin(), all.tokens.begin() + 3));
  EXPECT_EQ(stopped->tokens, streamed);
}

TEST_F(EngineTest, RejectsBadRequests) {
  auto engine = NewEngine(nullptr);
  GenerateRequest r;
  EXPECT_EQ(engine->Generate(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.prompt = {1, 2, 260};
  EXPECT_EQ(engine->Generate(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.prompt = {1, 2, 3};
  r.max_new_tokens = 4094;
  EXPECT_EQ(engine->Generate(r).status().code(), absl::StatusCode::kInvalidArgument);
  r.max_new_tokens = 0;
  absl::StatusOr<GenerateResult> zero = engine->Generate(r);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->tokens.empty());
}

// What `generate` prints as the answer's text (scripts/demo.sh shows it): the generated ids
// as bytes, in order, ids from 256 up skipped; JSON escapes quotes and newlines and replaces
// invalid UTF-8, so the text survives the trip through the JSON line.
TEST_F(EngineTest, ResultTextIsTheGeneratedBytes) {
  auto engine = NewEngine(nullptr);  // vocab_size 260: bytes, and 4 ids that are not.
  const std::string words = "the na\xc3\xafve \"cache\"\n\tof the License\\";
  GenerateResult r;
  r.tokens = TokenizeBytes(words);
  r.tokens.insert(r.tokens.begin() + 3, 257);
  const std::string text = DetokenizeBytes(r.tokens);
  EXPECT_EQ(text, words);

  const nlohmann::json j = nlohmann::json::parse(GenerateResultJson(r, *engine, 16));
  EXPECT_EQ(j["text"], words);
  EXPECT_EQ(j["tokens"].size(), words.size() + 1);
  EXPECT_NE(GenerateResultText(r, *engine).find("\ntext: " + words + "\n"), std::string::npos);
  // A served answer has no model at hand: text only when every id is a byte.
  EXPECT_FALSE(nlohmann::json::parse(RemoteGenerateResultJson(r)).contains("text"));
  r.tokens.erase(r.tokens.begin() + 3);
  EXPECT_EQ(nlohmann::json::parse(RemoteGenerateResultJson(r))["text"], words);

  // A byte that is not UTF-8 becomes U+FFFD in JSON; the line still parses.
  r.tokens = {'a', 0xff, 'b'};
  EXPECT_EQ(nlohmann::json::parse(GenerateResultJson(r, *engine, 16))["text"],
            "a\xef\xbf\xbd" "b");
}

}  // namespace
}  // namespace kvcache
