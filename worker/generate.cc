#include "worker/generate.h"

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

std::string GenerateResultJson(const GenerateResult& result, const InferenceEngine& engine,
                               uint32_t block_size) {
  nlohmann::ordered_json j;
  j["tokens"] = result.tokens;
  if (engine.model().config().vocab_size >= kByteVocabulary) {
    j["text"] = DetokenizeBytes(result.tokens);
  }
  j["prompt_tokens"] = result.prompt_tokens;
  j["cached_tokens"] = result.cached_tokens;
  j["published_blocks"] = result.published_blocks;
  j["ttft_ms"] = result.ttft_ms;
  j["total_ms"] = result.total_ms;
  j["block_size"] = block_size;
  j["namespace"] = KeyToHex(engine.namespace_id());
  if (!result.cache_note.empty()) j["cache_note"] = result.cache_note;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string GenerateResultText(const GenerateResult& result, const InferenceEngine& engine) {
  std::string text = absl::StrCat("tokens: ", absl::StrJoin(result.tokens, ","), "\n");
  if (engine.model().config().vocab_size >= kByteVocabulary) {
    absl::StrAppend(&text, "text: ", DetokenizeBytes(result.tokens), "\n");
  }
  absl::StrAppend(&text,
                  absl::StrFormat("prompt_tokens: %zu cached_tokens: %zu ttft_ms: %.2f "
                                  "total_ms: %.2f\n",
                                  result.prompt_tokens, result.cached_tokens, result.ttft_ms,
                                  result.total_ms));
  return text;
}

}  // namespace kvcache
