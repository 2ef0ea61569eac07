// The `kvcache-worker generate` operation as a library: read a prompt from where the user
// gave it, check a request against the model, run it to completion (publishing before it
// returns), write the logits, and render the result as JSON or text. kvcache-worker's main
// only maps flags to these calls and prints what they return; tests call them directly.
//
// Thread safety: the functions are stateless; RunGenerate uses the engine as Generate does.

#ifndef KVCACHE_WORKER_GENERATE_H_
#define KVCACHE_WORKER_GENERATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine.h"
#include "worker/model.h"

namespace kvcache {

// Where a prompt comes from.
enum class PromptKind {
  kTokenIds,  // `value` is a comma-separated list of token ids, e.g. "1,2,3".
  kText,      // `value` is text, tokenized byte by byte.
  kFile,      // `value` is a path; the file's bytes are tokenized byte by byte.
};

// The prompt's token ids.
//   INVALID_ARGUMENT  ids that do not parse; an empty file.
//   NOT_FOUND         the file cannot be read.
absl::StatusOr<std::vector<uint32_t>> LoadPrompt(PromptKind kind, const std::string& value);

// Checks that every prompt token is in the model's vocabulary (INVALID_ARGUMENT if not).
absl::Status CheckPromptTokens(const ModelConfig& config, const std::vector<uint32_t>& prompt);

// Checks that the prompt and the generated tokens fit the model's positions
// (INVALID_ARGUMENT if not).
absl::Status CheckTokenBudget(const ModelConfig& config, size_t prompt_tokens,
                              uint64_t max_new_tokens);

// Generates, waits until the new blocks are published (a one-shot command publishes before
// it exits) and, when `logits_path` is not empty, writes the logits rows there as
// little-endian float32. Errors: those of InferenceEngine::Generate; INTERNAL when the
// logits cannot be written.
absl::StatusOr<GenerateResult> RunGenerate(InferenceEngine* engine, GenerateRequest request,
                                           const std::string& logits_path);

// One JSON object (one line): tokens, text (byte-level models), prompt_tokens,
// cached_tokens, published_blocks, ttft_ms, total_ms, where ttft_ms went (lookup_ms,
// fetch_ms, place_ms, compute_ms; GenerateResult has their meanings) and publish_ms,
// model_load_ms (loading the model before the request, not part of ttft_ms; omitted when
// negative), block_size, namespace, and cache_note when there is one. Invalid UTF-8 in text
// is replaced.
std::string GenerateResultJson(const GenerateResult& result, const InferenceEngine& engine,
                               uint32_t block_size, double model_load_ms = -1);

// The text form: "tokens: ...", "text: ..." (byte-level models), and the figures, each line
// ending in '\n'. The cache note is not included (it is for stderr).
std::string GenerateResultText(const GenerateResult& result, const InferenceEngine& engine);

// The same for a result a serving worker returned (`generate --worker`): no model here, so
// text is shown when every token is a byte, and there is no namespace or block_size.
std::string RemoteGenerateResultJson(const GenerateResult& result);
std::string RemoteGenerateResultText(const GenerateResult& result);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_GENERATE_H_
