// kvcache-worker: the inference worker's command line. Flag parsing, checking and printing
// only; the work is in kvcache_worker (worker/*.h, the generate operation in
// worker/generate.h).
//
//   kvcache-worker make-model --out=DIR [--preset=tiny|bench] [--seed=0] [--dtype=f32|f16|bf16]
//       [--shards=1]
//   kvcache-worker generate --model=DIR [--cache=HOST:PORT]
//       (--prompt-ids=1,2,3 | --prompt-text=TEXT | --prompt-file=PATH) [--max-new-tokens=16]
//       [--dump-logits=PATH] [--json] [--block-size=16] [--cache-salt=S] [--cache-timeout-ms=2000]
//   kvcache-worker generate --worker=HOST:PORT (--prompt-ids=... | ...) [--max-new-tokens=16]
//       [--json]
//   kvcache-worker serve --model=DIR [--cache=HOST:PORT] [--listen=127.0.0.1:50061]
//       [--block-size=16] [--cache-salt=S] [--cache-timeout-ms=2000] [--shutdown-grace=10s]

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/cache_client.h"
#include "common/cli.h"
#include "common/process_tuning.h"
#include "common/progress.h"
#include "common/signals.h"
#include "common/tls_flags.h"
#include "services/access.h"
#include "worker/blas.h"
#include "worker/engine.h"
#include "worker/generate.h"
#include "worker/inference_service.h"
#include "worker/make_model.h"
#include "worker/model.h"

ABSL_FLAG(std::string, out, "", "make-model: folder to write the model into (required)");
ABSL_FLAG(std::string, preset, "tiny", "make-model: tiny or bench");
ABSL_FLAG(uint64_t, seed, 0, "make-model: seed of the random weights");
ABSL_FLAG(std::string, dtype, "f32", "make-model: f32, f16 or bf16");
ABSL_FLAG(uint32_t, shards, 1, "make-model: number of safetensors files");
ABSL_FLAG(std::string, model, "",
          "generate, serve: model folder, config.json + *.safetensors (required)");
ABSL_FLAG(std::string, cache, "", "generate, serve: cache server HOST:PORT (empty: no sharing)");
ABSL_FLAG(std::string, prompt_ids, "", "generate: prompt as token ids, e.g. 1,2,3");
ABSL_FLAG(std::string, prompt_text, "", "generate: prompt as text (byte-level tokens)");
ABSL_FLAG(std::string, prompt_file, "", "generate: prompt as the bytes of a file");
ABSL_FLAG(int64_t, max_new_tokens, 16, "generate: tokens to generate");
ABSL_FLAG(std::string, dump_logits, "", "generate: write the logits rows (LE float32) here");
ABSL_FLAG(bool, json, false, "generate: print one JSON object");
ABSL_FLAG(std::string, worker, "",
          "generate: run the request on the kvcache-worker serving at HOST:PORT (model "
          "resident there) instead of loading --model here; --tls-ca etc. apply to it");
ABSL_FLAG(uint32_t, block_size, 16, "generate, serve: tokens per KV page and cache block");
ABSL_FLAG(std::string, cache_salt, "", "generate, serve: tenant salt of the block namespace");
ABSL_FLAG(int64_t, cache_timeout_ms, 2000, "generate, serve: deadline of each cache call, ms");
ABSL_FLAG(int, replicas, 1,
          "generate, serve: copies of each block when --cache names several nodes "
          "(host:port,host:port or dns:///name:port); docs/cluster.md");
ABSL_FLAG(std::string, listen, "127.0.0.1:50061",
          "serve: gRPC address, host:port (port 0: any free; a port in use is an error)");
ABSL_FLAG(std::string, auth_tokens, "",
          "serve: the callers file (docs/security.md: token and cert lines; roles and quotas "
          "ignored), re-read on SIGHUP; empty: every caller is anonymous");
ABSL_FLAG(bool, allow_anonymous, false,
          "serve: without --auth-tokens, serve anonymous callers on an address that is not "
          "loopback (refused otherwise)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "serve: drain period after SIGTERM/SIGINT: health answers NOT_SERVING and requests "
          "are still served for this long (a unit is required: 10s, 500ms)");

namespace kvcache {
namespace {

// Prints "kvcache-worker: <reason>" and returns the exit status for `status`.
int Fail(const absl::Status& status) {
  std::fprintf(stderr, "kvcache-worker: %s\n", std::string(status.message()).c_str());
  if (IsUsageError(status)) std::fprintf(stderr, "kvcache-worker --help lists the flags\n");
  return ExitStatusOf(status);
}

// `status`'s message after "<flag>: ": a usage error when the value itself is wrong
// (INVALID_ARGUMENT), else the same code (a file that cannot be read is a failure).
absl::Status FlagError(absl::string_view flag, const absl::Status& status) {
  const std::string message = absl::StrCat(flag, ": ", status.message());
  return absl::IsInvalidArgument(status) ? UsageError(message)
                                         : absl::Status(status.code(), message);
}

int MakeModelCommand() {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Fail(UsageError("--out is required"));
  absl::StatusOr<ModelConfig> config = PresetConfig(absl::GetFlag(FLAGS_preset));
  if (!config.ok()) return Fail(FlagError("--preset", config.status()));
  absl::StatusOr<DType> dtype = ParseDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return Fail(FlagError("--dtype", dtype.status()));
  MakeModelOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.dtype = *dtype;
  options.num_shards = absl::GetFlag(FLAGS_shards);
  if (options.num_shards == 0) return Fail(UsageError("--shards must be at least 1"));
  ProgressOptions po;  // On a terminal only (common/progress.h).
  po.label = "make-model";
  po.unit = "M parameters";
  po.unit_scale = 1000000;
  ProgressMeter progress(po);
  options.on_progress = [&progress](uint64_t done, uint64_t total) {
    progress.SetTotal(total);
    progress.Set(done);
  };
  absl::Status s = WriteRandomModel(out, *config, options);
  progress.Finish();
  if (!s.ok()) return Fail(absl::Status(s.code(), absl::StrCat("--out: ", s.message())));
  std::printf("wrote %s model (%s, seed %llu) to %s\n", absl::GetFlag(FLAGS_preset).c_str(),
              ShortName(*dtype), static_cast<unsigned long long>(options.seed), out.c_str());
  return kExitOk;
}

// Checks the flags NewEngine uses, before anything is loaded or connected.
absl::Status CheckEngineFlags() {
  if (absl::GetFlag(FLAGS_model).empty()) return UsageError("--model is required");
  if (absl::GetFlag(FLAGS_block_size) == 0) return UsageError("--block-size must be > 0");
  if (!absl::GetFlag(FLAGS_cache).empty() && absl::GetFlag(FLAGS_cache_timeout_ms) <= 0) {
    return UsageError("--cache-timeout-ms must be > 0");
  }
  if (absl::GetFlag(FLAGS_replicas) < 1) return UsageError("--replicas must be >= 1");
  return absl::OkStatus();
}

// The engine of --model, --cache, --block-size, --cache-salt, --cache-timeout-ms (checked by
// CheckEngineFlags); errors name the flag. `client` receives the cache client (which must
// outlive the engine).
absl::StatusOr<std::unique_ptr<InferenceEngine>> NewEngine(std::unique_ptr<CacheClient>* client) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat("--model: ", model.status().message()));
  }
  // KV pages, fetched blocks and published blocks all reuse these buffers (worker/engine.h).
  EngineOptions engine_options;
  engine_options.buffer_pool = std::make_shared<BufferPool>(engine_options.pool_bytes);
  if (!absl::GetFlag(FLAGS_cache).empty()) {
    CacheClientOptions options;
    options.payload_pool = engine_options.buffer_pool;
    options.target = absl::GetFlag(FLAGS_cache);
    options.timeout = absl::Milliseconds(absl::GetFlag(FLAGS_cache_timeout_ms));
    // A cluster's Lookup (the first call of every request) never waits longer than a call.
    options.lookup_timeout = std::min(options.lookup_timeout, options.timeout);
    options.replicas = absl::GetFlag(FLAGS_replicas);
    // TLS to the cache when --tls-ca (or --tls-server-name) says so; --tls-cert/--tls-key
    // are then also the worker's client identity (mTLS), as they are its server identity.
    const TlsClientOptions tls = TlsClientOptionsFromFlags();
    if (!tls.ca_file.empty() || !tls.server_name.empty()) options.tls = tls;
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(options);
    if (!c.ok()) return FlagError("--cache", c.status());
    *client = *std::move(c);
  }
  engine_options.block_size = absl::GetFlag(FLAGS_block_size);
  engine_options.cache_salt = absl::GetFlag(FLAGS_cache_salt);
  engine_options.cache = client->get();
  return InferenceEngine::Create(*std::move(model), engine_options);
}

int ServeCommand() {
  if (absl::Status s = CheckEngineFlags(); !s.ok()) return Fail(s);
  if (absl::Status s = CheckListenAddress("--listen", absl::GetFlag(FLAGS_listen)); !s.ok()) {
    return Fail(s);
  }
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  if (grace < absl::ZeroDuration()) return Fail(UsageError("--shutdown-grace must be >= 0"));
  InferenceServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.tls = TlsServerOptionsFromFlags();
  options.allow_plaintext = AllowPlaintextFromFlag();
  if (absl::Status s = CheckTlsServerOptions(options.tls); !s.ok()) {
    return Fail(UsageError(s.message()));
  }
  std::string warning;
  if (absl::Status s = CheckPlaintextPolicy("kvcache-worker", options.listen,
                                            options.tls.enabled(), options.allow_plaintext,
                                            &warning);
      !s.ok()) {
    return Fail(s);
  }
  if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
  options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens);
  options.allow_anonymous = absl::GetFlag(FLAGS_allow_anonymous);
  if (options.auth_tokens_file.empty()) {
    if (absl::Status s = CheckAnonymousPolicy("kvcache-worker", options.listen,
                                              "run inference on this worker",
                                              options.allow_anonymous, &warning);
        !s.ok()) {
      return Fail(s);
    }
    std::fprintf(stderr, "%s\n", warning.c_str());
  }
  BlockTerminationSignals();  // Before any thread starts: the main thread waits for them.
  std::unique_ptr<CacheClient> client;
  absl::StatusOr<std::unique_ptr<InferenceEngine>> engine = NewEngine(&client);
  if (!engine.ok()) return Fail(engine.status());
  absl::StatusOr<std::unique_ptr<InferenceServer>> server =
      InferenceServer::Start(engine->get(), options);
  if (!server.ok()) {
    return Fail(absl::Status(server.status().code(),
                             absl::StrCat("--listen: ", server.status().message())));
  }
  std::printf("kvcache-worker listening on %s | model %s | cache %s\n",
              (*server)->address().c_str(), absl::GetFlag(FLAGS_model).c_str(),
              client ? absl::GetFlag(FLAGS_cache).c_str() : "none");
  std::fflush(stdout);
  const int sig = WaitForTerminationSignal([&] {
    const absl::Status s = (*server)->ReloadAccess();
    std::printf("kvcache-worker: SIGHUP: %s\n",
                s.ok() ? "callers reloaded" : std::string(s.message()).c_str());
    std::fflush(stdout);
  });
  std::printf("kvcache-worker: signal %d, draining for %s\n", sig,
              absl::FormatDuration(grace).c_str());
  std::fflush(stdout);
  (*server)->Shutdown(grace);
  (*engine)->WaitForPublishes();
  if (client) {
    std::printf("kvcache-worker: data channel fallbacks to gRPC: %llu\n",
                static_cast<unsigned long long>(client->data_channel_fallbacks()));
    std::printf("kvcache-worker: same-host (shared memory) calls: %llu, fallbacks to TCP: "
                "%llu\n",
                static_cast<unsigned long long>(client->local_path_calls()),
                static_cast<unsigned long long>(client->local_path_fallbacks()));
  }
  return kExitOk;
}

// `generate --worker`: the request runs on a serving worker; prints what it reports.
int RemoteGenerateCommand(const std::string& worker, const GenerateRequest& request) {
  if (!absl::GetFlag(FLAGS_dump_logits).empty()) {
    return Fail(UsageError("--dump-logits is not available with --worker"));
  }
  absl::StatusOr<GenerateResult> result =
      GenerateOnWorker(worker, TlsClientOptionsFromFlags(), request);
  if (!result.ok()) return Fail(FlagError("--worker", result.status()));
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", RemoteGenerateResultJson(*result).c_str());
  } else {
    std::fputs(RemoteGenerateResultText(*result).c_str(), stdout);
    if (!result->cache_note.empty()) {
      std::fprintf(stderr, "kvcache-worker: cache: %s\n", result->cache_note.c_str());
    }
  }
  return kExitOk;
}

int GenerateCommand() {
  const std::string worker = absl::GetFlag(FLAGS_worker);
  if (worker.empty()) {
    if (absl::Status s = CheckEngineFlags(); !s.ok()) return Fail(s);
  }
  struct Source {
    const char* flag;
    PromptKind kind;
    std::string value;
  };
  std::vector<Source> given;
  for (Source source : {Source{"--prompt-ids", PromptKind::kTokenIds, absl::GetFlag(FLAGS_prompt_ids)},
                        Source{"--prompt-text", PromptKind::kText, absl::GetFlag(FLAGS_prompt_text)},
                        Source{"--prompt-file", PromptKind::kFile, absl::GetFlag(FLAGS_prompt_file)}}) {
    if (!source.value.empty()) given.push_back(source);
  }
  if (given.size() != 1) {
    return Fail(UsageError("give exactly one of --prompt-ids, --prompt-text, --prompt-file"));
  }
  const Source& prompt_source = given.front();
  const int64_t max_new = absl::GetFlag(FLAGS_max_new_tokens);
  if (max_new < 0 || max_new > (1 << 20)) {
    return Fail(UsageError("--max-new-tokens must be in [0, 2^20]"));
  }
  GenerateRequest request;
  request.max_new_tokens = static_cast<uint32_t>(max_new);
  absl::StatusOr<std::vector<uint32_t>> prompt =
      LoadPrompt(prompt_source.kind, prompt_source.value);
  if (!prompt.ok()) return Fail(FlagError(prompt_source.flag, prompt.status()));
  request.prompt = *std::move(prompt);
  if (!worker.empty()) return RemoteGenerateCommand(worker, request);

  std::unique_ptr<CacheClient> client;
  const absl::Time load_start = absl::Now();
  absl::StatusOr<std::unique_ptr<InferenceEngine>> engine = NewEngine(&client);
  if (!engine.ok()) return Fail(engine.status());
  const double load_ms = absl::ToDoubleMilliseconds(absl::Now() - load_start);
  // The request against the model, each check naming its flag.
  const ModelConfig& config = (*engine)->model().config();
  if (absl::Status s = CheckPromptTokens(config, request.prompt); !s.ok()) {
    return Fail(FlagError(prompt_source.flag, s));
  }
  if (absl::Status s = CheckTokenBudget(config, request.prompt.size(), request.max_new_tokens);
      !s.ok()) {
    return Fail(FlagError("--max-new-tokens", s));
  }

  absl::StatusOr<GenerateResult> result =
      RunGenerate(engine->get(), std::move(request), absl::GetFlag(FLAGS_dump_logits));
  if (!result.ok()) return Fail(result.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", GenerateResultJson(*result, **engine, absl::GetFlag(FLAGS_block_size),
                                            load_ms)
                             .c_str());
  } else {
    std::fputs(GenerateResultText(*result, **engine).c_str(), stdout);
    if (!result->cache_note.empty()) {
      std::fprintf(stderr, "kvcache-worker: cache: %s\n", result->cache_note.c_str());
    }
  }
  if (client && client->data_channel_fallbacks() > 0) {
    std::fprintf(stderr,
                 "kvcache-worker: cache: %llu calls fell back to gRPC: the data channel the "
                 "server advertises is unreachable (docs/data-channel.md)\n",
                 static_cast<unsigned long long>(client->data_channel_fallbacks()));
  }
  return kExitOk;
}

}  // namespace
}  // namespace kvcache

int main(int argc, char** argv) {
  kvcache::MaybeReexecForBlas(argv);  // Before anything else: see worker/blas.h.
  kvcache::TuneMallocForLargeBuffers();
  kvcache::TurnOffMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "kvcache-worker: the inference worker (docs/worker.md).\n"
      "usage: kvcache-worker make-model --out=DIR [--preset=tiny|bench] [--seed=0] "
      "[--dtype=f32|f16|bf16] [--shards=1]\n"
      "       kvcache-worker generate --model=DIR [--cache=HOST:PORT]\n"
      "           (--prompt-ids=1,2,3 | --prompt-text=TEXT | --prompt-file=PATH) "
      "[--max-new-tokens=16]\n"
      "           [--dump-logits=PATH] [--json] [--block-size=16] [--cache-salt=S] "
      "[--cache-timeout-ms=2000]\n"
      "       kvcache-worker generate --worker=HOST:PORT (--prompt-ids=... | ...) "
      "[--max-new-tokens=16] [--json]\n"
      "       kvcache-worker serve --model=DIR [--cache=HOST:PORT] [--listen=127.0.0.1:50061]\n"
      "           [--block-size=16] [--cache-salt=S] [--cache-timeout-ms=2000] "
      "[--shutdown-grace=10s]\n"
      "           [--tls-cert=PEM --tls-key=PEM [--tls-client-ca=PEM]] [--allow-plaintext]\n"
      "           [--auth-tokens=FILE | --allow-anonymous]\n"
      "       generate and serve: [--tls-ca=PEM] (TLS to --cache; with --tls-cert/--tls-key: "
      "mutual)\n"
      "           --cache=HOST:PORT,HOST:PORT,... or dns:///NAME:PORT is a cluster "
      "[--replicas=1]\n"
      "Exit status: 0 on success, 2 for a usage error, 1 when the work fails.");
  const std::vector<std::string> args = kvcache::ParseFlags(argc, argv);
  if (args.size() != 2) {
    return kvcache::Fail(kvcache::UsageError(
        "expected one subcommand: make-model, generate or serve (see --help)"));
  }
  if (args[1] == "make-model") return kvcache::MakeModelCommand();
  if (args[1] == "generate") return kvcache::GenerateCommand();
  if (args[1] == "serve") return kvcache::ServeCommand();
  return kvcache::Fail(kvcache::UsageError(absl::StrCat("unknown subcommand \"", args[1], "\"")));
}
