#include "worker/engine.h"

#include <algorithm>
#include <deque>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/block_keys.h"
#include "worker/decoder.h"
#include "worker/kv_block.h"

namespace kvcache {
namespace {

// Blocks per Get or Put call: bounds what one deadline covers (64 bench blocks = 25 MB).
constexpr size_t kBlocksPerCall = 64;

}  // namespace

class InferenceEngine::Impl {
 public:
  Impl(std::unique_ptr<Model> model, const EngineOptions& options)
      : model_(std::move(model)),
        options_(options),
        namespace_id_(NamespaceId(model_->Namespace(options.block_size, options.cache_salt))),
        shape_(KvBlockShape(model_->config(), options.block_size)),
        pool_(options.buffer_pool != nullptr ? options.buffer_pool
                                             : std::make_shared<BufferPool>(options.pool_bytes)) {
    if (options_.cache != nullptr && options_.publish) {
      publisher_ = std::thread([this] { PublishLoop(); });
    }
  }

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (publisher_.joinable()) publisher_.join();
  }

  absl::StatusOr<GenerateResult> Generate(const GenerateRequest& request);
  void WaitForPublishes() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Impl* impl) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu_) {
          return impl->queue_.empty() && impl->in_flight_ == 0;
        },
        this));
  }

  const Model& model() const { return *model_; }
  const Key& namespace_id() const { return namespace_id_; }

 private:
  // Places the longest usable cached prefix of `keys` into `cache`. Sets `*present` to the
  // number of leading keys the server holds, and `*cache_reachable` to false when the
  // lookup failed.
  void Reuse(absl::Span<const Key> keys, KvCache* cache, GenerateResult* result, size_t* present,
             bool* cache_reachable);
  // Queues blocks [first, keys.size()) of `cache` for publishing; returns how many.
  size_t Publish(absl::Span<const Key> keys, size_t first, const KvCache& cache,
                 GenerateResult* result);
  void PublishLoop();
  std::unique_ptr<Decoder> TakeDecoder() {
    {
      absl::MutexLock lock(&mu_);
      if (!spare_decoders_.empty()) {
        std::unique_ptr<Decoder> d = std::move(spare_decoders_.back());
        spare_decoders_.pop_back();
        return d;
      }
    }
    return std::make_unique<Decoder>(*model_);
  }
  void GiveDecoder(std::unique_ptr<Decoder> decoder) {
    absl::MutexLock lock(&mu_);
    if (spare_decoders_.size() < kSpareDecoders) spare_decoders_.push_back(std::move(decoder));
  }

  // Constant after construction.
  const std::unique_ptr<Model> model_;
  const EngineOptions options_;
  const Key namespace_id_;
  const BlockShape shape_;
  const std::shared_ptr<BufferPool> pool_;
  std::thread publisher_;

  absl::Mutex mu_;
  std::deque<std::vector<CacheBlock>> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  static constexpr size_t kSpareDecoders = 4;
  std::vector<std::unique_ptr<Decoder>> spare_decoders_ ABSL_GUARDED_BY(mu_);
};

void InferenceEngine::Impl::Reuse(absl::Span<const Key> keys, KvCache* cache,
                                  GenerateResult* result, size_t* present_out,
                                  bool* cache_reachable) {
  CacheClient* client = options_.cache;
  absl::Time t = absl::Now();
  absl::StatusOr<CacheLookup> lookup = client->Lookup(namespace_id_, keys);
  result->lookup_ms = absl::ToDoubleMilliseconds(absl::Now() - t);
  if (!lookup.ok()) {
    *cache_reachable = false;
    result->cache_note = absl::StrCat("lookup failed: ", lookup.status().ToString());
    return;
  }
  const size_t present = std::min(lookup->num_present, keys.size());
  *present_out = present;
  // Fetched in runs of kBlocksPerCall, each call under its own deadline.
  for (size_t begin = 0; begin < present; begin += kBlocksPerCall) {
    const size_t n = std::min(kBlocksPerCall, present - begin);
    t = absl::Now();
    absl::StatusOr<std::vector<CacheBlock>> blocks =
        client->Get(namespace_id_, keys.subspan(begin, n));
    const absl::Time fetched = absl::Now();
    result->fetch_ms += absl::ToDoubleMilliseconds(fetched - t);
    // Added when the run is placed, or when it ends early.
    struct PlaceTimer {
      absl::Time from;
      double* ms;
      ~PlaceTimer() { *ms += absl::ToDoubleMilliseconds(absl::Now() - from); }
    } place_timer{fetched, &result->place_ms};
    if (!blocks.ok()) {
      result->cache_note = absl::StrCat("get failed: ", blocks.status().ToString());
      return;
    }
    // Each checked block's payload becomes a page as it is (no copy); the rest go back to
    // the pool.
    struct GiveBack {
      std::vector<CacheBlock>* blocks;
      BufferPool* pool;
      ~GiveBack() {
        for (CacheBlock& b : *blocks) pool->Give(std::move(b.payload));
      }
    } give_back{&*blocks, pool_.get()};
    for (size_t j = 0; j < blocks->size() && j < n; ++j) {
      const size_t i = begin + j;
      CacheBlock& block = (*blocks)[j];
      absl::Status s;
      if (block.key != keys[i]) {
        s = absl::InvalidArgumentError("the server returned another key");
      } else if (!(block.shape == shape_)) {
        s = absl::InvalidArgumentError("block shape does not match the model");
      } else {
        s = CheckKvBlock(block.payload, shape_);
      }
      if (s.ok()) s = cache->AdoptPage(std::move(block.payload));
      if (!s.ok()) {
        result->cache_note = absl::StrCat("block ", i, " not reused: ", s.message());
        return;
      }
    }
    if (blocks->size() < n) {
      result->cache_note = absl::StrCat("only ", begin + blocks->size(), " of ", present,
                                        " looked-up blocks arrived");
      return;
    }
  }
}

size_t InferenceEngine::Impl::Publish(absl::Span<const Key> keys, size_t first,
                                      const KvCache& cache, GenerateResult* result) {
  if (first >= keys.size()) return 0;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.size() >= options_.max_pending_publishes) {
      if (result->cache_note.empty()) result->cache_note = "publish queue full: blocks not shared";
      return 0;
    }
  }
  std::vector<CacheBlock> blocks = ChainedBlocks(keys, first);
  for (size_t i = first; i < keys.size(); ++i) {
    blocks[i - first].shape = shape_;
    blocks[i - first].payload = pool_->Take(kKvBlockHeaderBytes + cache.page_floats() * sizeof(float));
    EncodeKvBlockTo(shape_, cache.page(i), blocks[i - first].payload.data());
  }
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= options_.max_pending_publishes) {
    if (result->cache_note.empty()) result->cache_note = "publish queue full: blocks not shared";
    return 0;
  }
  const size_t n = blocks.size();
  queue_.push_back(std::move(blocks));
  return n;
}

void InferenceEngine::Impl::PublishLoop() {
  while (true) {
    std::vector<CacheBlock> blocks;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Impl* impl) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->mu_) {
            return impl->stopping_ || !impl->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // Stopping, and everything queued is done.
      blocks = std::move(queue_.front());
      queue_.pop_front();
      ++in_flight_;
    }
    // Best effort: a failed publish only means the blocks are not shared. In runs of
    // kBlocksPerCall, each under its own deadline; the first failure drops the rest (their
    // parents may be missing).
    for (size_t begin = 0; begin < blocks.size(); begin += kBlocksPerCall) {
      const size_t n = std::min(kBlocksPerCall, blocks.size() - begin);
      if (!options_.cache->Put(namespace_id_, absl::MakeConstSpan(blocks).subspan(begin, n)).ok()) {
        break;
      }
    }
    for (CacheBlock& block : blocks) pool_->Give(std::move(block.payload));
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
}

absl::StatusOr<GenerateResult> InferenceEngine::Impl::Generate(const GenerateRequest& request) {
  const absl::Time start = absl::Now();
  const ModelConfig& c = model_->config();
  const std::vector<uint32_t>& prompt = request.prompt;
  if (prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  for (uint32_t t : prompt) {
    if (t >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt token id ", t, " is out of the vocabulary (size ", c.vocab_size, ")"));
    }
  }
  if (prompt.size() + request.max_new_tokens > c.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt (", prompt.size(), " tokens) + max_new_tokens (", request.max_new_tokens,
        ") exceed max_position_embeddings (", c.max_position_embeddings, ")"));
  }

  GenerateResult result;
  result.prompt_tokens = prompt.size();
  KvCache cache(c.num_layers, c.num_kv_heads, c.head_dim, options_.block_size, pool_.get());
  std::vector<Key> keys;
  bool cache_reachable = true;
  size_t present = 0;  // Leading blocks the server already holds: no need to publish them.
  if (options_.cache != nullptr) {
    keys = ChainedBlockKeys(namespace_id_, prompt, options_.block_size);
    if (!keys.empty()) Reuse(keys, &cache, &result, &present, &cache_reachable);
  }
  result.cached_tokens = cache.num_tokens();
  // The first generated token comes from the last prompt position's logits, so that
  // position is always computed: when the cache held the whole prompt, its last token's
  // K and V are dropped and computed again (to the same values) over the cached rest.
  const size_t computed_from = std::min(result.cached_tokens, prompt.size() - 1);
  cache.Truncate(computed_from);

  const absl::Time compute_start = absl::Now();
  // A decoder of an earlier request: its scratch is already faulted in.
  std::unique_ptr<Decoder> decoder_owner = TakeDecoder();
  struct ReturnDecoder {
    Impl* impl;
    std::unique_ptr<Decoder>* decoder;
    ~ReturnDecoder() { impl->GiveDecoder(std::move(*decoder)); }
  } return_decoder{this, &decoder_owner};
  Decoder& decoder = *decoder_owner;
  std::vector<float> logits;
  absl::Status s =
      decoder.Forward(absl::MakeConstSpan(prompt).subspan(computed_from), &cache, &logits);
  if (!s.ok()) return s;
  result.compute_ms = absl::ToDoubleMilliseconds(absl::Now() - compute_start);
  const size_t rows = std::max<size_t>(1, request.max_new_tokens);
  if (request.return_logits) {
    result.logits.reserve(rows * c.vocab_size);
    result.logits.insert(result.logits.end(), logits.begin(), logits.end());
  }
  if (request.max_new_tokens > 0) result.tokens.push_back(ArgMax(logits));
  result.ttft_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  bool go_on =
      request.max_new_tokens > 0 && (!request.on_token || request.on_token(result.tokens.back()));

  if (options_.cache != nullptr && options_.publish && cache_reachable) {
    // Blocks the server holds are not sent again (Put is idempotent per key anyway), even
    // when one of them could not be reused here.
    const size_t first = std::max(result.cached_tokens / options_.block_size, present);
    const absl::Time publish_start = absl::Now();
    result.published_blocks = Publish(keys, first, cache, &result);
    result.publish_ms = absl::ToDoubleMilliseconds(absl::Now() - publish_start);
  }

  while (go_on && result.tokens.size() < request.max_new_tokens) {
    const uint32_t last = result.tokens.back();
    s = decoder.Forward(absl::MakeConstSpan(&last, 1), &cache, &logits);
    if (!s.ok()) return s;
    if (request.return_logits) {
      result.logits.insert(result.logits.end(), logits.begin(), logits.end());
    }
    result.tokens.push_back(ArgMax(logits));
    if (request.on_token && !request.on_token(result.tokens.back())) go_on = false;
  }
  result.total_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return result;
}

InferenceEngine::InferenceEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InferenceEngine::~InferenceEngine() = default;

absl::StatusOr<std::unique_ptr<InferenceEngine>> InferenceEngine::Create(
    std::unique_ptr<Model> model, const EngineOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("no model");
  if (options.block_size == 0) return absl::InvalidArgumentError("block_size must be > 0");
  return std::unique_ptr<InferenceEngine>(
      new InferenceEngine(std::make_unique<Impl>(std::move(model), options)));
}

absl::StatusOr<GenerateResult> InferenceEngine::Generate(const GenerateRequest& request) {
  return impl_->Generate(request);
}
void InferenceEngine::WaitForPublishes() { impl_->WaitForPublishes(); }
const Model& InferenceEngine::model() const { return impl_->model(); }
const Key& InferenceEngine::namespace_id() const { return impl_->namespace_id(); }

}  // namespace kvcache
