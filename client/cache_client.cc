#include "client/cache_client.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <atomic>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/call_util_internal.h"
#include "client/cluster_client.h"
#include "client/data_connection_internal.h"
#include "client/rendezvous.h"
#include "common/checksum.h"
#include "common/shared_region.h"
#include "common/socket_io.h"
#include "common/tls.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/block_proto.h"
#include "proto/block_wire.h"

namespace kvcache {
namespace {

namespace pb = ::kvcache::v1;

using internal::CallError;

// CacheService methods called through the generic stub (by full name, "/<service>/<method>"),
// so that their messages can be ByteBuffers built without copying payloads (block_wire.h).
constexpr absl::string_view kPutMethod = "Put";

std::string MethodPath(absl::string_view method) {
  return absl::StrCat("/", pb::CacheService::service_full_name(), "/", method);
}

// Starts one operation on `cq` with `start(tag)` and waits for it to complete: whether it
// succeeded. One operation at a time is in flight on `cq`.
template <typename Start>
bool Await(grpc::CompletionQueue* cq, Start start) {
  int op;
  start(static_cast<void*>(&op));
  void* tag = nullptr;
  bool ok = false;
  return cq->Next(&tag, &ok) && ok && tag == &op;
}

// Counts the payload slices gRPC still references during a zero-copy Put, so that Put
// returns only once the caller's payloads are no longer read. Shared with the slices: the
// last one out frees it.
class SliceTracker {
 public:
  // Arguments for EncodePutRequest's release callback.
  static void Release(void* arg) {
    auto* self = static_cast<std::shared_ptr<SliceTracker>*>(arg);
    {
      absl::MutexLock lock(&(*self)->mu_);
      --(*self)->outstanding_;
    }
    delete self;
  }
  static void* Acquire(const std::shared_ptr<SliceTracker>& tracker) {
    absl::MutexLock lock(&tracker->mu_);
    ++tracker->outstanding_;
    return new std::shared_ptr<SliceTracker>(tracker);
  }
  void WaitForAll() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* outstanding) { return *outstanding == 0; }, &outstanding_));
  }

 private:
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

class GrpcCacheClient final : public CacheClient {
 public:
  GrpcCacheClient(const CacheClientOptions& options,
                  std::shared_ptr<grpc::ChannelCredentials> credentials, std::string token)
      : options_(options),
        token_(std::move(token)),
        channel_(grpc::CreateCustomChannel(options.target, std::move(credentials),
                                           ChannelArgs(options))),
        stub_(pb::CacheService::NewStub(channel_)),
        generic_stub_(channel_),
        put_method_(MethodPath(kPutMethod)) {}

  absl::StatusOr<CacheLookup> Lookup(const Key& ns, absl::Span<const Key> keys) override {
    pb::LookupRequest req;
    req.set_namespace_id(std::string(ns.view()));
    for (const Key& k : keys) req.add_keys(std::string(k.view()));
    pb::LookupResponse resp;
    grpc::Status s = internal::RetryAfterReconnect(channel_.get(), &down_, [&] {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      return stub_->Lookup(&ctx, req, &resp);
    });
    if (!s.ok()) return CallError(s, "Lookup", options_.target);
    return CacheLookup{resp.num_present(), resp.num_in_ram()};
  }

  absl::StatusOr<std::vector<CacheBlock>> Get(const Key& ns,
                                              absl::Span<const Key> keys) override {
    std::vector<CacheBlock> out;
    if (keys.empty()) return out;
    // The same-host path first when there is one, then the TCP channel, then gRPC.
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<DataConnection> conn = AcquireDataConnection();
      if (conn == nullptr) break;
      const bool local = conn->local();
      absl::Status s = conn->Get(ns, keys, options_.timeout, &out, options_.payload_pool.get());
      ReleaseDataConnection(std::move(conn));
      if (!FallBackToGrpc(s)) {
        if (local) local_calls_.fetch_add(1, std::memory_order_relaxed);
        if (!s.ok()) return Annotate(s, "Get");
        return out;
      }
      out.clear();
      if (!local) break;
      LocalPathFailed();
    }
    CountFallback();
    return GrpcGet(ns, keys);
  }

  absl::StatusOr<CachePutResult> Put(const Key& ns,
                                     absl::Span<const CacheBlock> blocks) override {
    CachePutResult result;
    size_t done = 0;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<DataConnection> conn = AcquireDataConnection();
      if (conn == nullptr) break;
      const bool local = conn->local();
      absl::Status s = conn->Put(ns, blocks, options_.timeout, &result, &done);
      ReleaseDataConnection(std::move(conn));
      if (!FallBackToGrpc(s)) {
        if (local) local_calls_.fetch_add(1, std::memory_order_relaxed);
        if (!s.ok()) return Annotate(s, "Put");
        return result;
      }
      if (!local) break;
      LocalPathFailed();  // The rest over the TCP channel (or gRPC).
    }
    // The rest (all of it without a data channel) over gRPC.
    CountFallback();
    absl::StatusOr<CachePutResult> rest = GrpcPut(ns, blocks.subspan(done));
    if (!rest.ok()) return rest.status();
    result.stored += rest->stored;
    result.already_present += rest->already_present;
    result.not_admitted += rest->not_admitted;
    return result;
  }

  uint64_t data_channel_fallbacks() const override {
    return fallbacks_.load(std::memory_order_relaxed);
  }
  uint64_t local_path_calls() const override {
    return local_calls_.load(std::memory_order_relaxed);
  }
  uint64_t local_path_fallbacks() const override {
    return local_fallbacks_.load(std::memory_order_relaxed);
  }

 private:
  void CountFallback() {
    if (data_offered_.load(std::memory_order_relaxed)) {
      fallbacks_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // A data channel failure that gRPC may still get through (the channel is down or broke);
  // an error the server replied with, or a spent deadline, is the answer.
  static bool FallBackToGrpc(const absl::Status& s) {
    return absl::IsUnavailable(s) || absl::IsInternal(s);
  }

  absl::Status Annotate(const absl::Status& s, absl::string_view rpc) const {
    return CallError(s, rpc, absl::StrCat(options_.target, " (data channel)"));
  }

  // A pooled or new data connection (same-host when the server offers it on this machine);
  // null when there is no data channel (not offered, off, or failing: negotiation is
  // retried at most every kDataChannelRetry).
  std::unique_ptr<DataConnection> AcquireDataConnection() {
    // Never over TLS: the data channel is plaintext (docs/security.md).
    if (!options_.use_data_channel || options_.tls.enabled()) return nullptr;
    std::string address;
    std::string local_address;
    Key token;
    std::vector<std::unique_ptr<DataConnection>> dropped;  // Closed after the lock.
    {
      absl::MutexLock lock(&data_mu_);
      // Once the same-host path may be tried again, pooled TCP connections (taken while it
      // was failing) are dropped rather than reused, so the client goes back to it.
      const bool want_local = !local_address_.empty() && absl::Now() >= local_retry_after_;
      while (!idle_.empty()) {
        std::unique_ptr<DataConnection> conn = std::move(idle_.back());
        idle_.pop_back();
        if (want_local && !conn->local()) {
          dropped.push_back(std::move(conn));
          continue;
        }
        return conn;
      }
      if (absl::Now() < data_retry_after_) return nullptr;
      address = data_address_;
      token = data_token_;
      if (absl::Now() >= local_retry_after_) local_address = local_address_;
    }
    if (address.empty()) {
      // Negotiate over gRPC.
      pb::OpenDataChannelResponse resp;
      grpc::Status s = internal::RetryAfterReconnect(channel_.get(), &down_, [&] {
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        return stub_->OpenDataChannel(&ctx, pb::OpenDataChannelRequest(), &resp);
      });
      absl::StatusOr<Key> parsed = KeyFromBytes(resp.token(), "token");
      if (!s.ok() || !parsed.ok() || resp.protocol_version() != 1) {
        DataChannelFailed();
        return nullptr;
      }
      // A server listening on every interface advertises 0.0.0.0: use the host we dialled.
      address = ReachableAddress(resp.address(), options_.target);
      token = *parsed;
      // Same host: the server runs under this kernel (same machine and boot identity).
      const bool same_host = options_.use_local_path && !resp.local_address().empty() &&
                             !LocalHostId().empty() && resp.host_id() == LocalHostId();
      data_offered_.store(true, std::memory_order_relaxed);
      absl::MutexLock lock(&data_mu_);
      data_address_ = address;
      data_token_ = token;
      local_address_ = same_host ? resp.local_address() : "";
      if (absl::Now() >= local_retry_after_) local_address = local_address_;
    }
    if (!local_address.empty()) {
      absl::StatusOr<std::unique_ptr<DataConnection>> local =
          DataConnection::OpenLocal(local_address, token, options_.timeout);
      if (local.ok()) return *std::move(local);
      LocalPathFailed();  // Over TCP meanwhile.
    }
    absl::StatusOr<std::unique_ptr<DataConnection>> conn =
        DataConnection::Open(address, token, options_.timeout);
    if (!conn.ok()) {
      DataChannelFailed();
      return nullptr;
    }
    return *std::move(conn);
  }

  void ReleaseDataConnection(std::unique_ptr<DataConnection> conn) {
    if (conn->broken()) return;
    absl::MutexLock lock(&data_mu_);
    if (idle_.size() < kMaxIdleDataConnections) idle_.push_back(std::move(conn));
  }

  // The same-host path failed (unreachable socket, unusable region, broken connection):
  // counted, its pooled connections dropped, and not tried again for kDataChannelRetry;
  // calls take the TCP channel meanwhile.
  void LocalPathFailed() {
    local_fallbacks_.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::unique_ptr<DataConnection>> dropped;  // Closed after the lock.
    absl::MutexLock lock(&data_mu_);
    local_retry_after_ = absl::Now() + kDataChannelRetry;
    for (auto& conn : idle_) {
      if (conn->local()) dropped.push_back(std::move(conn));
    }
    idle_.erase(std::remove(idle_.begin(), idle_.end(), nullptr), idle_.end());
  }

  // Forgets the negotiated channel (the server may have restarted elsewhere) and waits a
  // while before trying again; calls go over gRPC meanwhile.
  void DataChannelFailed() {
    absl::MutexLock lock(&data_mu_);
    data_address_.clear();
    data_retry_after_ = absl::Now() + kDataChannelRetry;
  }

  absl::StatusOr<std::vector<CacheBlock>> GrpcGet(const Key& ns, absl::Span<const Key> keys) {
    std::vector<CacheBlock> out;
    pb::GetRequest req;
    req.set_namespace_id(std::string(ns.view()));
    for (const Key& k : keys) req.add_keys(std::string(k.view()));
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    std::unique_ptr<grpc::ClientReader<pb::GetResponse>> reader = stub_->Get(&ctx, req);
    pb::GetResponse resp;
    bool intact = true;
    while (intact && reader->Read(&resp)) {
      pb::Block* b = resp.mutable_block();
      // Blocks must arrive in chain order with their bytes intact; anything else ends the
      // usable run here.
      intact = resp.index() == out.size() && out.size() < keys.size() &&
               b->key() == keys[out.size()].view() &&
               PayloadChecksum(b->payload()) == b->checksum();
      if (!intact) break;
      CacheBlock block;
      block.key = keys[out.size()];
      if (!b->parent_key().empty()) {
        absl::StatusOr<Key> parent = KeyFromBytes(b->parent_key(), "parent_key");
        if (parent.ok()) block.parent = *parent;
      }
      block.payload = std::move(*b->mutable_payload());
      block.checksum = b->checksum();
      block.shape = ShapeFromProto(b->shape());
      out.push_back(std::move(block));
    }
    if (!intact) {
      ctx.TryCancel();
      reader->Finish().IgnoreError();
      return out;
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return CallError(s, "Get", options_.target);
    return out;
  }

  // One message per block, each sent without copying its payload (see block_wire.h), on a
  // client stream of the generic stub. Each operation is waited for before the next, as a
  // synchronous ClientWriter would; the initial metadata rides on the first message and the
  // half-close on the last, which saves two waits per call.
  absl::StatusOr<CachePutResult> GrpcPut(const Key& ns, absl::Span<const CacheBlock> blocks) {
    auto tracker = std::make_shared<SliceTracker>();
    grpc::ByteBuffer response;
    bool got_response = false;
    grpc::Status s;
    {
      grpc::CompletionQueue cq;
      {
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        ctx.set_initial_metadata_corked(true);
        std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
            generic_stub_.PrepareCall(&ctx, put_method_, &cq);
        call->StartCall(nullptr);  // Corked: no operation, nothing to wait for.
        bool ok = true;
        bool first = true;
        for (size_t i = 0; ok && i < blocks.size(); ++i) {
          const CacheBlock& block = blocks[i];
          pb::Block header;
          FillBlockHeader(block.key, block.parent, PayloadChecksum(block.payload), block.shape,
                          &header);
          const grpc::ByteBuffer message =
              EncodePutRequest(first ? ns.view() : absl::string_view(), header, block.payload,
                               &SliceTracker::Release, SliceTracker::Acquire(tracker));
          first = false;
          // A failed write means the server ended the call; Finish says why.
          if (i + 1 < blocks.size()) {
            ok = Await(&cq, [&](void* tag) { call->Write(message, tag); });
          } else {
            ok = Await(&cq,
                       [&](void* tag) { call->WriteLast(message, grpc::WriteOptions(), tag); });
          }
        }
        if (blocks.empty()) Await(&cq, [&](void* tag) { call->WritesDone(tag); });
        got_response = Await(&cq, [&](void* tag) { call->Read(&response, tag); });
        Await(&cq, [&](void* tag) { call->Finish(&s, tag); });
      }
      cq.Shutdown();
      void* tag;
      bool ok;
      while (cq.Next(&tag, &ok)) {
      }
    }  // The call is gone: gRPC drops its last references to the payloads.
    tracker->WaitForAll();
    if (!s.ok()) return CallError(s, "Put", options_.target);
    pb::PutResponse resp;
    bool parsed = false;
    if (got_response) {
      grpc::ProtoBufferReader reader(&response);
      parsed = resp.ParseFromZeroCopyStream(&reader);
    }
    if (!parsed) {
      return absl::InternalError(absl::StrCat("Put to ", options_.target,
                                              ": unreadable response"));
    }
    return CachePutResult{resp.stored(), resp.already_present(), resp.not_admitted(),
                          resp.conflicts()};
  }

  static grpc::ChannelArguments ChannelArgs(const CacheClientOptions& options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options.max_message_bytes);
    args.SetMaxSendMessageSize(options.max_message_bytes);
    // A connection of its own: gRPC otherwise shares one TCP connection among all channels
    // to the same target in the process, and clients on different threads then queue
    // behind each other's megabytes on one socket.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    internal::AddFastReconnectArgs(&args);  // Lookup and OpenDataChannel: RetryAfterReconnect.
    AddTlsChannelArgs(options.tls, &args);
    return args;
  }

  void SetDeadline(grpc::ClientContext* ctx) const {
    internal::PrepareCall(ctx, options_.timeout, token_);
  }

  const CacheClientOptions options_;
  const std::string token_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<pb::CacheService::Stub> stub_;
  grpc::GenericStub generic_stub_;  // Thread safe.
  const std::string put_method_;
  std::atomic<bool> down_{false};  // See internal::RetryAfterReconnect.

  static constexpr size_t kMaxIdleDataConnections = 16;
  static constexpr absl::Duration kDataChannelRetry = absl::Seconds(5);
  absl::Mutex data_mu_;
  std::atomic<bool> data_offered_{false};  // The server has offered a data channel.
  std::atomic<uint64_t> fallbacks_{0};
  std::atomic<uint64_t> local_calls_{0};
  std::atomic<uint64_t> local_fallbacks_{0};
  std::string data_address_ ABSL_GUARDED_BY(data_mu_);  // Empty: not negotiated.
  Key data_token_ ABSL_GUARDED_BY(data_mu_);
  // The server's same-host socket when it is on this machine; empty: not local (or off).
  std::string local_address_ ABSL_GUARDED_BY(data_mu_);
  absl::Time local_retry_after_ ABSL_GUARDED_BY(data_mu_) = absl::InfinitePast();
  absl::Time data_retry_after_ ABSL_GUARDED_BY(data_mu_) = absl::InfinitePast();
  std::vector<std::unique_ptr<DataConnection>> idle_ ABSL_GUARDED_BY(data_mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<CacheClient>> NewNodeCacheClient(const CacheClientOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("cache client: target (host:port) is empty");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<std::string> token = BearerToken(options.tls);
  if (!token.ok()) return token.status();
  return std::make_unique<GrpcCacheClient>(options, *std::move(credentials), *std::move(token));
}

absl::StatusOr<std::unique_ptr<CacheClient>> NewCacheClient(const CacheClientOptions& options) {
  // Several nodes or a DNS name: the cluster client (client/cluster_client.h); one address:
  // this node client, exactly as before.
  absl::StatusOr<ClusterTarget> target = ParseClusterTarget(options.target);
  if (target.ok() && target->is_cluster()) return NewClusterCacheClient(options);
  if (!target.ok() && options.target.find(',') != std::string::npos) return target.status();
  return NewNodeCacheClient(options);
}

std::vector<CacheBlock> ChainedBlocks(absl::Span<const Key> chain, size_t first) {
  std::vector<CacheBlock> blocks;
  if (first >= chain.size()) return blocks;
  blocks.reserve(chain.size() - first);
  for (size_t i = first; i < chain.size(); ++i) {
    CacheBlock& b = blocks.emplace_back();
    b.key = chain[i];
    if (i > 0) b.parent = chain[i - 1];
  }
  return blocks;
}

}  // namespace kvcache
