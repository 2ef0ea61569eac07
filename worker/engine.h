// The inference engine: greedy generation on one model, reusing and publishing prompt KV
// blocks through an optional kvcache CacheClient (DESIGN.md, "Worker").
//
// Per request, with a cache: the prompt's full blocks get chained keys in the model's
// namespace (Model::Namespace); Lookup gives the longest cached prefix, Get fetches it and
// each block is decoded into a KV page (a block that fails to decode, or has another shape,
// ends the reused prefix there); the decoder computes only the remaining tokens; the full
// prompt blocks the server does not hold are published by a background thread, after the
// first token, without delaying the reply. The cache being down, slow or wrong costs a recompute,
// never a failed request. Every full block of the prompt can be reused; the last prompt position is
// always computed (its logits give the first generated token), so when the whole prompt is
// cached its last token's K and V are computed again over the cached rest.
//
// Thread safety: Generate may be called from many threads at once (each request has its own
// KV pages and scratch). Ownership: the engine owns the model; the CacheClient is borrowed
// and must outlive the engine. The destructor waits for the background publishes queued so
// far.

#ifndef KVCACHE_WORKER_ENGINE_H_
#define KVCACHE_WORKER_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cache_client.h"
#include "common/key.h"
#include "worker/model.h"

namespace kvcache {

struct EngineOptions {
  // Tokens per KV page and per cache block. Default: 16.
  uint32_t block_size = 16;
  // Tenant salt mixed into the namespace id: different salts never share blocks.
  // Default: empty.
  std::string cache_salt;
  // The cache to reuse and publish blocks through; null runs without sharing. Not owned.
  // Default: null.
  CacheClient* cache = nullptr;
  // Whether to publish the prompt's new full blocks. Default: true.
  bool publish = true;
  // Publish jobs allowed to wait for the background thread; further ones are dropped (the
  // blocks are simply not shared). Default: 64.
  size_t max_pending_publishes = 64;
  // The buffers of KV pages and of blocks fetched and published are reused through this
  // pool; give the same pool to the CacheClient (CacheClientOptions::payload_pool) so that
  // fetched blocks land in reused memory too and become pages without a copy. Null: the
  // engine makes its own, of `pool_bytes`. Default: null.
  std::shared_ptr<BufferPool> buffer_pool;
  // Capacity the engine's own pool keeps. Default: 512 MiB.
  size_t pool_bytes = size_t{512} << 20;
};

struct GenerateRequest {
  std::vector<uint32_t> prompt;  // Token ids; not empty.
  uint32_t max_new_tokens = 16;
  // Return the logits rows (see GenerateResult::logits). Default: false.
  bool return_logits = false;
  // If set, called on the calling thread with each generated token as soon as it is chosen
  // (the first one right after TTFT). Returning false stops generation there: the result
  // then holds the tokens so far. Default: none.
  std::function<bool(uint32_t token)> on_token;
};

struct GenerateResult {
  std::vector<uint32_t> tokens;  // Generated ids: max_new_tokens, fewer if on_token stopped.
  // With return_logits: max(1, max_new_tokens) rows of vocab_size floats. Row 0 holds the
  // logits at the last prompt position, row i those after the i-th generated token; token i
  // (0-based) is the argmax of row i.
  std::vector<float> logits;
  size_t prompt_tokens = 0;
  size_t cached_tokens = 0;     // Prompt tokens whose KV came from the cache (full blocks).
  size_t published_blocks = 0;  // Blocks queued for publishing.
  double ttft_ms = 0;           // Request start to first token (cache work included).
  double total_ms = 0;
  // Where the time to first token went (milliseconds; the model's loading is not part of a
  // request). lookup: the cache's Lookup call; fetch: the Get calls (network, and the
  // client's checksum checks); place: checking fetched blocks and placing them as KV pages;
  // compute: the prefill of the uncached tokens and the first token's logits. The rest of
  // ttft_ms (checks, keys, pages) is ttft_ms minus their sum. publish_ms: encoding the new
  // blocks and queueing them, after the first token (the Puts run in the background).
  double lookup_ms = 0;
  double fetch_ms = 0;
  double place_ms = 0;
  double compute_ms = 0;
  double publish_ms = 0;
  // Why the cache was not (fully) used, for logs: empty when all went well.
  std::string cache_note;
};

class InferenceEngine final {
 public:
  //   INVALID_ARGUMENT  block_size 0.
  static absl::StatusOr<std::unique_ptr<InferenceEngine>> Create(std::unique_ptr<Model> model,
                                                                 const EngineOptions& options);
  ~InferenceEngine();
  InferenceEngine(const InferenceEngine&) = delete;
  InferenceEngine& operator=(const InferenceEngine&) = delete;

  // Greedy generation. Cache failures never fail a request.
  //   INVALID_ARGUMENT  empty prompt, a token id >= vocab_size, or prompt + max_new_tokens
  //                     beyond max_position_embeddings.
  absl::StatusOr<GenerateResult> Generate(const GenerateRequest& request);

  // Blocks until every publish queued so far has finished (for tests and clean exits).
  void WaitForPublishes();

  const Model& model() const;
  // The id of this engine's block namespace (Model::Namespace of block_size and salt).
  const Key& namespace_id() const;

 private:
  class Impl;
  explicit InferenceEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcache

#endif  // KVCACHE_WORKER_ENGINE_H_
