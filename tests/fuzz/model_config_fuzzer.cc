// Fuzzes ParseModelConfig (worker/model.h), a model directory's config.json: any text must
// give a config that the worker can size its buffers from, or INVALID_ARGUMENT.

#include <cstdint>
#include <cstdlib>

#include "worker/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<kvcache::ModelConfig> c = kvcache::ParseModelConfig(text, "config.json");
  if (!c.ok()) {
    if (c.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  // What the decoder relies on.
  if (c->hidden_size == 0 || c->num_heads == 0 || c->num_kv_heads == 0 || c->head_dim == 0 ||
      c->head_dim % 2 != 0 || c->num_heads % c->num_kv_heads != 0 || c->vocab_size == 0 ||
      c->num_layers == 0 || !(c->rope_theta > 0)) {
    std::abort();
  }
  (void)kvcache::ModelConfigToJson(*c);
  return 0;
}
