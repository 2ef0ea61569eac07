// kvcache-worker: the inference worker's command line. Flag parsing only; the work is in
// kvcache_worker (worker/*.h).
//
//   kvcache-worker make-model --out=DIR --preset=tiny|bench [--seed=N] [--dtype=f32|f16|bf16]
//   kvcache-worker generate --model=DIR [--cache=HOST:PORT]
//       (--prompt-ids=1,2,3 | --prompt-text=TEXT | --prompt-file=PATH) --max-new-tokens=N
//       [--dump-logits=PATH] [--json] [--block-size=16] [--cache-salt=S]
//   kvcache-worker serve --model=DIR [--cache=HOST:PORT] [--listen=HOST:PORT]

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/cache_client.h"
#include "common/cli.h"
#include "common/malloc_tuning.h"
#include "nlohmann/json.hpp"
#include "worker/blas.h"
#include "worker/engine.h"
#include "worker/inference_service.h"
#include "worker/make_model.h"
#include "worker/model.h"
#include "worker/tokenizer.h"

ABSL_FLAG(std::string, out, "", "make-model: folder to write the model into");
ABSL_FLAG(std::string, preset, "tiny", "make-model: tiny or bench");
ABSL_FLAG(uint64_t, seed, 0, "make-model: seed of the random weights");
ABSL_FLAG(std::string, dtype, "f32", "make-model: f32, f16 or bf16");
ABSL_FLAG(uint32_t, shards, 1, "make-model: number of safetensors files");
ABSL_FLAG(std::string, model, "", "generate, serve: model folder (config.json + *.safetensors)");
ABSL_FLAG(std::string, cache, "", "generate, serve: cache server HOST:PORT (empty: no sharing)");
ABSL_FLAG(std::string, prompt_ids, "", "generate: prompt as token ids, e.g. 1,2,3");
ABSL_FLAG(std::string, prompt_text, "", "generate: prompt as text (byte-level tokens)");
ABSL_FLAG(std::string, prompt_file, "", "generate: prompt as the bytes of a file");
ABSL_FLAG(int64_t, max_new_tokens, 16, "generate: tokens to generate");
ABSL_FLAG(std::string, dump_logits, "", "generate: write the logits rows (LE float32) here");
ABSL_FLAG(bool, json, false, "generate: print one JSON object");
ABSL_FLAG(uint32_t, block_size, 16, "generate, serve: tokens per KV page and cache block");
ABSL_FLAG(std::string, cache_salt, "", "generate, serve: tenant salt of the block namespace");
ABSL_FLAG(int64_t, cache_timeout_ms, 2000, "generate, serve: deadline of each cache call");
ABSL_FLAG(std::string, listen, "127.0.0.1:50061", "serve: gRPC address (port 0: any free)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "serve: how long in-flight requests may run on after SIGTERM");

namespace kvcache {
namespace {

int Fail(absl::string_view message) {
  std::fprintf(stderr, "kvcache-worker: %s\n", std::string(message).c_str());
  return 1;
}

int MakeModelCommand() {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Fail("--out is required");
  absl::StatusOr<ModelConfig> config = PresetConfig(absl::GetFlag(FLAGS_preset));
  if (!config.ok()) return Fail(absl::StrCat("--preset: ", config.status().message()));
  absl::StatusOr<DType> dtype = ParseDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return Fail(absl::StrCat("--dtype: ", dtype.status().message()));
  MakeModelOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.dtype = *dtype;
  options.num_shards = absl::GetFlag(FLAGS_shards);
  if (options.num_shards == 0) return Fail("--shards must be at least 1");
  absl::Status s = WriteRandomModel(out, *config, options);
  if (!s.ok()) return Fail(absl::StrCat("--out: ", s.message()));
  std::printf("wrote %s model (%s, seed %llu) to %s\n", absl::GetFlag(FLAGS_preset).c_str(),
              ShortName(*dtype), static_cast<unsigned long long>(options.seed), out.c_str());
  return 0;
}

// The engine of --model, --cache, --block-size, --cache-salt, --cache-timeout-ms; errors name
// the flag. `client` receives the cache client (which must outlive the engine).
absl::StatusOr<std::unique_ptr<InferenceEngine>> NewEngine(std::unique_ptr<CacheClient>* client) {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  if (absl::GetFlag(FLAGS_block_size) == 0) {
    return absl::InvalidArgumentError("--block-size must be > 0");
  }
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(model_dir);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat("--model: ", model.status().message()));
  }
  if (!absl::GetFlag(FLAGS_cache).empty()) {
    if (absl::GetFlag(FLAGS_cache_timeout_ms) <= 0) {
      return absl::InvalidArgumentError("--cache-timeout-ms must be > 0");
    }
    CacheClientOptions options;
    options.target = absl::GetFlag(FLAGS_cache);
    options.timeout = absl::Milliseconds(absl::GetFlag(FLAGS_cache_timeout_ms));
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(options);
    if (!c.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--cache: ", c.status().message()));
    }
    *client = *std::move(c);
  }
  EngineOptions options;
  options.block_size = absl::GetFlag(FLAGS_block_size);
  options.cache_salt = absl::GetFlag(FLAGS_cache_salt);
  options.cache = client->get();
  return InferenceEngine::Create(*std::move(model), options);
}

int ServeCommand() {
  BlockTerminationSignals();  // Before any thread starts: the main thread waits for them.
  std::unique_ptr<CacheClient> client;
  absl::StatusOr<std::unique_ptr<InferenceEngine>> engine = NewEngine(&client);
  if (!engine.ok()) return Fail(engine.status().message());
  InferenceServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<std::unique_ptr<InferenceServer>> server =
      InferenceServer::Start(engine->get(), options);
  if (!server.ok()) return Fail(absl::StrCat("--listen: ", server.status().message()));
  std::printf("kvcache-worker listening on %s | model %s | cache %s\n",
              (*server)->address().c_str(), absl::GetFlag(FLAGS_model).c_str(),
              client ? absl::GetFlag(FLAGS_cache).c_str() : "none");
  std::fflush(stdout);
  const int sig = WaitForTerminationSignal();
  std::printf("kvcache-worker: signal %d, shutting down\n", sig);
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  (*engine)->WaitForPublishes();
  return 0;
}

int GenerateCommand() {
  if (absl::GetFlag(FLAGS_model).empty()) return Fail("--model is required");
  const int prompts = !absl::GetFlag(FLAGS_prompt_ids).empty() +
                      !absl::GetFlag(FLAGS_prompt_text).empty() +
                      !absl::GetFlag(FLAGS_prompt_file).empty();
  if (prompts != 1) {
    return Fail("give exactly one of --prompt-ids, --prompt-text, --prompt-file");
  }
  const int64_t max_new = absl::GetFlag(FLAGS_max_new_tokens);
  if (max_new < 0 || max_new > (1 << 20)) return Fail("--max-new-tokens must be in [0, 2^20]");
  GenerateRequest request;
  request.max_new_tokens = static_cast<uint32_t>(max_new);
  request.return_logits = !absl::GetFlag(FLAGS_dump_logits).empty();
  const std::string prompt_flag = !absl::GetFlag(FLAGS_prompt_ids).empty()    ? "--prompt-ids"
                                  : !absl::GetFlag(FLAGS_prompt_text).empty() ? "--prompt-text"
                                                                              : "--prompt-file";
  if (!absl::GetFlag(FLAGS_prompt_ids).empty()) {
    absl::StatusOr<std::vector<uint32_t>> ids = ParseTokenIds(absl::GetFlag(FLAGS_prompt_ids));
    if (!ids.ok()) return Fail(absl::StrCat("--prompt-ids: ", ids.status().message()));
    request.prompt = *std::move(ids);
  } else if (!absl::GetFlag(FLAGS_prompt_text).empty()) {
    request.prompt = TokenizeBytes(absl::GetFlag(FLAGS_prompt_text));
  } else {
    std::ifstream in(absl::GetFlag(FLAGS_prompt_file), std::ios::binary);
    if (!in)
      return Fail(absl::StrCat("--prompt-file: cannot read ", absl::GetFlag(FLAGS_prompt_file)));
    std::ostringstream ss;
    ss << in.rdbuf();
    request.prompt = TokenizeBytes(ss.str());
    if (request.prompt.empty()) return Fail("--prompt-file: the file is empty");
  }

  std::unique_ptr<CacheClient> client;
  absl::StatusOr<std::unique_ptr<InferenceEngine>> engine = NewEngine(&client);
  if (!engine.ok()) return Fail(engine.status().message());
  const uint32_t vocab = (*engine)->model().config().vocab_size;

  absl::StatusOr<GenerateResult> result = (*engine)->Generate(request);
  if (!result.ok()) {
    // Request errors are about the prompt or the token budget: name the flag.
    const std::string message(result.status().message());
    const bool budget = message.find("max_new_tokens") != std::string::npos;
    return Fail(absl::StrCat(budget ? "--max-new-tokens" : prompt_flag, ": ", message));
  }
  (*engine)->WaitForPublishes();  // A one-shot command publishes before it exits.

  if (request.return_logits) {
    const std::string path = absl::GetFlag(FLAGS_dump_logits);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(result->logits.data()),
              static_cast<std::streamsize>(result->logits.size() * sizeof(float)));
    if (!out) return Fail(absl::StrCat("--dump-logits: cannot write ", path));
  }
  const bool byte_level = vocab >= kByteVocabulary;
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::ordered_json j;
    j["tokens"] = result->tokens;
    if (byte_level) {
      // Invalid UTF-8 is replaced rather than failing the dump.
      j["text"] = DetokenizeBytes(result->tokens);
    }
    j["prompt_tokens"] = result->prompt_tokens;
    j["cached_tokens"] = result->cached_tokens;
    j["published_blocks"] = result->published_blocks;
    j["ttft_ms"] = result->ttft_ms;
    j["total_ms"] = result->total_ms;
    j["block_size"] = absl::GetFlag(FLAGS_block_size);
    j["namespace"] = KeyToHex((*engine)->namespace_id());
    if (!result->cache_note.empty()) j["cache_note"] = result->cache_note;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("tokens: %s\n", absl::StrJoin(result->tokens, ",").c_str());
    if (byte_level) std::printf("text: %s\n", DetokenizeBytes(result->tokens).c_str());
    std::printf("prompt_tokens: %zu cached_tokens: %zu ttft_ms: %.2f total_ms: %.2f\n",
                result->prompt_tokens, result->cached_tokens, result->ttft_ms, result->total_ms);
    if (!result->cache_note.empty()) {
      std::fprintf(stderr, "kvcache-worker: cache: %s\n", result->cache_note.c_str());
    }
  }
  return 0;
}

}  // namespace
}  // namespace kvcache

int main(int argc, char** argv) {
  kvcache::MaybeReexecForBlas(argv);  // Before anything else: see worker/blas.h.
  kvcache::TuneMallocForLargeBuffers();
  absl::SetProgramUsageMessage(
      "kvcache-worker make-model --out=DIR --preset=tiny|bench [--seed=N] [--dtype=f32|f16|bf16]\n"
      "kvcache-worker generate --model=DIR [--cache=HOST:PORT] (--prompt-ids=1,2,3 | "
      "--prompt-text=TEXT | --prompt-file=PATH) --max-new-tokens=N [--dump-logits=PATH] "
      "[--json] [--block-size=16]\n"
      "kvcache-worker serve --model=DIR [--cache=HOST:PORT] [--listen=HOST:PORT]");
  const std::vector<std::string> args = kvcache::ParseFlags(argc, argv);
  if (args.size() != 2) {
    return kvcache::Fail("expected one subcommand: make-model, generate or serve (see --help)");
  }
  if (args[1] == "make-model") return kvcache::MakeModelCommand();
  if (args[1] == "generate") return kvcache::GenerateCommand();
  if (args[1] == "serve") return kvcache::ServeCommand();
  return kvcache::Fail(absl::StrCat("unknown subcommand \"", args[1], "\""));
}
