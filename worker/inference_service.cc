#include "worker/inference_service.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/socket_io.h"
#include "common/tls.h"
#include "kvcache/v1/worker.grpc.pb.h"
#include "proto/grpc_status.h"
#include "services/access.h"
#include "services/access_grpc.h"
#include "worker/tokenizer.h"

namespace kvcache {
namespace {

namespace pb = ::kvcache::v1;

class Service final : public pb::InferenceService::Service {
 public:
  Service(InferenceEngine* engine, const AccessControl* access)
      : engine_(engine), access_(access) {}

  grpc::Status Generate(grpc::ServerContext* context, const pb::GenerateRequest* request,
                        grpc::ServerWriter<pb::GenerateResponse>* writer) override {
    if (absl::StatusOr<Principal> who = AuthenticateCall(*access_, *context); !who.ok()) {
      return ToGrpcStatus(who.status());
    }
    GenerateRequest r;
    switch (request->prompt_case()) {
      case pb::GenerateRequest::kPromptIds:
        r.prompt.assign(request->prompt_ids().ids().begin(), request->prompt_ids().ids().end());
        break;
      case pb::GenerateRequest::kPromptText:
        r.prompt = TokenizeBytes(request->prompt_text());
        break;
      default:
        break;
    }
    if (r.prompt.empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "set prompt_ids or prompt_text (not empty)");
    }
    r.max_new_tokens = request->max_new_tokens();
    r.return_logits = request->return_logits();
    bool client_gone = false;
    r.on_token = [&](uint32_t token) {
      pb::GenerateResponse message;
      message.add_tokens(token);
      message.set_text(DetokenizeBytes(absl::MakeConstSpan(&token, 1)));
      if (context->IsCancelled() || !writer->Write(message)) {
        client_gone = true;
        return false;
      }
      return true;
    };
    absl::StatusOr<GenerateResult> result = engine_->Generate(r);
    if (!result.ok()) return ToGrpcStatus(result.status());
    if (client_gone) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    pb::GenerateResponse last;
    pb::GenerateStats* stats = last.mutable_stats();
    stats->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
    stats->set_cached_tokens(static_cast<uint32_t>(result->cached_tokens));
    stats->set_ttft_ms(result->ttft_ms);
    stats->set_total_ms(result->total_ms);
    stats->set_published_blocks(static_cast<uint32_t>(result->published_blocks));
    stats->set_cache_note(result->cache_note);
    stats->set_lookup_ms(result->lookup_ms);
    stats->set_fetch_ms(result->fetch_ms);
    stats->set_place_ms(result->place_ms);
    stats->set_compute_ms(result->compute_ms);
    stats->set_publish_ms(result->publish_ms);
    last.mutable_logits()->Add(result->logits.begin(), result->logits.end());
    writer->Write(last);
    return grpc::Status::OK;
  }

 private:
  InferenceEngine* const engine_;
  const AccessControl* const access_;  // Auth off: every caller is anonymous.
};

}  // namespace

class InferenceServer::Impl {
 public:
  Impl(InferenceEngine* engine, std::unique_ptr<AccessControl> access)
      : access_(std::move(access)), service_(engine, access_.get()) {}

  absl::Status ReloadAccess() { return access_->Reload(); }

  absl::Status Start(const InferenceServerOptions& options) {
    // A used or foreign address gets a plain reason before gRPC logs its own lines.
    if (absl::Status s = CheckCanListen(options.listen); !s.ok()) {
      return absl::UnavailableError(s.message());
    }
    std::string warning;  // main prints it.
    if (absl::Status s = CheckPlaintextPolicy("kvcache-worker", options.listen,
                                              options.tls.enabled(), options.allow_plaintext,
                                              &warning);
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(options.tls);
    if (!credentials.ok()) return credentials.status();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options.listen, *credentials, &port);
    // gRPC sets SO_REUSEPORT by default: a second worker on a used port would start and take
    // half the connections. A used port must be an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(options.max_message_bytes);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", options.listen,
          ": the address is in use or not valid for this machine"));
    }
    const std::string host = options.listen.substr(0, options.listen.rfind(':'));
    address_ = absl::StrCat(host, ":", port);
    server_->GetHealthCheckService()->SetServingStatus(true);
    return absl::OkStatus();
  }

  void Shutdown(absl::Duration grace) {
    if (server_ == nullptr || shut_down_) return;
    shut_down_ = true;
    // Drain: NOT_SERVING while requests are still served, for all of `grace`.
    server_->GetHealthCheckService()->SetServingStatus(false);
    absl::SleepFor(grace);
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
  }

  const std::string& address() const { return address_; }

 private:
  const std::unique_ptr<AccessControl> access_;
  Service service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool shut_down_ = false;
};

absl::StatusOr<std::unique_ptr<InferenceServer>> InferenceServer::Start(
    InferenceEngine* engine, const InferenceServerOptions& options) {
  if (options.listen.empty()) return absl::InvalidArgumentError("empty listen address");
  auto access = std::make_unique<AccessControl>();
  if (options.auth_tokens_file.empty()) {
    std::string warning;  // main prints it.
    if (absl::Status s = CheckAnonymousPolicy("kvcache-worker", options.listen,
                                              "run inference on this worker",
                                              options.allow_anonymous, &warning);
        !s.ok()) {
      return s;
    }
  } else {
    absl::StatusOr<std::unique_ptr<AccessControl>> loaded =
        AccessControl::Load(options.auth_tokens_file);
    if (!loaded.ok()) return loaded.status();
    access = *std::move(loaded);
  }
  auto impl = std::make_unique<Impl>(engine, std::move(access));
  absl::Status s = impl->Start(options);
  if (!s.ok()) return s;
  return std::unique_ptr<InferenceServer>(new InferenceServer(std::move(impl)));
}

InferenceServer::InferenceServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
InferenceServer::~InferenceServer() { impl_->Shutdown(absl::ZeroDuration()); }
const std::string& InferenceServer::address() const { return impl_->address(); }
absl::Status InferenceServer::ReloadAccess() { return impl_->ReloadAccess(); }
void InferenceServer::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

absl::StatusOr<GenerateResult> GenerateOnWorker(const std::string& address,
                                               const TlsClientOptions& tls,
                                               const GenerateRequest& request) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  AddTlsChannelArgs(tls, &args);
  args.SetMaxReceiveMessageSize(-1);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(address, *credentials, args);
  std::unique_ptr<pb::InferenceService::Stub> stub = pb::InferenceService::NewStub(channel);
  pb::GenerateRequest r;
  r.mutable_prompt_ids()->mutable_ids()->Add(request.prompt.begin(), request.prompt.end());
  r.set_max_new_tokens(request.max_new_tokens);
  r.set_return_logits(request.return_logits);
  grpc::ClientContext context;
  absl::StatusOr<std::string> token = BearerToken(tls);
  if (!token.ok()) return token.status();
  if (!token->empty()) context.AddMetadata("authorization", "Bearer " + *token);
  std::unique_ptr<grpc::ClientReader<pb::GenerateResponse>> reader = stub->Generate(&context, r);
  GenerateResult result;
  pb::GenerateResponse message;
  while (reader->Read(&message)) {
    result.tokens.insert(result.tokens.end(), message.tokens().begin(), message.tokens().end());
    result.logits.insert(result.logits.end(), message.logits().begin(), message.logits().end());
    if (!message.has_stats()) continue;
    const pb::GenerateStats& stats = message.stats();
    result.prompt_tokens = stats.prompt_tokens();
    result.cached_tokens = stats.cached_tokens();
    result.published_blocks = stats.published_blocks();
    result.ttft_ms = stats.ttft_ms();
    result.total_ms = stats.total_ms();
    result.cache_note = stats.cache_note();
    result.lookup_ms = stats.lookup_ms();
    result.fetch_ms = stats.fetch_ms();
    result.place_ms = stats.place_ms();
    result.compute_ms = stats.compute_ms();
    result.publish_ms = stats.publish_ms();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    const absl::Status s = FromGrpcStatus(status);
    return absl::Status(s.code(), absl::StrCat("worker ", address, ": ", s.message()));
  }
  return result;
}

}  // namespace kvcache
