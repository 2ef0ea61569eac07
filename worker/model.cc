#include "worker/model.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/key.h"
#include "nlohmann/json.hpp"

namespace kvcache {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

absl::Status ConfigError(absl::string_view file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
}

// Reads a required (or, with `fallback`, optional) positive integer key.
absl::Status GetUint(const Json& j, const char* key, absl::string_view file, uint32_t* out,
                     const uint32_t* fallback = nullptr) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback != nullptr) {
      *out = *fallback;
      return absl::OkStatus();
    }
    return ConfigError(file, absl::StrCat("missing key \"", key, "\""));
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1ll << 31)) {
    return ConfigError(file, absl::StrCat("key \"", key, "\" must be a positive integer"));
  }
  *out = static_cast<uint32_t>(it->get<int64_t>());
  return absl::OkStatus();
}

absl::Status GetNumber(const Json& j, const char* key, absl::string_view file, double* out,
                       const double* fallback = nullptr) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback != nullptr) {
      *out = *fallback;
      return absl::OkStatus();
    }
    return ConfigError(file, absl::StrCat("missing key \"", key, "\""));
  }
  if (!it->is_number() || it->get<double>() <= 0) {
    return ConfigError(file, absl::StrCat("key \"", key, "\" must be a positive number"));
  }
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Incremental SHA-256 (OpenSSL EVP).
class Sha256Hasher {
 public:
  Sha256Hasher() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }
  void Update(absl::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  Key Finish() {
    Key key;
    EVP_DigestFinal_ex(ctx_, key.bytes.data(), nullptr);
    return key;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Frames one file into the weights digest: "<name>\n<size>\n<bytes>".
void HashFile(Sha256Hasher* h, absl::string_view name, absl::string_view bytes) {
  h->Update(absl::StrCat(name, "\n", bytes.size(), "\n"));
  h->Update(bytes);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view text, absl::string_view file) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ConfigError(file, "not valid JSON");
  if (!j.is_object()) return ConfigError(file, "not a JSON object");
  ModelConfig c;
  absl::Status s;
  if (!(s = GetUint(j, "hidden_size", file, &c.hidden_size)).ok()) return s;
  if (!(s = GetUint(j, "intermediate_size", file, &c.intermediate_size)).ok()) return s;
  if (!(s = GetUint(j, "num_hidden_layers", file, &c.num_layers)).ok()) return s;
  if (!(s = GetUint(j, "num_attention_heads", file, &c.num_heads)).ok()) return s;
  // Hugging Face's LlamaConfig defaults: KV heads = heads (no GQA), head_dim = hidden/heads.
  if (!(s = GetUint(j, "num_key_value_heads", file, &c.num_kv_heads, &c.num_heads)).ok()) return s;
  const uint32_t default_head_dim = c.hidden_size / c.num_heads;
  if (!(s = GetUint(j, "head_dim", file, &c.head_dim, &default_head_dim)).ok()) return s;
  if (!(s = GetUint(j, "vocab_size", file, &c.vocab_size)).ok()) return s;
  if (!(s = GetUint(j, "max_position_embeddings", file, &c.max_position_embeddings)).ok()) {
    return s;
  }
  double eps;
  if (!(s = GetNumber(j, "rms_norm_eps", file, &eps)).ok()) return s;
  c.rms_norm_eps = static_cast<float>(eps);
  const double default_theta = 10000.0;
  if (!(s = GetNumber(j, "rope_theta", file, &c.rope_theta, &default_theta)).ok()) return s;

  if (auto it = j.find("tie_word_embeddings"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      return ConfigError(file, "key \"tie_word_embeddings\" must be a boolean");
    c.tie_word_embeddings = it->get<bool>();
  }
  if (auto it = j.find("torch_dtype"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return ConfigError(file, "key \"torch_dtype\" must be a string");
    c.torch_dtype = it->get<std::string>();
  }
  if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "silu") {
      return ConfigError(file, "key \"hidden_act\": only \"silu\" (SwiGLU) is supported");
    }
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    return ConfigError(file, "key \"rope_scaling\": RoPE scaling is not supported");
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return ConfigError(
        file, absl::StrCat("num_attention_heads (", c.num_heads,
                           ") is not a multiple of num_key_value_heads (", c.num_kv_heads, ")"));
  }
  if (c.head_dim == 0 || c.head_dim % 2 != 0) {
    return ConfigError(file, absl::StrCat("head_dim (", c.head_dim, ") must be even and > 0"));
  }
  return c;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  return j.dump(2) + "\n";
}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a model folder (no such directory)"));
  }
  std::unique_ptr<Model> model(new Model());
  model->dir_ = dir;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  absl::StatusOr<std::string> config_text = ReadFile(config_path);
  if (!config_text.ok()) return config_text.status();
  absl::StatusOr<ModelConfig> config = ParseModelConfig(*config_text, config_path);
  if (!config.ok()) return config.status();
  model->config_ = *config;
  const ModelConfig& c = model->config_;

  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.size() > 12 &&
        name.compare(name.size() - 12, 12, ".safetensors") == 0) {
      names.push_back(name);
    }
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat(dir, ": ", ec.message()));
  if (names.empty()) return absl::NotFoundError(absl::StrCat(dir, ": no *.safetensors file"));
  std::sort(names.begin(), names.end());

  Sha256Hasher hasher;
  hasher.Update("kvcache-weights-v1\n");
  HashFile(&hasher, "config.json", *config_text);
  struct Located {
    const TensorInfo* info;
    const SafetensorsFile* file;
  };
  std::unordered_map<std::string, Located> index;
  for (const std::string& name : names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open((fs::path(dir) / name).string());
    if (!file.ok()) return file.status();
    HashFile(&hasher, name, (*file)->bytes());
    for (const auto& [tensor, info] : (*file)->tensors()) {
      auto [it, inserted] = index.emplace(tensor, Located{&info, file->get()});
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", tensor, " is in both ", it->second.file->path(), " and ", (*file)->path()));
      }
    }
    model->files_.push_back(std::move(*file));
  }
  model->weights_digest_ = KeyToHex(hasher.Finish());

  absl::Status status;
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape) -> const float* {
    if (!status.ok()) return nullptr;
    auto it = index.find(name);
    if (it == index.end()) {
      status = absl::NotFoundError(
          absl::StrCat("tensor ", name, " not found in any *.safetensors file of ", dir));
      return nullptr;
    }
    const TensorInfo& info = *it->second.info;
    const std::string& path = it->second.file->path();
    if (!info.dtype.has_value()) {
      status =
          absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", name, ": unsupported dtype ",
                                                  info.dtype_name, " (expected F32, F16 or BF16)"));
      return nullptr;
    }
    if (info.shape != shape) {
      status = absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", name, " has shape ",
                                                       ShapeString(info.shape), ", expected ",
                                                       ShapeString(shape)));
      return nullptr;
    }
    const size_t count = info.num_bytes / ElementBytes(*info.dtype);
    if (*info.dtype == DType::kF32 &&
        reinterpret_cast<uintptr_t>(info.data) % alignof(float) == 0) {
      return reinterpret_cast<const float*>(info.data);
    }
    std::vector<float>& out = model->converted_.emplace_back(count);
    ConvertToFloat(*info.dtype, info.data, count, out.data());
    return out.data();
  };

  const int64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  model->embed_tokens_ = tensor("model.embed_tokens.weight", {vocab, hidden});
  model->final_norm_ = tensor("model.norm.weight", {hidden});
  model->lm_head_ =
      c.tie_word_embeddings ? model->embed_tokens_ : tensor("lm_head.weight", {vocab, hidden});
  model->layers_.resize(c.num_layers);
  for (uint32_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    LayerWeights& l = model->layers_[i];
    l.input_norm = tensor(p + "input_layernorm.weight", {hidden});
    l.q_proj = tensor(p + "self_attn.q_proj.weight", {q_dim, hidden});
    l.k_proj = tensor(p + "self_attn.k_proj.weight", {kv_dim, hidden});
    l.v_proj = tensor(p + "self_attn.v_proj.weight", {kv_dim, hidden});
    l.o_proj = tensor(p + "self_attn.o_proj.weight", {hidden, q_dim});
    l.post_norm = tensor(p + "post_attention_layernorm.weight", {hidden});
    l.gate_proj = tensor(p + "mlp.gate_proj.weight", {inter, hidden});
    l.up_proj = tensor(p + "mlp.up_proj.weight", {inter, hidden});
    l.down_proj = tensor(p + "mlp.down_proj.weight", {hidden, inter});
  }
  if (!status.ok()) return status;
  return model;
}

Model::~Model() = default;

NamespaceDescription Model::Namespace(uint32_t block_size, absl::string_view cache_salt) const {
  NamespaceDescription d;
  d.architecture = "llama";
  d.weights_digest = weights_digest_;
  d.dtype = "f32";
  d.num_layers = config_.num_layers;
  d.num_kv_heads = config_.num_kv_heads;
  d.head_dim = config_.head_dim;
  d.rope_theta = config_.rope_theta;
  d.block_size = block_size;
  d.cache_salt = std::string(cache_salt);
  return d;
}

}  // namespace kvcache
