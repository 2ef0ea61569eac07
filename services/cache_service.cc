// kvcache.v1.CacheService on gRPC's callback API.
//
// Lookup is answered inline from the store's in-memory index. Get streams one block per
// message, fetching the next block only when the previous write is done, so a slow reader
// holds at most one block; each message references the stored payload instead of copying it
// (a raw method writing the wire bytes of block_wire.h). Put reads a client stream message by message and stops at the
// first bad block, keeping the ones before it.

#include <grpcpp/grpcpp.h>

#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/time/clock.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/block_wire.h"
#include "proto/grpc_status.h"
#include "common/data_channel_wire.h"
#include "services/convert_internal.h"
#include "services/data_channel_server.h"
#include "services/events.h"
#include "services/services.h"

namespace kvcache {
namespace {

class GetReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GetReactor(TieredStore* store, ServerMetrics* metrics, const grpc::ByteBuffer* raw)
      : store_(store), metrics_(metrics), start_(absl::Now()) {
    grpc::ByteBuffer copy(*raw);  // Shares the slices.
    v1::GetRequest request;
    if (!grpc::GenericDeserialize<grpc::ProtoBufferReader, v1::GetRequest>(&copy, &request)
             .ok()) {
      Done(absl::InvalidArgumentError("GetRequest does not parse"));
      return;
    }
    absl::StatusOr<Key> ns = ParseNamespace(request.namespace_id());
    absl::StatusOr<std::vector<Key>> keys =
        ns.ok() ? ParseKeys(request.keys()) : absl::StatusOr<std::vector<Key>>(ns.status());
    if (keys.ok() && keys->empty()) keys = absl::InvalidArgumentError("Get names no keys");
    if (!keys.ok()) {
      Done(keys.status());
      return;
    }
    ns_ = *ns;
    keys_ = *std::move(keys);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Done(absl::CancelledError("the client went away"));
      return;
    }
    ++next_;
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (next_ >= keys_.size()) {
      Done(absl::OkStatus());
      return;
    }
    absl::StatusOr<BlockPtr> block = store_->Get(BlockId{ns_, keys_[next_]});
    if (!block.ok()) {  // The run ends at the first block that is gone: not an error.
      Done(absl::OkStatus());
      return;
    }
    v1::Block header;
    FillBlockHeader(**block, &header);
    const absl::string_view payload = (*block)->payload;
    response_ = EncodeGetResponse(static_cast<uint32_t>(next_), header, payload,
                                  *std::move(block));
    StartWrite(&response_);
  }

  void Done(const absl::Status& status) {
    metrics_->ObserveRpc(Rpc::kGet, absl::Now() - start_, status.ok());
    Finish(ToGrpcStatus(status));
  }

  TieredStore* const store_;
  ServerMetrics* const metrics_;
  const absl::Time start_;
  Key ns_;
  std::vector<Key> keys_;
  size_t next_ = 0;
  grpc::ByteBuffer response_;
};

class PutReactor final : public grpc::ServerReadReactor<v1::PutRequest> {
 public:
  PutReactor(TieredStore* store, ServerMetrics* metrics, v1::PutResponse* response)
      : store_(store), metrics_(metrics), response_(response), start_(absl::Now()) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // The client closed its side: all blocks are in.
      Done(absl::OkStatus());
      return;
    }
    if (absl::Status s = Store(); !s.ok()) {
      Done(s);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Store() {
    if (!request_.namespace_id().empty() || !ns_) {
      absl::StatusOr<Key> ns = ParseNamespace(request_.namespace_id());
      if (!ns.ok()) return ns.status();
      ns_ = *ns;
    }
    for (v1::Block& pb : *request_.mutable_blocks()) {
      absl::StatusOr<BlockPtr> block = TakeBlock(*ns_, &pb);  // The store checks size and shape.
      if (!block.ok()) return block.status();
      absl::StatusOr<PutOutcome> outcome = store_->Put(*std::move(block));
      if (!outcome.ok()) return outcome.status();
      switch (*outcome) {
        case PutOutcome::kStored: response_->set_stored(response_->stored() + 1); break;
        case PutOutcome::kAlreadyPresent:
          response_->set_already_present(response_->already_present() + 1);
          break;
        case PutOutcome::kNotAdmitted:
          response_->set_not_admitted(response_->not_admitted() + 1);
          break;
      }
    }
    request_.Clear();
    return absl::OkStatus();
  }

  void Done(const absl::Status& status) {
    metrics_->ObserveRpc(Rpc::kPut, absl::Now() - start_, status.ok());
    Finish(ToGrpcStatus(status));
  }

  TieredStore* const store_;
  ServerMetrics* const metrics_;
  v1::PutResponse* const response_;
  const absl::Time start_;
  std::optional<Key> ns_;
  v1::PutRequest request_;
};

using CacheServiceBase = v1::CacheService::WithCallbackMethod_Lookup<
    v1::CacheService::WithRawCallbackMethod_Get<v1::CacheService::WithCallbackMethod_Put<
        v1::CacheService::WithCallbackMethod_OpenDataChannel<
            v1::CacheService::WithCallbackMethod_SubscribeEvents<v1::CacheService::Service>>>>>;

class CacheServiceImpl final : public CacheServiceBase {
 public:
  CacheServiceImpl(TieredStore* store, ServerMetrics* metrics, const DataChannelServer* data,
                   EventLog* events)
      : store_(store), metrics_(metrics), data_(data), events_(events) {}

  // services/events.cc. (Tenants: pass a filter admitting only the caller's namespaces.)
  grpc::ServerWriteReactor<v1::SubscribeEventsResponse>* SubscribeEvents(
      grpc::CallbackServerContext* ctx, const v1::SubscribeEventsRequest* request) override {
    return NewSubscribeEventsReactor(ctx, request, events_, store_, NamespaceFilter());
  }

  grpc::ServerUnaryReactor* OpenDataChannel(grpc::CallbackServerContext* ctx,
                                            const v1::OpenDataChannelRequest*,
                                            v1::OpenDataChannelResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (data_ == nullptr) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "this server runs without a data channel (--data-listen)"));
      return reactor;
    }
    response->set_address(data_->advertised_address());
    response->set_token(std::string(data_->token().view()));
    response->set_protocol_version(data_channel::kVersion);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx,
                                   const v1::LookupRequest* request,
                                   v1::LookupResponse* response) override {
    const absl::Time start = absl::Now();
    absl::Status status = [&]() -> absl::Status {
      absl::StatusOr<Key> ns = ParseNamespace(request->namespace_id());
      if (!ns.ok()) return ns.status();
      absl::StatusOr<std::vector<Key>> keys = ParseKeys(request->keys());
      if (!keys.ok()) return keys.status();
      LookupResult r = store_->Lookup(*ns, *keys);
      response->set_num_present(static_cast<uint32_t>(r.num_present));
      response->set_num_in_ram(static_cast<uint32_t>(r.num_in_ram));
      return absl::OkStatus();
    }();
    metrics_->ObserveRpc(Rpc::kLookup, absl::Now() - start, status.ok());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Get(grpc::CallbackServerContext* ctx,
                                                  const grpc::ByteBuffer* request) override {
    if (data_ != nullptr) metrics_->CountDataChannelFallback(Rpc::kGet);
    return new GetReactor(store_, metrics_, request);
  }

  grpc::ServerReadReactor<v1::PutRequest>* Put(grpc::CallbackServerContext* ctx,
                                               v1::PutResponse* response) override {
    if (data_ != nullptr) metrics_->CountDataChannelFallback(Rpc::kPut);
    return new PutReactor(store_, metrics_, response);
  }

 private:
  TieredStore* const store_;
  ServerMetrics* const metrics_;
  const DataChannelServer* const data_;
  EventLog* const events_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewCacheService(TieredStore* store, ServerMetrics* metrics,
                                               const DataChannelServer* data,
                                               EventLog* events) {
  return std::make_unique<CacheServiceImpl>(store, metrics, data, events);
}

}  // namespace kvcache
