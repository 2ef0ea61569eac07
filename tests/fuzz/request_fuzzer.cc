// Fuzzes the validation of gRPC requests (services/convert_internal.h), as
// services/cache_service.cc applies it: the first byte picks the message (Lookup, Get or
// Put), the rest is its protobuf wire bytes. What validation accepts goes on into a RAM-only
// TieredStore, which checks the size, the shape and the checksum. Every refusal must be one
// of the documented codes.

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "cachestore/block_store.h"
#include "kvcache/v1/cache.pb.h"
#include "services/convert_internal.h"

namespace kvcache {
namespace {

TieredStore* Store() {
  static TieredStore* const store = [] {
    TieredStoreOptions options;
    options.ram.capacity_bytes = 64 << 20;
    options.max_block_bytes = 1 << 20;
    return NewTieredStore(options)->release();
  }();
  return store;
}

// The codes a request may be answered with.
void CheckRefusal(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kFailedPrecondition:
      return;
    default:
      std::abort();
  }
}

void Lookup(const v1::LookupRequest& request) {
  absl::StatusOr<Key> ns = ParseNamespace(request.namespace_id());
  if (!ns.ok()) return CheckRefusal(ns.status());
  absl::StatusOr<std::vector<Key>> keys = ParseKeys(request.keys());
  if (!keys.ok()) return CheckRefusal(keys.status());
  if (keys->size() != static_cast<size_t>(request.keys_size())) std::abort();
  const LookupResult r = Store()->Lookup(*ns, *keys);
  if (r.num_present > keys->size() || r.num_in_ram > r.num_present) std::abort();
}

void Get(const v1::GetRequest& request) {
  absl::StatusOr<Key> ns = ParseNamespace(request.namespace_id());
  if (!ns.ok()) return CheckRefusal(ns.status());
  absl::StatusOr<std::vector<Key>> keys = ParseKeys(request.keys());
  if (!keys.ok()) return CheckRefusal(keys.status());
  for (const Key& key : *keys) {
    absl::StatusOr<BlockPtr> block = Store()->Get(BlockId{*ns, key});
    if (!block.ok()) break;
    v1::Block header;
    FillBlockHeader(**block, &header);
    if (header.key() != key.view()) std::abort();
  }
}

void Put(v1::PutRequest* request) {
  absl::StatusOr<Key> ns = ParseNamespace(request->namespace_id());
  if (!ns.ok()) return CheckRefusal(ns.status());
  for (v1::Block& pb : *request->mutable_blocks()) {
    absl::StatusOr<BlockPtr> block = TakeBlock(Store(), *ns, &pb);
    if (!block.ok()) return CheckRefusal(block.status());
    absl::StatusOr<PutOutcome> outcome = Store()->Put(*std::move(block));
    if (!outcome.ok()) return CheckRefusal(outcome.status());
  }
}

}  // namespace
}  // namespace kvcache

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  kvcache::Store()->Clear();  // Each input starts from an empty store: reproducible.
  const void* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  switch (data[0] % 3) {
    case 0: {
      kvcache::v1::LookupRequest r;
      if (r.ParseFromArray(body, body_size)) kvcache::Lookup(r);
      break;
    }
    case 1: {
      kvcache::v1::GetRequest r;
      if (r.ParseFromArray(body, body_size)) kvcache::Get(r);
      break;
    }
    case 2: {
      kvcache::v1::PutRequest r;
      if (r.ParseFromArray(body, body_size)) kvcache::Put(&r);
      break;
    }
  }
  return 0;
}
