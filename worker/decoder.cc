#include "worker/decoder.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kvcache {
namespace {

// Query rows per attention tile in prefill: bounds the score buffer to kRowTile x context.
constexpr size_t kRowTile = 128;

// exp(x) for softmax and SiLU, written so that the compiler vectorizes loops over it:
// Cephes' expf polynomial (relative error ~1e-7 on [-87, 88]), round-to-nearest by the
// 1.5*2^23 trick, and 2^n assembled in the exponent bits.
inline float FastExp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float kMagic = 12582912.0f;  // 1.5 * 2^23
  const float n = (x * 1.44269504088896341f + kMagic) - kMagic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// y[n, out] = x[n, in] · W[out, in]^T (+ y when accumulate).
void Linear(const float* x, size_t n, size_t in, const float* w, size_t out, float* y,
            bool accumulate = false) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (n == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(out), static_cast<int>(in), 1.0f, w,
                static_cast<int>(in), x, 1, beta, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(out),
                static_cast<int>(in), 1.0f, x, static_cast<int>(in), w, static_cast<int>(in), beta,
                y, static_cast<int>(out));
  }
}

void RmsNorm(const float* x, size_t n, size_t dim, const float* w, float eps, float* y) {
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    float* yi = y + i * dim;
    double ss = 0;
    for (size_t j = 0; j < dim; ++j) ss += static_cast<double>(xi[j]) * xi[j];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (size_t j = 0; j < dim; ++j) yi[j] = w[j] * (xi[j] * inv);
  }
}

// Rotates each head of each row in place (rotate-half: pairs (j, j + head_dim/2)).
void Rope(float* v, size_t n, size_t heads, size_t head_dim, const float* cos_table,
          const float* sin_table) {
  const size_t half = head_dim / 2;
  for (size_t i = 0; i < n; ++i) {
    const float* c = cos_table + i * half;
    const float* s = sin_table + i * half;
    for (size_t h = 0; h < heads; ++h) {
      float* x = v + (i * heads + h) * head_dim;
      for (size_t j = 0; j < half; ++j) {
        const float a = x[j], b = x[j + half];
        x[j] = a * c[j] - b * s[j];
        x[j + half] = b * c[j] + a * s[j];
      }
    }
  }
}

// Softmax of row[0, valid) in place; row[valid, width) set to 0. This is the one hot loop
// outside BLAS (heads x context^2 / 2 exponentials per layer in prefill): it is compiled for
// AVX-512 and AVX2 as well as the baseline, picked at load time (GCC target_clones), and its
// reductions are vectorized (omp simd; built with -fopenmp-simd, no OpenMP runtime).
__attribute__((target_clones("avx512f", "avx2", "default"))) void MaskedSoftmax(float* row,
                                                                                size_t valid,
                                                                                size_t width) {
  float max = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : max)
  for (size_t j = 0; j < valid; ++j) max = row[j] > max ? row[j] : max;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (size_t j = 0; j < valid; ++j) {
    const float e = FastExp(row[j] - max);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (size_t j = 0; j < valid; ++j) row[j] *= inv;
  std::fill(row + valid, row + width, 0.0f);
}

void Grow(std::vector<float>* v, size_t n) {
  if (v->size() < n) v->resize(n);
}

}  // namespace

KvCache::KvCache(uint32_t num_layers, uint32_t num_kv_heads, uint32_t head_dim, uint32_t block_size,
                 BufferPool* pool)
    : num_layers_(num_layers),
      kv_dim_(num_kv_heads * head_dim),
      block_size_(block_size),
      page_floats_(static_cast<size_t>(num_layers) * 2 * block_size * kv_dim_),
      pool_(pool) {}

KvCache::~KvCache() { Truncate(0); }

absl::Span<const float> KvCache::page(size_t p) const {
  return absl::Span<const float>(PageData(p), page_floats_);
}

absl::Status KvCache::AppendPage(absl::Span<const float> data) {
  if (num_tokens_ % block_size_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("AppendPage after a partial page (", num_tokens_, " tokens)"));
  }
  if (data.size() != page_floats_) {
    return absl::InvalidArgumentError(
        absl::StrCat("page of ", data.size(), " floats, expected ", page_floats_));
  }
  const size_t p = num_tokens_ / block_size_;
  Extend(block_size_);
  std::memcpy(PageData(p), data.data(), page_floats_ * sizeof(float));
  return absl::OkStatus();
}

absl::Status KvCache::AdoptPage(std::string&& buffer) {
  if (num_tokens_ % block_size_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("AdoptPage after a partial page (", num_tokens_, " tokens)"));
  }
  if (buffer.size() != kPageHeaderBytes + page_floats_ * sizeof(float)) {
    return absl::InvalidArgumentError(absl::StrCat("page buffer of ", buffer.size(),
                                                   " bytes, expected ",
                                                   kPageHeaderBytes + page_floats_ * sizeof(float)));
  }
  const size_t p = num_tokens_ / block_size_;
  if (p < pages_.size()) {
    if (pool_ != nullptr) pool_->Give(std::move(pages_[p]));
    pages_[p] = std::move(buffer);
  } else {
    pages_.push_back(std::move(buffer));
  }
  num_tokens_ += block_size_;
  return absl::OkStatus();
}

void KvCache::Extend(size_t n) {
  num_tokens_ += n;
  const size_t pages = (num_tokens_ + block_size_ - 1) / block_size_;
  // Contents unspecified: every slot is written before it is read (tokens < num_tokens_ only).
  const size_t bytes = kPageHeaderBytes + page_floats_ * sizeof(float);
  while (pages_.size() < pages) {
    if (pool_ != nullptr) {
      pages_.push_back(pool_->Take(bytes));
    } else {
      pages_.emplace_back(bytes, '\0');
    }
  }
}

void KvCache::Truncate(size_t n) {
  num_tokens_ = std::min(n, num_tokens_);
  const size_t keep = (num_tokens_ + block_size_ - 1) / block_size_;
  if (pool_ != nullptr) {
    for (size_t p = keep; p < pages_.size(); ++p) pool_->Give(std::move(pages_[p]));
  }
  pages_.resize(keep);
}

Decoder::Decoder(const Model& model) : model_(model), config_(model.config()) {}

void Decoder::EnsureScratch(size_t n, size_t total) {
  const ModelConfig& c = config_;
  Grow(&x_, n * c.hidden_size);
  Grow(&xn_, n * c.hidden_size);
  Grow(&q_, n * c.q_dim());
  Grow(&k_, n * c.kv_dim());
  Grow(&v_, n * c.kv_dim());
  Grow(&attn_, n * c.q_dim());
  Grow(&gate_, n * c.intermediate_size);
  Grow(&up_, n * c.intermediate_size);
  const size_t group = c.num_heads / c.num_kv_heads;
  Grow(&scores_, n > 1 ? group * std::min(n, kRowTile) * total : c.num_heads * total);
  if (n > 1) {
    Grow(&keys_, total * c.kv_dim());
    Grow(&values_, total * c.kv_dim());
    Grow(&stacked_q_, group * std::min(n, kRowTile) * c.head_dim);
    Grow(&stacked_out_, group * std::min(n, kRowTile) * c.head_dim);
  }
  Grow(&cos_, n * c.head_dim / 2);
  Grow(&sin_, n * c.head_dim / 2);
}

absl::Status Decoder::Forward(absl::Span<const uint32_t> tokens, KvCache* cache,
                              std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const size_t n = tokens.size();
  const size_t start = cache->num_tokens();
  const size_t total = start + n;
  if (n == 0) return absl::InvalidArgumentError("no tokens to run");
  if (cache->num_layers() != c.num_layers || cache->kv_dim() != c.kv_dim()) {
    return absl::InvalidArgumentError("KV cache shape does not match the model");
  }
  if (total > c.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(total, " positions exceed the model's ",
                                                   "max_position_embeddings (",
                                                   c.max_position_embeddings, ")"));
  }
  for (uint32_t t : tokens) {
    if (t >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", t, " is out of the vocabulary (size ", c.vocab_size, ")"));
    }
  }
  EnsureScratch(n, total);
  const size_t hidden = c.hidden_size, inter = c.intermediate_size;
  const size_t q_dim = c.q_dim(), kv_dim = c.kv_dim(), half = c.head_dim / 2;

  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&x_[i * hidden], model_.embed_tokens() + static_cast<size_t>(tokens[i]) * hidden,
                hidden * sizeof(float));
  }
  for (size_t j = 0; j < half; ++j) {
    const double inv_freq =
        std::pow(c.rope_theta, -2.0 * static_cast<double>(j) / static_cast<double>(c.head_dim));
    for (size_t i = 0; i < n; ++i) {
      const double angle = static_cast<double>(start + i) * inv_freq;
      cos_[i * half + j] = static_cast<float>(std::cos(angle));
      sin_[i * half + j] = static_cast<float>(std::sin(angle));
    }
  }
  cache->Extend(n);

  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = model_.layer(l);
    RmsNorm(x_.data(), n, hidden, w.input_norm, c.rms_norm_eps, xn_.data());
    Linear(xn_.data(), n, hidden, w.q_proj, q_dim, q_.data());
    Linear(xn_.data(), n, hidden, w.k_proj, kv_dim, k_.data());
    Linear(xn_.data(), n, hidden, w.v_proj, kv_dim, v_.data());
    Rope(q_.data(), n, c.num_heads, c.head_dim, cos_.data(), sin_.data());
    Rope(k_.data(), n, c.num_kv_heads, c.head_dim, cos_.data(), sin_.data());
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(cache->MutableK(l, start + i), &k_[i * kv_dim], kv_dim * sizeof(float));
      std::memcpy(cache->MutableV(l, start + i), &v_[i * kv_dim], kv_dim * sizeof(float));
    }
    Attention(l, start, n, *cache);
    Linear(attn_.data(), n, q_dim, w.o_proj, hidden, x_.data(), /*accumulate=*/true);

    RmsNorm(x_.data(), n, hidden, w.post_norm, c.rms_norm_eps, xn_.data());
    Linear(xn_.data(), n, hidden, w.gate_proj, inter, gate_.data());
    Linear(xn_.data(), n, hidden, w.up_proj, inter, up_.data());
    float* g = gate_.data();
    const float* u = up_.data();
    for (size_t i = 0, m = n * inter; i < m; ++i) {
      g[i] = g[i] / (1.0f + FastExp(-g[i])) * u[i];  // SiLU(gate) * up
    }
    Linear(gate_.data(), n, inter, w.down_proj, hidden, x_.data(), /*accumulate=*/true);
  }

  RmsNorm(&x_[(n - 1) * hidden], 1, hidden, model_.final_norm(), c.rms_norm_eps, xn_.data());
  logits->resize(c.vocab_size);
  Linear(xn_.data(), 1, hidden, model_.lm_head(), c.vocab_size, logits->data());
  return absl::OkStatus();
}

void Decoder::Attention(uint32_t layer, size_t start, size_t n, const KvCache& cache) {
  const ModelConfig& c = config_;
  const size_t hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const size_t group = c.num_heads / c.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t total = start + n;

  if (n == 1) {
    // Decode: walk the pages directly, in memory order: each token's K (then V) row is read
    // once, contiguously, for every query head (head h's scores at scores_[h * total + t]).
    float* scores = scores_.data();
    for (size_t t = 0; t < total; ++t) {
      const float* k = cache.K(layer, t);
      for (size_t h = 0; h < c.num_heads; ++h) {
        const float* q = &q_[h * hd];
        const float* kh = k + (h / group) * hd;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (size_t d = 0; d < hd; ++d) dot += q[d] * kh[d];
        scores[h * total + t] = dot * scale;
      }
    }
    for (size_t h = 0; h < c.num_heads; ++h) MaskedSoftmax(scores + h * total, total, total);
    std::fill(attn_.begin(), attn_.begin() + q_dim, 0.0f);
    for (size_t t = 0; t < total; ++t) {
      const float* v = cache.V(layer, t);
      for (size_t h = 0; h < c.num_heads; ++h) {
        float* out = &attn_[h * hd];
        const float* vh = v + (h / group) * hd;
        const float p = scores[h * total + t];
#pragma omp simd
        for (size_t d = 0; d < hd; ++d) out[d] += p * vh[d];
      }
    }
    return;
  }

  // Prefill: gather this layer's K and V into contiguous [total, kv_dim] matrices. Then, per
  // tile of query rows and per KV head, the `group` query heads sharing that KV head are
  // stacked into one [group * rows, head_dim] matrix, so that one sgemm computes all their
  // scores against the keys the tile can see, a causal softmax follows, and one sgemm
  // computes P V. (Stacking triples the rows per call for the bench model's 12/4 heads,
  // which is what keeps these thin products efficient.)
  for (size_t t = 0; t < total; ++t) {
    std::memcpy(&keys_[t * kv_dim], cache.K(layer, t), kv_dim * sizeof(float));
    std::memcpy(&values_[t * kv_dim], cache.V(layer, t), kv_dim * sizeof(float));
  }
  for (size_t r0 = 0; r0 < n; r0 += kRowTile) {
    const size_t rows = std::min(kRowTile, n - r0);
    const size_t width = start + r0 + rows;  // Keys any row of this tile may see.
    const size_t m = group * rows;
    for (size_t g = 0; g < c.num_kv_heads; ++g) {
      for (size_t j = 0; j < group; ++j) {
        const size_t h = g * group + j;
        for (size_t i = 0; i < rows; ++i) {
          std::memcpy(&stacked_q_[(j * rows + i) * hd], &q_[(r0 + i) * q_dim + h * hd],
                      hd * sizeof(float));
        }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                  static_cast<int>(width), static_cast<int>(hd), scale, stacked_q_.data(),
                  static_cast<int>(hd), &keys_[g * hd], static_cast<int>(kv_dim), 0.0f,
                  scores_.data(), static_cast<int>(width));
      for (size_t j = 0; j < group; ++j) {
        for (size_t i = 0; i < rows; ++i) {
          MaskedSoftmax(&scores_[(j * rows + i) * width], start + r0 + i + 1, width);
        }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                  static_cast<int>(hd), static_cast<int>(width), 1.0f, scores_.data(),
                  static_cast<int>(width), &values_[g * hd], static_cast<int>(kv_dim), 0.0f,
                  stacked_out_.data(), static_cast<int>(hd));
      for (size_t j = 0; j < group; ++j) {
        const size_t h = g * group + j;
        for (size_t i = 0; i < rows; ++i) {
          std::memcpy(&attn_[(r0 + i) * q_dim + h * hd], &stacked_out_[(j * rows + i) * hd],
                      hd * sizeof(float));
        }
      }
    }
  }
}

uint32_t ArgMax(absl::Span<const float> logits) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

}  // namespace kvcache
