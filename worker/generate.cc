#include "worker/generate.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/key.h"
#include "nlohmann/json.hpp"
#include "worker/tokenizer.h"

namespace kvcache {

absl::StatusOr<std::vector<uint32_t>> LoadPrompt(PromptKind kind, const std::string& value) {
  switch (kind) {
    case PromptKind::kTokenIds:
      return ParseTokenIds(value);
    case PromptKind::kText:
      return TokenizeBytes(value);
    case PromptKind::kFile: {
      std::ifstream in(value, std::ios::binary);
      if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", value));
      std::ostringstream ss;
      ss << in.rdbuf();
      std::vector<uint32_t> prompt = TokenizeBytes(ss.str());
      if (prompt.empty()) return absl::InvalidArgumentError("the file is empty");
      return prompt;
    }
  }
  return absl::InvalidArgumentError("unknown prompt kind");
}

absl::Status CheckPromptTokens(const ModelConfig& config, const std::vector<uint32_t>& prompt) {
  if (prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  for (uint32_t t : prompt) {
    if (t >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", t, " is out of the model's vocabulary (size ", config.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTokenBudget(const ModelConfig& config, size_t prompt_tokens,
                              uint64_t max_new_tokens) {
  if (prompt_tokens + max_new_tokens > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat(
        max_new_tokens, " new tokens after a prompt of ", prompt_tokens,
        " exceed the model's max_position_embeddings (", config.max_position_embeddings, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerateResult> RunGenerate(InferenceEngine* engine, GenerateRequest request,
                                           const std::string& logits_path) {
  request.return_logits = !logits_path.empty();
  absl::StatusOr<GenerateResult> result = engine->Generate(request);
  if (!result.ok()) return result.status();
  engine->WaitForPublishes();
  if (!logits_path.empty()) {
    std::ofstream out(logits_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(result->logits.data()),
              static_cast<std::streamsize>(result->logits.size() * sizeof(float)));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", logits_path));
  }
  return result;
}

namespace {

// `text` is shown when `byte_text`; `ns` and `block_size` when `ns` is set.
std::string ResultJson(const GenerateResult& result, bool byte_text, const Key* ns,
                       uint32_t block_size, double model_load_ms) {
  nlohmann::ordered_json j;
  j["tokens"] = result.tokens;
  if (byte_text) j["text"] = DetokenizeBytes(result.tokens);
  j["prompt_tokens"] = result.prompt_tokens;
  j["cached_tokens"] = result.cached_tokens;
  j["published_blocks"] = result.published_blocks;
  j["ttft_ms"] = result.ttft_ms;
  j["total_ms"] = result.total_ms;
  j["lookup_ms"] = result.lookup_ms;
  j["fetch_ms"] = result.fetch_ms;
  j["place_ms"] = result.place_ms;
  j["compute_ms"] = result.compute_ms;
  j["publish_ms"] = result.publish_ms;
  if (model_load_ms >= 0) j["model_load_ms"] = model_load_ms;
  if (ns != nullptr) {
    j["block_size"] = block_size;
    j["namespace"] = KeyToHex(*ns);
  }
  if (!result.cache_note.empty()) j["cache_note"] = result.cache_note;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ResultText(const GenerateResult& result, bool byte_text) {
  std::string text = absl::StrCat("tokens: ", absl::StrJoin(result.tokens, ","), "\n");
  if (byte_text) absl::StrAppend(&text, "text: ", DetokenizeBytes(result.tokens), "\n");
  absl::StrAppend(&text,
                  absl::StrFormat("prompt_tokens: %zu cached_tokens: %zu ttft_ms: %.2f "
                                  "total_ms: %.2f\n",
                                  result.prompt_tokens, result.cached_tokens, result.ttft_ms,
                                  result.total_ms));
  return text;
}

bool AllBytes(const std::vector<uint32_t>& tokens) {
  return std::all_of(tokens.begin(), tokens.end(), [](uint32_t t) { return t < 256; });
}

}  // namespace

std::string GenerateResultJson(const GenerateResult& result, const InferenceEngine& engine,
                               uint32_t block_size, double model_load_ms) {
  return ResultJson(result, engine.model().config().vocab_size >= kByteVocabulary,
                    &engine.namespace_id(), block_size, model_load_ms);
}

std::string GenerateResultText(const GenerateResult& result, const InferenceEngine& engine) {
  return ResultText(result, engine.model().config().vocab_size >= kByteVocabulary);
}

std::string RemoteGenerateResultJson(const GenerateResult& result) {
  return ResultJson(result, AllBytes(result.tokens), nullptr, 0, -1);
}

std::string RemoteGenerateResultText(const GenerateResult& result) {
  return ResultText(result, AllBytes(result.tokens));
}

}  // namespace kvcache
