// A Llama-family decoder's configuration and weights, loaded from a Hugging Face style folder:
// config.json plus one or more *.safetensors files with the standard tensor names
// (model.embed_tokens.weight, model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
// model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.layers.{i}.input_layernorm.weight,
// model.layers.{i}.post_attention_layernorm.weight, model.norm.weight, and lm_head.weight
// unless tie_word_embeddings). Weights may be F32, F16 or BF16: F32 tensors are used in place
// from the memory mapping (when 4-byte aligned), F16/BF16 are converted to f32 at load.
//
// Thread safety: a Model is immutable after LoadModel; share it freely between threads.
// See docs/worker.md.

#ifndef KVCACHE_WORKER_MODEL_H_
#define KVCACHE_WORKER_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/block_keys.h"
#include "worker/safetensors.h"

namespace kvcache {

struct ModelConfig {
  uint32_t hidden_size = 0;
  uint32_t intermediate_size = 0;
  uint32_t num_layers = 0;    // num_hidden_layers
  uint32_t num_heads = 0;     // num_attention_heads
  uint32_t num_kv_heads = 0;  // num_key_value_heads
  uint32_t head_dim = 0;      // head_dim, or hidden_size / num_attention_heads
  uint32_t vocab_size = 0;
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000.0;
  uint32_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  std::string torch_dtype = "float32";  // Informational: tensors carry their own dtype.

  uint32_t q_dim() const { return num_heads * head_dim; }
  uint32_t kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses config.json text. `file` names the file in messages.
//   INVALID_ARGUMENT  bad JSON, a missing or mistyped key (named), or inconsistent sizes
//                     (heads not a multiple of KV heads, odd head_dim, zero sizes).
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view json, absl::string_view file);

// config.json text for `config` (architectures LlamaForCausalLM, model_type llama).
std::string ModelConfigToJson(const ModelConfig& config);

// The weights of one decoder layer, row-major f32. Linear weights are [out, in].
struct LayerWeights {
  const float* input_norm = nullptr;  // [hidden]
  const float* q_proj = nullptr;      // [q_dim, hidden]
  const float* k_proj = nullptr;      // [kv_dim, hidden]
  const float* v_proj = nullptr;      // [kv_dim, hidden]
  const float* o_proj = nullptr;      // [hidden, q_dim]
  const float* post_norm = nullptr;   // [hidden]
  const float* gate_proj = nullptr;   // [intermediate, hidden]
  const float* up_proj = nullptr;     // [intermediate, hidden]
  const float* down_proj = nullptr;   // [hidden, intermediate]
};

class Model final {
 public:
  // Loads the folder `dir`.
  //   NOT_FOUND         no config.json, no *.safetensors, or a required tensor is in none
  //                     of the files (the message names the tensor and the folder).
  //   INVALID_ARGUMENT  bad config (named key and file), a tensor with the wrong shape or an
  //                     unsupported dtype (named tensor and file), a truncated or corrupt
  //                     file, a tensor present in two files.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir);

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  // Hex SHA-256 identifying config and weights (see WeightsDigest in docs/worker.md).
  const std::string& weights_digest() const { return weights_digest_; }

  const float* embed_tokens() const { return embed_tokens_; }  // [vocab, hidden]
  const float* final_norm() const { return final_norm_; }      // [hidden]
  const float* lm_head() const { return lm_head_; }            // [vocab, hidden]
  const LayerWeights& layer(uint32_t i) const { return layers_[i]; }

  // The namespace of this model's KV blocks (f32 KV, `block_size` tokens per block).
  NamespaceDescription Namespace(uint32_t block_size, absl::string_view cache_salt) const;

 private:
  Model() = default;

  std::string dir_;
  ModelConfig config_;
  std::string weights_digest_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;  // Keep the mappings alive.
  std::vector<std::vector<float>> converted_;            // F16/BF16/unaligned, as f32.
  const float* embed_tokens_ = nullptr;
  const float* final_norm_ = nullptr;
  const float* lm_head_ = nullptr;
  std::vector<LayerWeights> layers_;
};

}  // namespace kvcache

#endif  // KVCACHE_WORKER_MODEL_H_
