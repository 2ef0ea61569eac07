// Helpers for the worker's tests: tiny models on disk, hand-made models, and comparisons.

#ifndef KVCACHE_TESTS_WORKER_WORKER_TEST_UTIL_H_
#define KVCACHE_TESTS_WORKER_WORKER_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "worker/make_model.h"
#include "worker/model.h"
#include "worker/safetensors.h"

namespace kvcache {
namespace testing {

// Writes the tiny preset (seed, dtype) into `dir`.
inline void WriteTinyModel(const std::string& dir, uint64_t seed = 1, DType dtype = DType::kF32,
                           uint32_t shards = 1) {
  absl::StatusOr<ModelConfig> config = PresetConfig("tiny");
  ASSERT_TRUE(config.ok());
  MakeModelOptions options;
  options.seed = seed;
  options.dtype = dtype;
  options.num_shards = shards;
  ASSERT_TRUE(WriteRandomModel(dir, *config, options).ok());
}

inline std::unique_ptr<Model> LoadOrDie(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

// A tensor given by value, for hand-made models.
struct HandTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Writes config.json and model.safetensors with exactly `tensors` (f32).
inline void WriteHandModel(const std::string& dir, const ModelConfig& config,
                           const std::map<std::string, HandTensor>& tensors,
                           const std::string& file = "model.safetensors") {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << ModelConfigToJson(config);
  std::vector<TensorSpec> specs;
  std::vector<const HandTensor*> values;
  for (const auto& [name, t] : tensors) {
    specs.push_back(TensorSpec{name, DType::kF32, t.shape});
    values.push_back(&t);
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/" + file, specs, [&](size_t i, std::vector<float>* data) {
                *data = values[i]->data;
              }).ok());
}

// All tensors of a model of `c` with every weight `value` and norms 1 (for loader tests).
inline std::map<std::string, HandTensor> ConstantTensors(const ModelConfig& c, float value) {
  std::map<std::string, HandTensor> t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float v) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    t[name] = HandTensor{shape, std::vector<float>(n, v)};
  };
  const int64_t h = c.hidden_size, i = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  add("model.embed_tokens.weight", {c.vocab_size, h}, value);
  add("model.norm.weight", {h}, 1.0f);
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h}, value);
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {h}, 1.0f);
    add(p + "post_attention_layernorm.weight", {h}, 1.0f);
    add(p + "self_attn.q_proj.weight", {q, h}, value);
    add(p + "self_attn.k_proj.weight", {kv, h}, value);
    add(p + "self_attn.v_proj.weight", {kv, h}, value);
    add(p + "self_attn.o_proj.weight", {h, q}, value);
    add(p + "mlp.gate_proj.weight", {i, h}, value);
    add(p + "mlp.up_proj.weight", {i, h}, value);
    add(p + "mlp.down_proj.weight", {h, i}, value);
  }
  return t;
}

// max |a - b| / max |b|: a relative error robust to entries near zero.
inline double RelativeError(absl::Span<const float> a, absl::Span<const double> b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return scale == 0 ? diff : diff / scale;
}

inline double RelativeError(absl::Span<const float> a, absl::Span<const float> b) {
  std::vector<double> bd(b.begin(), b.end());
  return RelativeError(a, absl::MakeConstSpan(bd));
}

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_WORKER_WORKER_TEST_UTIL_H_
