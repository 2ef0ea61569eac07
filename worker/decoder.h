// The CPU decoder of a Llama-family model: RMSNorm, rotary embeddings (Hugging Face
// rotate-half convention), grouped-query causal attention, SwiGLU MLP. Prefill runs as
// matrix-matrix products on OpenBLAS (cblas_sgemm, all cores); decode runs one token at a
// time. The keys and values of a request live in a KvCache of block-sized pages, so that a
// full page can be published as a cache block and a fetched block placed in a page.
//
// Thread safety: a KvCache and a Decoder belong to one request (one thread at a time). Many
// Decoders may share one Model.

#ifndef KVCACHE_WORKER_DECODER_H_
#define KVCACHE_WORKER_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "client/buffer_pool.h"
#include "worker/model.h"

namespace kvcache {

// The K and V of one request's tokens, as a list of pages of `block_size` tokens. Page p
// holds tokens [p*block_size, (p+1)*block_size) of every layer, as f32 laid out
//   [layer][K, V][token in page][kv_head][head_dim]
// which is also the data layout of a KV block (worker/kv_block.h, docs/worker.md). Each page
// is stored behind kPageHeaderBytes of room, the size of a KV block's header, so that a
// fetched block's payload becomes a page without a copy (AdoptPage).
class KvCache final {
 public:
  // Bytes before each page's data in its buffer (= kKvBlockHeaderBytes).
  static constexpr size_t kPageHeaderBytes = 32;

  // REQUIRES: all arguments > 0. Page buffers come from `pool` and go back to it when
  // dropped (null: plain allocations); the pool must outlive the cache.
  KvCache(uint32_t num_layers, uint32_t num_kv_heads, uint32_t head_dim, uint32_t block_size,
          BufferPool* pool = nullptr);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  uint32_t num_layers() const { return num_layers_; }
  uint32_t kv_dim() const { return kv_dim_; }
  uint32_t block_size() const { return block_size_; }
  // Tokens whose K and V are present (positions [0, num_tokens())).
  size_t num_tokens() const { return num_tokens_; }
  // Pages all of whose tokens are present.
  size_t num_full_pages() const { return num_tokens_ / block_size_; }
  // Floats in one page: num_layers * 2 * block_size * kv_dim.
  size_t page_floats() const { return page_floats_; }

  // Page `p`'s data. REQUIRES: p < pages allocated (p < ceil(num_tokens / block_size)).
  absl::Span<const float> page(size_t p) const;

  // Appends one full page of `page_floats()` floats (for example a decoded cache block).
  //   FAILED_PRECONDITION  num_tokens() is not a multiple of block_size.
  //   INVALID_ARGUMENT     data has the wrong size.
  absl::Status AppendPage(absl::Span<const float> data);

  // Appends one full page whose data is `buffer` from byte kPageHeaderBytes on (a KV block's
  // payload, checked by the caller), taking the buffer over without a copy.
  //   FAILED_PRECONDITION  num_tokens() is not a multiple of block_size.
  //   INVALID_ARGUMENT     buffer has the wrong size.
  absl::Status AdoptPage(std::string&& buffer);

  // Makes room for `n` more tokens and counts them as present (the decoder then writes
  // their K and V with MutableK / MutableV).
  void Extend(size_t n);
  // Drops tokens [n, num_tokens()). REQUIRES: n <= num_tokens().
  void Truncate(size_t n);

  // The kv_dim floats of K (or V) of `token` in `layer`. REQUIRES: token < num_tokens().
  const float* K(uint32_t layer, size_t token) const { return Slot(layer, 0, token); }
  const float* V(uint32_t layer, size_t token) const { return Slot(layer, 1, token); }
  float* MutableK(uint32_t layer, size_t token) { return Slot(layer, 0, token); }
  float* MutableV(uint32_t layer, size_t token) { return Slot(layer, 1, token); }

 private:
  float* PageData(size_t p) const {
    return reinterpret_cast<float*>(const_cast<char*>(pages_[p].data()) + kPageHeaderBytes);
  }
  float* Slot(uint32_t layer, int kv, size_t token) const {
    float* page = PageData(token / block_size_);
    return page +
           ((static_cast<size_t>(layer) * 2 + kv) * block_size_ + token % block_size_) * kv_dim_;
  }

  const uint32_t num_layers_;
  const uint32_t kv_dim_;
  const uint32_t block_size_;
  const size_t page_floats_;
  BufferPool* pool_;
  size_t num_tokens_ = 0;
  std::vector<std::string> pages_;  // kPageHeaderBytes + page_floats_ * 4 bytes each.
};

// Runs the model over tokens. Owns scratch buffers reused across calls, so one Decoder per
// request (or per thread) avoids allocations per token.
class Decoder final {
 public:
  // `model` must outlive the decoder.
  explicit Decoder(const Model& model);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Runs `tokens` at positions [cache->num_tokens(), cache->num_tokens() + tokens.size()),
  // appends their K and V to `cache`, and writes the logits at the last of them
  // (vocab_size floats) to `logits`. With more than one token this is a prefill (matrix-matrix
  // work); with one, a decode step. Starting at a position p > 0 reuses the pages of
  // [0, p) as they are: the result equals a run from position 0 within float tolerance.
  //   INVALID_ARGUMENT  empty `tokens`, a token id >= vocab_size, positions past
  //                     max_position_embeddings, or a cache of another shape.
  absl::Status Forward(absl::Span<const uint32_t> tokens, KvCache* cache,
                       std::vector<float>* logits);

 private:
  void EnsureScratch(size_t n, size_t total);
  void Attention(uint32_t layer, size_t start, size_t n, const KvCache& cache);

  const Model& model_;
  const ModelConfig& config_;
  // Scratch, sized for the largest call so far.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, scores_, keys_, values_;
  std::vector<float> stacked_q_, stacked_out_;
  std::vector<float> cos_, sin_;
};

// Index of the largest logit (the lowest index among equal ones).
uint32_t ArgMax(absl::Span<const float> logits);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_DECODER_H_
