// Deterministic random Llama-family models, so tests, benchmarks and the demo need no
// downloads. Weights come from a counter-based generator (splitmix64 keyed by the seed and
// the tensor's name), uniform with standard deviation 1/sqrt(fan_in); norm weights are
// 1 ± 0.1. Equal (preset, seed) give equal weights whatever the dtype (up to its rounding).
//
// Presets:
//   tiny   hidden 64, 3 layers, 4 heads, 2 KV heads, head_dim 16, intermediate 172,
//          vocab 260 (byte-level: ids 0-255 are bytes), 4096 positions, untied lm_head.
//   bench  hidden 768, 12 layers, 12 heads, 4 KV heads, head_dim 64, intermediate 2048,
//          vocab 32000, 8192 positions, tied embeddings (about 100M parameters).
//
// Thread safety: reentrant.

#ifndef KVCACHE_WORKER_MAKE_MODEL_H_
#define KVCACHE_WORKER_MAKE_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/model.h"
#include "worker/safetensors.h"

namespace kvcache {

struct MakeModelOptions {
  // Seed of the weights. Default: 0.
  uint64_t seed = 0;
  // Element type of the written tensors. Default: f32.
  DType dtype = DType::kF32;
  // Split the tensors over this many model-0000i-of-0000n.safetensors files (the
  // Hugging Face sharded layout). Default: 1 (model.safetensors).
  uint32_t num_shards = 1;
  // Called with (parameters written, parameters in all) after each tensor, on the calling
  // thread (a progress meter: common/progress.h). Default: none.
  std::function<void(uint64_t done, uint64_t total)> on_progress;
};

// The configuration of a preset ("tiny" or "bench"). INVALID_ARGUMENT for other names.
absl::StatusOr<ModelConfig> PresetConfig(absl::string_view preset);

// Writes config.json and the safetensors file(s) of a random model with `config` into
// `out_dir` (created if missing; existing files of the same names are replaced).
//   INVALID_ARGUMENT  zero sizes in `config`, num_shards 0.
//   INTERNAL          a file could not be written.
absl::Status WriteRandomModel(const std::string& out_dir, const ModelConfig& config,
                              const MakeModelOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_MAKE_MODEL_H_
