// kvcache.v1.CacheService on gRPC's callback API.
//
// Lookup is answered inline from the store's in-memory index. Get streams one block per
// message, fetching the next block only when the previous write is done, so a slow reader
// holds at most one block; each message references the stored payload instead of copying it
// (a raw method writing the wire bytes of block_wire.h). Put reads a client stream message by
// message and stops at the first bad block, keeping the ones before it.
//
// Get's reads of blocks not in memory and Put's stores can wait on the disk (a read from
// RocksDB; a Put that demotes or trims on its own thread), so they run on the server's I/O
// threads (ServiceDeps::io), which then start the reactor's next write or read: gRPC's
// callback threads, which also answer health checks, never wait on the disk. A Get of a
// block in memory is sent inline (the hop would cost CPU for nothing).
//
// Every call is authenticated first (services/access.h): Lookup, Get and OpenDataChannel
// need the reader role, Put the writer role, and the namespace a caller names is mapped to
// its tenant's stored namespace before the store sees it.

#include <grpcpp/grpcpp.h>

#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/time/clock.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/block_wire.h"
#include "proto/grpc_status.h"
#include "common/data_channel_wire.h"
#include "common/io_executor.h"
#include "common/shared_region.h"
#include "common/little_endian.h"
#include "services/access_grpc.h"
#include "services/call_limits.h"
#include "services/convert_internal.h"
#include "services/data_channel_server.h"
#include "services/events.h"
#include "services/services.h"

namespace kvcache {
namespace {

// The caller of `ctx` if it may make `rpc` (`role` or higher); counts refusals and, with
// auth on, the call under its tenant (`ok` calls are counted by Served).
absl::StatusOr<Principal> Admit(const ServiceDeps& deps, const grpc::ServerContextBase& ctx,
                                Rpc rpc, Role role, absl::string_view what) {
  absl::StatusOr<Principal> who = AuthenticateCall(*deps.access, ctx);
  if (who.ok()) {
    if (absl::Status s = AccessControl::Require(*who, role, what); !s.ok()) who = s;
  }
  if (!who.ok() && deps.access->enabled()) {
    deps.metrics->CountTenantCall("", rpc, who.status().code());
  }
  return who;
}

// Counts a call of an admitted caller under its tenant (with auth on).
void Served(const ServiceDeps& deps, const Principal& who, Rpc rpc, const absl::Status& s) {
  if (deps.access->enabled()) deps.metrics->CountTenantCall(who.tenant, rpc, s.code());
}

class GetReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GetReactor(const ServiceDeps& deps, grpc::CallbackServerContext* ctx,
             const grpc::ByteBuffer* raw)
      : deps_(deps), ctx_(ctx), start_(absl::Now()) {
    deps_.limiter->Watch(ctx_);
    absl::StatusOr<Principal> who = Admit(deps_, *ctx, Rpc::kGet, Role::kReader, "Get");
    if (!who.ok()) {
      Done(who.status());
      return;
    }
    who_ = *std::move(who);
    grpc::ByteBuffer copy(*raw);  // Shares the slices.
    v1::GetRequest request;
    if (!grpc::GenericDeserialize<grpc::ProtoBufferReader, v1::GetRequest>(&copy, &request)
             .ok()) {
      Done(absl::InvalidArgumentError("GetRequest does not parse"));
      return;
    }
    absl::Status within = deps_.limiter->CheckKeys(request.keys_size());
    absl::StatusOr<Key> ns =
        within.ok() ? ParseNamespace(request.namespace_id()) : absl::StatusOr<Key>(within);
    absl::StatusOr<std::vector<Key>> keys =
        ns.ok() ? ParseKeys(request.keys()) : absl::StatusOr<std::vector<Key>>(ns.status());
    if (keys.ok() && keys->empty()) keys = absl::InvalidArgumentError("Get names no keys");
    if (!keys.ok()) {
      Done(keys.status());
      return;
    }
    ns_ = StoredNamespace(who_.tenant, *ns);
    keys_ = *std::move(keys);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    response_.Clear();  // Unpins the block.
    ReleasePinned();
    if (!ok) {
      Done(absl::CancelledError("the client went away"));
      return;
    }
    ++next_;
    WriteNext();
  }

  void OnDone() override {
    deps_.limiter->Unwatch(ctx_);
    ReleasePinned();
    delete this;
  }

 private:
  void WriteNext() {
    if (next_ >= keys_.size()) {
      Done(absl::OkStatus());
      return;
    }
    if (absl::Status s = deps_.limiter->CheckDuration(start_); !s.ok()) {
      Done(s);
      return;
    }
    // A block in memory is sent from here; one only the disk can give, from an I/O thread.
    std::optional<absl::StatusOr<BlockPtr>> in_memory =
        deps_.store->GetFromMemory(BlockId{ns_, keys_[next_]});
    if (in_memory) {
      Send(*std::move(in_memory));
    } else {
      deps_.io->Run([this] { Send(deps_.store->Get(BlockId{ns_, keys_[next_]})); });
    }
  }

  // Ends in StartWrite or Finish: `this` is not touched after either.
  void Send(absl::StatusOr<BlockPtr> block) {
    if (!block.ok()) {  // The run ends at the first block that is gone: not an error.
      Done(absl::OkStatus());
      return;
    }
    v1::Block header;
    FillBlockHeader(**block, &header);
    const absl::string_view payload = (*block)->payload;
    // The block stays pinned (held past its eviction) until the write is done: counted.
    if (absl::Status s = deps_.limiter->Reserve(CallLimiter::Op::kGet, payload.size());
        !s.ok()) {
      Done(s);
      return;
    }
    pinned_ = payload.size();
    response_ = EncodeGetResponse(static_cast<uint32_t>(next_), header, payload,
                                  *std::move(block));
    StartWrite(&response_);
  }

  void Done(const absl::Status& status) {
    deps_.metrics->ObserveRpc(Rpc::kGet, absl::Now() - start_, status.ok());
    if (!who_.name.empty()) Served(deps_, who_, Rpc::kGet, status);
    Finish(ToGrpcStatus(status));
  }

  void ReleasePinned() {
    deps_.limiter->Release(CallLimiter::Op::kGet, pinned_);
    pinned_ = 0;
  }

  const ServiceDeps deps_;
  grpc::CallbackServerContext* const ctx_;
  const absl::Time start_;
  uint64_t pinned_ = 0;
  Principal who_;  // Empty name until admitted.
  Key ns_;
  std::vector<Key> keys_;
  size_t next_ = 0;
  grpc::ByteBuffer response_;
};

class PutReactor final : public grpc::ServerReadReactor<v1::PutRequest> {
 public:
  PutReactor(const ServiceDeps& deps, grpc::CallbackServerContext* ctx,
             v1::PutResponse* response)
      : deps_(deps), ctx_(ctx), response_(response), start_(absl::Now()) {
    deps_.limiter->Watch(ctx_);
    absl::StatusOr<Principal> who = Admit(deps_, *ctx, Rpc::kPut, Role::kWriter, "Put");
    if (!who.ok()) {
      Done(who.status());
      return;
    }
    who_ = *std::move(who);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // The client closed its side: all blocks are in.
      Done(absl::OkStatus());
      return;
    }
    if (absl::Status s = WithinLimits(); !s.ok()) {
      Done(s);
      return;
    }
    const uint64_t bytes = request_.ByteSizeLong();
    if (absl::Status s = deps_.limiter->Reserve(CallLimiter::Op::kPut, bytes); !s.ok()) {
      Done(s);
      return;
    }
    // On an I/O thread; ends in StartRead or Finish, after which `this` is not touched.
    deps_.io->Run([this, bytes] {
      absl::Status stored = Store();
      deps_.limiter->Release(CallLimiter::Op::kPut, bytes);
      if (!stored.ok()) {
        Done(stored);
        return;
      }
      StartRead(&request_);
    });
  }

  void OnDone() override {
    deps_.limiter->Unwatch(ctx_);
    delete this;
  }

 private:
  absl::Status WithinLimits() {
    if (absl::Status s = deps_.limiter->CheckDuration(start_); !s.ok()) return s;
    blocks_ += request_.blocks_size();
    return deps_.limiter->CheckBlocks(blocks_);
  }

  absl::Status Store() {
    if (!request_.namespace_id().empty() || !ns_) {
      absl::StatusOr<Key> ns = ParseNamespace(request_.namespace_id());
      if (!ns.ok()) return ns.status();
      ns_ = *ns;
      stored_ns_ = StoredNamespace(who_.tenant, *ns);
    }
    for (v1::Block& pb : *request_.mutable_blocks()) {
      // The store checks size and shape.
      if (deps_.usage != nullptr) {
        if (absl::Status s = deps_.usage->CheckFits(who_.tenant, pb.payload().size()); !s.ok()) {
          return s;
        }
      }
      absl::StatusOr<BlockPtr> block = TakeBlock(deps_.store, stored_ns_, &pb);
      if (!block.ok()) return block.status();
      const BlockMeta meta = (*block)->meta;
      absl::StatusOr<PutOutcome> outcome = deps_.store->Put(*std::move(block));
      if (!outcome.ok()) return outcome.status();
      switch (*outcome) {
        case PutOutcome::kStored: response_->set_stored(response_->stored() + 1); break;
        case PutOutcome::kAlreadyPresent:
          response_->set_already_present(response_->already_present() + 1);
          if (IsConflict(meta)) response_->set_conflicts(response_->conflicts() + 1);
          break;
        case PutOutcome::kNotAdmitted:
          response_->set_not_admitted(response_->not_admitted() + 1);
          break;
      }
    }
    request_.Clear();
    // A tenant over its quota makes room in its own share, here: it pays for its writes.
    if (deps_.usage != nullptr) deps_.usage->Trim(who_.tenant);
    return absl::OkStatus();
  }

  // Whether the stored block under `offered`'s id has other bytes (a different checksum):
  // then it is kept, and the conflict recorded.
  bool IsConflict(const BlockMeta& offered) {
    std::optional<BlockInfo> stored = deps_.store->Inspect(offered.id);
    if (!stored || stored->meta.checksum == offered.checksum) return false;
    deps_.tenants->RecordConflict(ConflictRecord{who_.tenant, who_.name, *ns_, offered.id.key,
                                                 stored->meta.checksum, offered.checksum,
                                                 absl::Now()});
    return true;
  }

  void Done(const absl::Status& status) {
    deps_.metrics->ObserveRpc(Rpc::kPut, absl::Now() - start_, status.ok());
    if (!who_.name.empty()) Served(deps_, who_, Rpc::kPut, status);
    Finish(ToGrpcStatus(status));
  }

  const ServiceDeps deps_;
  grpc::CallbackServerContext* const ctx_;
  v1::PutResponse* const response_;
  const absl::Time start_;
  int64_t blocks_ = 0;
  Principal who_;  // Empty name until admitted.
  std::optional<Key> ns_;  // As the caller sent it.
  Key stored_ns_;
  v1::PutRequest request_;
};

// A server stream refused before it starts (its caller was not admitted).
template <typename T>
class RefusedStream final : public grpc::ServerWriteReactor<T> {
 public:
  void OnDone() override { delete this; }
};

using CacheServiceBase = v1::CacheService::WithCallbackMethod_Lookup<
    v1::CacheService::WithRawCallbackMethod_Get<v1::CacheService::WithCallbackMethod_Put<
        v1::CacheService::WithCallbackMethod_OpenDataChannel<
            v1::CacheService::WithCallbackMethod_SubscribeEvents<v1::CacheService::Service>>>>>;

class CacheServiceImpl final : public CacheServiceBase {
 public:
  explicit CacheServiceImpl(const ServiceDeps& deps) : deps_(deps) {}

  // services/events.cc. A reader sees its own tenant's namespaces (in their stored form,
  // docs/events.md); an admin, and every caller of a server without --auth-tokens, all.
  grpc::ServerWriteReactor<v1::SubscribeEventsResponse>* SubscribeEvents(
      grpc::CallbackServerContext* ctx, const v1::SubscribeEventsRequest* request) override {
    absl::StatusOr<Principal> who =
        Admit(deps_, *ctx, Rpc::kGet, Role::kReader, "SubscribeEvents");
    if (!who.ok()) {
      auto* reactor = new RefusedStream<v1::SubscribeEventsResponse>();
      reactor->Finish(ToGrpcStatus(who.status()));
      return reactor;
    }
    NamespaceFilter filter;
    if (who->role != Role::kAdmin && !who->tenant.empty()) {
      filter = [tag = TenantTag(who->tenant)](const Key& ns) {
        return GetLittleEndian<uint64_t>(reinterpret_cast<const char*>(ns.bytes.data())) == tag;
      };
    }
    return NewSubscribeEventsReactor(ctx, request, deps_.events, deps_.store, std::move(filter));
  }

  grpc::ServerUnaryReactor* OpenDataChannel(grpc::CallbackServerContext* ctx,
                                            const v1::OpenDataChannelRequest*,
                                            v1::OpenDataChannelResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    absl::Status status = [&]() -> absl::Status {
      // Its token carries the caller's tenant and role to the data channel, which checks
      // them per request as the RPCs do.
      absl::StatusOr<Principal> who =
          Admit(deps_, *ctx, Rpc::kGet, Role::kReader, "OpenDataChannel");
      if (!who.ok()) return who.status();
      if (deps_.data == nullptr) {
        return absl::UnavailableError("this server runs without a data channel (--data-listen)");
      }
      absl::StatusOr<Key> token = deps_.access->IssueDataToken(*who);
      if (!token.ok()) return token.status();
      response->set_address(deps_.data->advertised_address());
      response->set_token(std::string(token->view()));
      response->set_protocol_version(data_channel::kVersion);
      if (const std::string local = deps_.data->local_address(); !local.empty()) {
        response->set_local_address(local);
        response->set_host_id(LocalHostId());
      }
      return absl::OkStatus();
    }();
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx,
                                   const v1::LookupRequest* request,
                                   v1::LookupResponse* response) override {
    const absl::Time start = absl::Now();
    absl::Status status = [&]() -> absl::Status {
      absl::StatusOr<Principal> who = Admit(deps_, *ctx, Rpc::kLookup, Role::kReader, "Lookup");
      if (!who.ok()) return who.status();
      absl::Status s = [&]() -> absl::Status {
        absl::StatusOr<Key> ns = ParseNamespace(request->namespace_id());
        if (!ns.ok()) return ns.status();
        if (absl::Status s = deps_.limiter->CheckKeys(request->keys_size()); !s.ok()) return s;
        absl::StatusOr<std::vector<Key>> keys = ParseKeys(request->keys());
        if (!keys.ok()) return keys.status();
        LookupResult r = deps_.store->Lookup(StoredNamespace(who->tenant, *ns), *keys);
        response->set_num_present(static_cast<uint32_t>(r.num_present));
        response->set_num_in_ram(static_cast<uint32_t>(r.num_in_ram));
        return absl::OkStatus();
      }();
      Served(deps_, *who, Rpc::kLookup, s);
      return s;
    }();
    deps_.metrics->ObserveRpc(Rpc::kLookup, absl::Now() - start, status.ok());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Get(grpc::CallbackServerContext* ctx,
                                                  const grpc::ByteBuffer* request) override {
    if (deps_.data != nullptr) deps_.metrics->CountDataChannelFallback(Rpc::kGet);
    return new GetReactor(deps_, ctx, request);
  }

  grpc::ServerReadReactor<v1::PutRequest>* Put(grpc::CallbackServerContext* ctx,
                                               v1::PutResponse* response) override {
    if (deps_.data != nullptr) deps_.metrics->CountDataChannelFallback(Rpc::kPut);
    return new PutReactor(deps_, ctx, response);
  }

 private:
  const ServiceDeps deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> NewCacheService(const ServiceDeps& deps) {
  return std::make_unique<CacheServiceImpl>(deps);
}

}  // namespace kvcache
