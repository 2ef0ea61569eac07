#include "worker/make_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvcache {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Kinds of initialization.
enum class Init { kLinear, kNorm, kEmbedding };

struct PlannedTensor {
  TensorSpec spec;
  Init init;
  uint32_t fan_in;
};

void Fill(const std::string& name, Init init, uint32_t fan_in, uint64_t seed, size_t count,
          std::vector<float>* out) {
  out->resize(count);
  const uint64_t stream = SplitMix64(seed ^ Fnv1a(name));
  // Uniform(-a, a) has standard deviation a / sqrt(3).
  const double a = init == Init::kNorm ? 0.1 : std::sqrt(3.0 / static_cast<double>(fan_in));
  const double offset = init == Init::kNorm ? 1.0 : 0.0;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t r = SplitMix64(stream + i);
    const double u = static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
    (*out)[i] = static_cast<float>(offset + a * (2.0 * u - 1.0));
  }
}

}  // namespace

absl::StatusOr<ModelConfig> PresetConfig(absl::string_view preset) {
  ModelConfig c;
  if (preset == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 172;
    c.num_layers = 3;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 260;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0;
    c.max_position_embeddings = 4096;
    c.tie_word_embeddings = false;
    return c;
  }
  if (preset == "bench") {
    c.hidden_size = 768;
    c.intermediate_size = 2048;
    c.num_layers = 12;
    c.num_heads = 12;
    c.num_kv_heads = 4;
    c.head_dim = 64;
    c.vocab_size = 32000;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0;
    c.max_position_embeddings = 8192;
    c.tie_word_embeddings = true;
    return c;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown preset \"", preset, "\" (expected tiny or bench)"));
}

absl::Status WriteRandomModel(const std::string& out_dir, const ModelConfig& config_in,
                              const MakeModelOptions& options) {
  ModelConfig c = config_in;
  if (c.hidden_size == 0 || c.intermediate_size == 0 || c.num_layers == 0 || c.num_heads == 0 ||
      c.num_kv_heads == 0 || c.head_dim == 0 || c.vocab_size == 0) {
    return absl::InvalidArgumentError("model config has a zero size");
  }
  if (options.num_shards == 0) return absl::InvalidArgumentError("num_shards must be > 0");
  c.torch_dtype = TorchName(options.dtype);
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  // A model written before into this folder (another --shards count) must not leave shard
  // files behind: the loader reads every *.safetensors file of the folder.
  for (const std::filesystem::directory_entry& entry :
       std::filesystem::directory_iterator(out_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool shard = name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
    if (shard || name == "model.safetensors.index.json") {
      std::filesystem::remove(entry.path(), ec);
      if (ec) {
        return absl::InternalError(
            absl::StrCat(entry.path().string(), ": cannot remove: ", ec.message()));
      }
    }
  }

  const int64_t hidden = c.hidden_size, inter = c.intermediate_size;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  std::vector<PlannedTensor> plan;
  auto add = [&](std::string name, std::vector<int64_t> shape, Init init, uint32_t fan_in) {
    plan.push_back({TensorSpec{std::move(name), options.dtype, std::move(shape)}, init, fan_in});
  };
  // Embeddings are scaled like a linear layer of fan-in `hidden`, so that tied logits
  // (final_norm(x) · E) have unit scale.
  add("model.embed_tokens.weight", {c.vocab_size, hidden}, Init::kEmbedding, c.hidden_size);
  for (uint32_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    add(p + "input_layernorm.weight", {hidden}, Init::kNorm, 1);
    add(p + "self_attn.q_proj.weight", {q_dim, hidden}, Init::kLinear, c.hidden_size);
    add(p + "self_attn.k_proj.weight", {kv_dim, hidden}, Init::kLinear, c.hidden_size);
    add(p + "self_attn.v_proj.weight", {kv_dim, hidden}, Init::kLinear, c.hidden_size);
    add(p + "self_attn.o_proj.weight", {hidden, q_dim}, Init::kLinear, c.q_dim());
    add(p + "post_attention_layernorm.weight", {hidden}, Init::kNorm, 1);
    add(p + "mlp.gate_proj.weight", {inter, hidden}, Init::kLinear, c.hidden_size);
    add(p + "mlp.up_proj.weight", {inter, hidden}, Init::kLinear, c.hidden_size);
    add(p + "mlp.down_proj.weight", {hidden, inter}, Init::kLinear, c.intermediate_size);
  }
  add("model.norm.weight", {hidden}, Init::kNorm, 1);
  if (!c.tie_word_embeddings) {
    add("lm_head.weight", {c.vocab_size, hidden}, Init::kLinear, c.hidden_size);
  }

  {
    std::ofstream out(std::filesystem::path(out_dir) / "config.json", std::ios::trunc);
    out << ModelConfigToJson(c);
    if (!out) return absl::InternalError(absl::StrCat(out_dir, "/config.json: write failed"));
  }
  uint64_t total_params = 0, done_params = 0;
  for (const PlannedTensor& t : plan) {
    uint64_t count = 1;
    for (int64_t d : t.spec.shape) count *= static_cast<uint64_t>(d);
    total_params += count;
  }
  if (options.on_progress) options.on_progress(0, total_params);
  const size_t n = options.num_shards;
  for (size_t shard = 0; shard < n; ++shard) {
    const size_t begin = plan.size() * shard / n, end = plan.size() * (shard + 1) / n;
    std::vector<TensorSpec> specs;
    for (size_t i = begin; i < end; ++i) specs.push_back(plan[i].spec);
    const std::string file = n == 1
                                 ? "model.safetensors"
                                 : absl::StrFormat("model-%05d-of-%05d.safetensors", shard + 1, n);
    absl::Status s =
        WriteSafetensors((std::filesystem::path(out_dir) / file).string(), specs,
                         [&](size_t i, std::vector<float>* data) {
                           const PlannedTensor& t = plan[begin + i];
                           size_t count = 1;
                           for (int64_t d : t.spec.shape) count *= static_cast<size_t>(d);
                           Fill(t.spec.name, t.init, t.fan_in, options.seed, count, data);
                           done_params += count;
                           if (options.on_progress) options.on_progress(done_params, total_params);
                         });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace kvcache
