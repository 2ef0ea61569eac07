#include "client/cache_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/grpc_status.h"

namespace kvcache {
namespace {

namespace pb = ::kvcache::v1;

void FillShape(const BlockShape& s, pb::BlockShape* out) {
  out->set_format_version(s.format_version);
  out->set_dtype(static_cast<pb::DType>(s.dtype));
  out->set_num_layers(s.num_layers);
  out->set_num_kv_heads(s.num_kv_heads);
  out->set_head_dim(s.head_dim);
  out->set_num_tokens(s.num_tokens);
}

BlockShape ShapeOf(const pb::BlockShape& s) {
  return BlockShape{s.format_version(), static_cast<uint32_t>(s.dtype()), s.num_layers(),
                    s.num_kv_heads(), s.head_dim(), s.num_tokens()};
}

// Prefixes the server's message with what failed, keeping the code.
absl::Status CallError(const grpc::Status& s, absl::string_view rpc, absl::string_view target) {
  absl::Status st = FromGrpcStatus(s);
  return absl::Status(st.code(), absl::StrCat(rpc, " to ", target, ": ", st.message()));
}

class GrpcCacheClient final : public CacheClient {
 public:
  explicit GrpcCacheClient(const CacheClientOptions& options) : options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options.max_message_bytes);
    args.SetMaxSendMessageSize(options.max_message_bytes);
    stub_ = pb::CacheService::NewStub(
        grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args));
  }

  absl::StatusOr<CacheLookup> Lookup(const Key& ns, absl::Span<const Key> keys) override {
    pb::LookupRequest req;
    req.set_namespace_id(std::string(ns.view()));
    for (const Key& k : keys) req.add_keys(std::string(k.view()));
    pb::LookupResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Lookup(&ctx, req, &resp);
    if (!s.ok()) return CallError(s, "Lookup", options_.target);
    return CacheLookup{resp.num_present(), resp.num_in_ram()};
  }

  absl::StatusOr<std::vector<CacheBlock>> Get(const Key& ns,
                                              absl::Span<const Key> keys) override {
    std::vector<CacheBlock> out;
    if (keys.empty()) return out;
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
      block.shape = ShapeOf(b->shape());
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

  absl::StatusOr<CachePutResult> Put(const Key& ns,
                                     absl::Span<const CacheBlock> blocks) override {
    pb::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    std::unique_ptr<grpc::ClientWriter<pb::PutRequest>> writer = stub_->Put(&ctx, &resp);
    bool first = true;
    for (const CacheBlock& block : blocks) {
      pb::PutRequest req;
      if (first) req.set_namespace_id(std::string(ns.view()));
      first = false;
      pb::Block* b = req.add_blocks();
      b->set_key(std::string(block.key.view()));
      if (block.parent) b->set_parent_key(std::string(block.parent->view()));
      b->set_payload(block.payload);
      b->set_checksum(PayloadChecksum(block.payload));
      FillShape(block.shape, b->mutable_shape());
      if (!writer->Write(req)) break;  // The server ended the call; Finish says why.
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (!s.ok()) return CallError(s, "Put", options_.target);
    return CachePutResult{resp.stored(), resp.already_present(), resp.not_admitted()};
  }

 private:
  void SetDeadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  }

  const CacheClientOptions options_;
  std::unique_ptr<pb::CacheService::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CacheClient>> NewCacheClient(const CacheClientOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("cache client: target (host:port) is empty");
  }
  return std::make_unique<GrpcCacheClient>(options);
}

}  // namespace kvcache
