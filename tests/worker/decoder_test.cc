// The decoder against an independent naive reference, hand-computed cases, and prefix reuse.

#include "worker/decoder.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tests/worker/worker_test_util.h"
#include "worker/model.h"

namespace kvcache {
namespace {

using testing::HandTensor;
using testing::LoadOrDie;
using testing::RelativeError;
using testing::TempDir;
using testing::WriteHandModel;
using testing::WriteTinyModel;

// ---- A naive reference: plain loops in double, the whole sequence at once, no BLAS, no
// pages. Written from the Llama definition, independently of worker/decoder.cc.

using Vec = std::vector<double>;

Vec MatVec(const float* w, size_t out, size_t in, const Vec& x) {
  Vec y(out, 0.0);
  for (size_t o = 0; o < out; ++o) {
    for (size_t i = 0; i < in; ++i) y[o] += static_cast<double>(w[o * in + i]) * x[i];
  }
  return y;
}

Vec Norm(const Vec& x, const float* w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w[i];
  return y;
}

void RotateHalf(Vec* v, size_t heads, size_t hd, size_t pos, double theta) {
  for (size_t h = 0; h < heads; ++h) {
    double* x = v->data() + h * hd;
    for (size_t i = 0; i < hd / 2; ++i) {
      const double freq =
          1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(hd));
      const double c = std::cos(pos * freq), s = std::sin(pos * freq);
      const double a = x[i], b = x[i + hd / 2];
      x[i] = a * c - b * s;
      x[i + hd / 2] = b * c + a * s;
    }
  }
}

// Logits at every position.
std::vector<Vec> Reference(const Model& m, const std::vector<uint32_t>& tokens) {
  const ModelConfig& c = m.config();
  const size_t T = tokens.size(), H = c.hidden_size, hd = c.head_dim;
  std::vector<Vec> x(T, Vec(H));
  for (size_t t = 0; t < T; ++t) {
    for (size_t i = 0; i < H; ++i) x[t][i] = m.embed_tokens()[tokens[t] * H + i];
  }
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = m.layer(l);
    std::vector<Vec> q(T), k(T), v(T);
    for (size_t t = 0; t < T; ++t) {
      const Vec xn = Norm(x[t], w.input_norm, c.rms_norm_eps);
      q[t] = MatVec(w.q_proj, c.q_dim(), H, xn);
      k[t] = MatVec(w.k_proj, c.kv_dim(), H, xn);
      v[t] = MatVec(w.v_proj, c.kv_dim(), H, xn);
      RotateHalf(&q[t], c.num_heads, hd, t, c.rope_theta);
      RotateHalf(&k[t], c.num_kv_heads, hd, t, c.rope_theta);
    }
    for (size_t t = 0; t < T; ++t) {
      Vec attn(c.q_dim(), 0.0);
      for (size_t h = 0; h < c.num_heads; ++h) {
        const size_t g = h / (c.num_heads / c.num_kv_heads);
        Vec s(t + 1);
        double mx = -1e300;
        for (size_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (size_t d = 0; d < hd; ++d) dot += q[t][h * hd + d] * k[u][g * hd + d];
          s[u] = dot / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[u]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (size_t u = 0; u <= t; ++u) {
          for (size_t d = 0; d < hd; ++d) attn[h * hd + d] += s[u] / sum * v[u][g * hd + d];
        }
      }
      const Vec o = MatVec(w.o_proj, H, c.q_dim(), attn);
      for (size_t i = 0; i < H; ++i) x[t][i] += o[i];
      const Vec xn = Norm(x[t], w.post_norm, c.rms_norm_eps);
      const Vec g = MatVec(w.gate_proj, c.intermediate_size, H, xn);
      const Vec up = MatVec(w.up_proj, c.intermediate_size, H, xn);
      Vec act(c.intermediate_size);
      for (size_t i = 0; i < act.size(); ++i) act[i] = g[i] / (1 + std::exp(-g[i])) * up[i];
      const Vec down = MatVec(w.down_proj, H, c.intermediate_size, act);
      for (size_t i = 0; i < H; ++i) x[t][i] += down[i];
    }
  }
  std::vector<Vec> logits(T);
  for (size_t t = 0; t < T; ++t) {
    logits[t] = MatVec(m.lm_head(), c.vocab_size, H, Norm(x[t], m.final_norm(), c.rms_norm_eps));
  }
  return logits;
}

std::vector<uint32_t> Tokens(size_t n, uint32_t seed, uint32_t vocab) {
  std::vector<uint32_t> t(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& id : t) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<uint32_t>((x >> 33) % vocab);
  }
  return t;
}

KvCache NewCache(const Model& m, uint32_t block_size = 16) {
  const ModelConfig& c = m.config();
  return KvCache(c.num_layers, c.num_kv_heads, c.head_dim, block_size);
}

class DecoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteTinyModel(dir_.path(), 11);
    model_ = LoadOrDie(dir_.path());
    ASSERT_NE(model_, nullptr);
  }
  TempDir dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(DecoderTest, PrefillMatchesNaiveReference) {
  const std::vector<uint32_t> tokens = Tokens(45, 1, 256);
  const std::vector<Vec> ref = Reference(*model_, tokens);
  Decoder decoder(*model_);
  KvCache cache = NewCache(*model_);
  std::vector<float> logits;
  ASSERT_TRUE(decoder.Forward(tokens, &cache, &logits).ok());
  EXPECT_EQ(cache.num_tokens(), 45u);
  EXPECT_LT(RelativeError(logits, ref.back()), 1e-4);
  // The logits vary with the input and are finite.
  std::vector<float> other;
  KvCache cache2 = NewCache(*model_);
  ASSERT_TRUE(decoder.Forward(Tokens(45, 2, 256), &cache2, &other).ok());
  EXPECT_GT(RelativeError(logits, other), 1e-2);
  for (float f : logits) ASSERT_TRUE(std::isfinite(f));
}

TEST_F(DecoderTest, LongPrefillAcrossRowTilesMatchesReference) {
  // More than one 128-row tile, and a second prefill starting mid-page at 100.
  const std::vector<uint32_t> tokens = Tokens(300, 3, 260);
  const std::vector<Vec> ref = Reference(*model_, tokens);
  Decoder decoder(*model_);
  KvCache cache = NewCache(*model_);
  std::vector<float> logits;
  ASSERT_TRUE(decoder.Forward(tokens, &cache, &logits).ok());
  EXPECT_LT(RelativeError(logits, ref.back()), 1e-4);
  KvCache split = NewCache(*model_);
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(tokens).first(100), &split, &logits).ok());
  EXPECT_LT(RelativeError(logits, ref[99]), 1e-4);
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(tokens).subspan(100), &split, &logits).ok());
  EXPECT_LT(RelativeError(logits, ref.back()), 1e-4);
}

TEST_F(DecoderTest, DecodeStepsMatchReference) {
  const std::vector<uint32_t> tokens = Tokens(40, 4, 256);
  const std::vector<Vec> ref = Reference(*model_, tokens);
  Decoder decoder(*model_);
  KvCache cache = NewCache(*model_);
  std::vector<float> logits;
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(tokens).first(25), &cache, &logits).ok());
  EXPECT_LT(RelativeError(logits, ref[24]), 1e-4);
  for (size_t t = 25; t < tokens.size(); ++t) {
    ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(&tokens[t], 1), &cache, &logits).ok());
    EXPECT_LT(RelativeError(logits, ref[t]), 1e-4) << "position " << t;
  }
}

TEST_F(DecoderTest, PrefillFromFilledPagesEqualsFullPrefill) {
  const std::vector<uint32_t> tokens = Tokens(70, 5, 256);
  Decoder decoder(*model_);
  KvCache full = NewCache(*model_);
  std::vector<float> want;
  ASSERT_TRUE(decoder.Forward(tokens, &full, &want).ok());

  // Pages of the first 48 tokens computed elsewhere (as a cache would hold them)...
  KvCache elsewhere = NewCache(*model_);
  std::vector<float> ignored;
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(tokens).first(48), &elsewhere, &ignored).ok());
  // ...placed into a fresh request's cache, and only the rest computed.
  KvCache reused = NewCache(*model_);
  for (size_t p = 0; p < 3; ++p) ASSERT_TRUE(reused.AppendPage(elsewhere.page(p)).ok());
  EXPECT_EQ(reused.num_tokens(), 48u);
  std::vector<float> got;
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(tokens).subspan(48), &reused, &got).ok());
  EXPECT_EQ(reused.num_tokens(), 70u);
  EXPECT_LT(RelativeError(got, want), 1e-5);
  // The pages computed after the reused prefix match too.
  for (size_t p = 0; p < 4; ++p) {
    EXPECT_LT(RelativeError(reused.page(p), full.page(p)), 1e-5) << "page " << p;
  }
}

TEST_F(DecoderTest, AdoptedBlockPayloadsArePagesWithoutACopy) {
  const std::vector<uint32_t> tokens = Tokens(40, 7, 256);
  Decoder decoder(*model_);
  KvCache full = NewCache(*model_);
  std::vector<float> want;
  ASSERT_TRUE(decoder.Forward(tokens, &full, &want).ok());

  // Two pages as a fetched block carries them: a 32-byte header, then the page.
  BufferPool pool(64 << 20);
  const uint32_t layers = model_->config().num_layers;
  KvCache reused(layers, model_->config().num_kv_heads, model_->config().head_dim, 16, &pool);
  for (size_t p = 0; p < 2; ++p) {
    std::string payload(KvCache::kPageHeaderBytes + reused.page_floats() * sizeof(float), 'h');
    std::memcpy(&payload[KvCache::kPageHeaderBytes], full.page(p).data(),
                reused.page_floats() * sizeof(float));
    const char* data = payload.data();
    ASSERT_TRUE(reused.AdoptPage(std::move(payload)).ok());
    EXPECT_EQ(reinterpret_cast<const char*>(reused.page(p).data()),
              data + KvCache::kPageHeaderBytes);  // The very buffer: no copy.
  }
  std::vector<float> got;
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(tokens).subspan(32), &reused, &got).ok());
  EXPECT_LT(RelativeError(got, want), 1e-5);

  EXPECT_EQ(reused.AdoptPage(std::string(100, 'x')).code(), absl::StatusCode::kFailedPrecondition);
  reused.Truncate(32);
  EXPECT_EQ(reused.AdoptPage(std::string(100, 'x')).code(), absl::StatusCode::kInvalidArgument);
  // Dropped pages go back to the pool, and the next cache's pages come from it.
  reused.Truncate(0);
  EXPECT_EQ(pool.stats().pooled_bytes >= 3 * reused.page_floats() * sizeof(float), true);
  KvCache next(layers, model_->config().num_kv_heads, model_->config().head_dim, 16, &pool);
  const uint64_t reused_before = pool.stats().reused;
  next.Extend(20);
  EXPECT_EQ(pool.stats().reused, reused_before + 2);
}

TEST_F(DecoderTest, AppendPageRejectsPartialPagesAndWrongSizes) {
  KvCache cache = NewCache(*model_);
  std::vector<float> page(cache.page_floats(), 0.5f);
  EXPECT_EQ(cache.AppendPage(absl::MakeConstSpan(page).first(10)).code(),
            absl::StatusCode::kInvalidArgument);
  Decoder decoder(*model_);
  std::vector<float> logits;
  ASSERT_TRUE(decoder.Forward(Tokens(5, 6, 256), &cache, &logits).ok());
  EXPECT_EQ(cache.AppendPage(page).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DecoderTest, RejectsBadTokensAndPositions) {
  Decoder decoder(*model_);
  KvCache cache = NewCache(*model_);
  std::vector<float> logits;
  const uint32_t bad = 260;
  EXPECT_EQ(decoder.Forward(absl::MakeConstSpan(&bad, 1), &cache, &logits).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.num_tokens(), 0u);
  EXPECT_EQ(decoder.Forward({}, &cache, &logits).code(), absl::StatusCode::kInvalidArgument);
  std::vector<uint32_t> too_long(4097, 1);
  EXPECT_EQ(decoder.Forward(too_long, &cache, &logits).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArgMaxTest, FirstOfEqualMaxima) {
  const std::vector<float> v = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(ArgMax(v), 1u);
}

// ---- A model small enough to compute by hand: hidden 2, one head of dim 2, one layer,
// identity q/k/v/o projections, a one-unit MLP and lm_head rows [1,0], [0,1], [1,1].

class HandModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ModelConfig c;
    c.hidden_size = 2;
    c.intermediate_size = 1;
    c.num_layers = 1;
    c.num_heads = 1;
    c.num_kv_heads = 1;
    c.head_dim = 2;
    c.vocab_size = 3;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0;  // With head_dim 2 the only frequency is 1 rad per position.
    c.max_position_embeddings = 16;
    const std::vector<float> identity = {1, 0, 0, 1};
    std::map<std::string, HandTensor> t = {
        {"model.embed_tokens.weight", {{3, 2}, {1, 0, 0, 1, 1, 1}}},
        {"model.norm.weight", {{2}, {1, 1}}},
        {"lm_head.weight", {{3, 2}, {1, 0, 0, 1, 1, 1}}},
        {"model.layers.0.input_layernorm.weight", {{2}, {1, 1}}},
        {"model.layers.0.post_attention_layernorm.weight", {{2}, {1, 1}}},
        {"model.layers.0.self_attn.q_proj.weight", {{2, 2}, identity}},
        {"model.layers.0.self_attn.k_proj.weight", {{2, 2}, identity}},
        {"model.layers.0.self_attn.v_proj.weight", {{2, 2}, identity}},
        {"model.layers.0.self_attn.o_proj.weight", {{2, 2}, identity}},
        {"model.layers.0.mlp.gate_proj.weight", {{1, 2}, {1, 0}}},  // gate = xn[0]
        {"model.layers.0.mlp.up_proj.weight", {{1, 2}, {0, 1}}},    // up = xn[1]
        {"model.layers.0.mlp.down_proj.weight", {{2, 1}, {1, 0}}},  // adds to x[0]
    };
    WriteHandModel(dir_.path(), c, t);
    model_ = LoadOrDie(dir_.path());
    ASSERT_NE(model_, nullptr);
  }

  // The MLP, final norm and lm_head by hand, from the residual after attention.
  static std::vector<double> Tail(double x0, double x1) {
    const double eps = 1e-6;
    const double r = std::sqrt((x0 * x0 + x1 * x1) / 2 + eps);
    const double g = x0 / r, u = x1 / r;
    x0 += g / (1 + std::exp(-g)) * u;  // SiLU(gate) * up, through down_proj into x[0].
    const double rf = std::sqrt((x0 * x0 + x1 * x1) / 2 + eps);
    return {x0 / rf, x1 / rf, (x0 + x1) / rf};
  }

  TempDir dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(HandModelTest, RmsNormOfAKnownVector) {
  // Token 2 embeds as [1, 1]: RMS 1, so the normed input is [1, 1]; one token attends only
  // to itself (softmax of one score is 1): attention output = v = [1, 1].
  Decoder decoder(*model_);
  KvCache cache = NewCache(*model_);
  std::vector<float> logits;
  const uint32_t token = 2;
  ASSERT_TRUE(decoder.Forward(absl::MakeConstSpan(&token, 1), &cache, &logits).ok());
  const float n = static_cast<float>(1 / std::sqrt(1 + 1e-6));
  EXPECT_NEAR(cache.K(0, 0)[0], n, 1e-6);  // RoPE at position 0 is the identity.
  EXPECT_NEAR(cache.K(0, 0)[1], n, 1e-6);
  EXPECT_NEAR(cache.V(0, 0)[1], n, 1e-6);
  const std::vector<double> want = Tail(1 + n, 1 + n);
  // x = [2, 2]; MLP: g = u = 1, SiLU(1) * 1 = 0.7310586 added to x[0].
  EXPECT_NEAR(want[0] * std::sqrt(((2.7310586 * 2.7310586) + 4) / 2), 2.7310586, 1e-5);
  EXPECT_LT(RelativeError(logits, want), 1e-5);
}

TEST_F(HandModelTest, AttentionOnTwoTokensByHand) {
  // Tokens [0, 1] embed as [1, 0] and [0, 1]; normed: [a, 0] and [0, a], a = sqrt(2).
  Decoder decoder(*model_);
  KvCache cache = NewCache(*model_);
  std::vector<float> logits;
  const std::vector<uint32_t> tokens = {0, 1};
  ASSERT_TRUE(decoder.Forward(tokens, &cache, &logits).ok());
  const double a = 1 / std::sqrt(0.5 + 1e-6);
  // k0 = [a, 0] unrotated; k1 = [0, a] rotated by 1 rad (rotate-half: (x0, x1) ->
  // (x0 cos - x1 sin, x1 cos + x0 sin)) = [-a sin 1, a cos 1]. V is not rotated.
  EXPECT_NEAR(cache.K(0, 0)[0], a, 1e-5);
  EXPECT_NEAR(cache.K(0, 0)[1], 0, 1e-6);
  EXPECT_NEAR(cache.K(0, 1)[0], -a * std::sin(1.0), 1e-5);
  EXPECT_NEAR(cache.K(0, 1)[1], a * std::cos(1.0), 1e-5);
  EXPECT_NEAR(cache.V(0, 1)[0], 0, 1e-6);
  EXPECT_NEAR(cache.V(0, 1)[1], a, 1e-5);
  // Position 1's query is k1: scores q1.k0 / sqrt(2) = -a^2 sin(1) / sqrt(2) and
  // q1.k1 / sqrt(2) = a^2 / sqrt(2).
  const double s0 = -a * a * std::sin(1.0) / std::sqrt(2.0), s1 = a * a / std::sqrt(2.0);
  const double p0 = std::exp(s0) / (std::exp(s0) + std::exp(s1)), p1 = 1 - p0;
  // Output p0 v0 + p1 v1 = [p0 a, p1 a] joins the residual [0, 1].
  const std::vector<double> want = Tail(p0 * a, 1 + p1 * a);
  EXPECT_LT(RelativeError(logits, want), 1e-5);
  EXPECT_EQ(ArgMax(logits), 2u);
}

}  // namespace
}  // namespace kvcache
