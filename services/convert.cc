#include "services/convert_internal.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "proto/block_proto.h"

namespace kvcache {

absl::StatusOr<Key> ParseNamespace(const std::string& raw) {
  if (raw.empty()) {
    return absl::InvalidArgumentError(
        "namespace_id is empty: every request names its 32-byte namespace id");
  }
  return KeyFromBytes(raw, "namespace_id");
}

absl::StatusOr<std::vector<Key>> ParseKeys(
    const google::protobuf::RepeatedPtrField<std::string>& raw) {
  if (raw.size() > kMaxKeysPerCall) {
    return absl::InvalidArgumentError(absl::StrCat(raw.size(), " keys in one call; at most ",
                                                   kMaxKeysPerCall, " are allowed"));
  }
  std::vector<Key> keys;
  keys.reserve(raw.size());
  for (int i = 0; i < raw.size(); ++i) {
    absl::StatusOr<Key> k = KeyFromBytes(raw[i], absl::StrCat("keys[", i, "]"));
    if (!k.ok()) return k.status();
    keys.push_back(*k);
  }
  return keys;
}

namespace {

// The optional token ids a Put may carry for KV events: as many as the block's tokens
// (when its shape says), and never more than kMaxTokenIdsPerBlock.
absl::Status TakeTokenIds(const v1::Block& pb, Block* block) {
  const int n = pb.token_ids_size();
  if (n == 0) return absl::OkStatus();
  if (n > kMaxTokenIdsPerBlock ||
      (block->meta.shape.num_tokens != 0 && static_cast<uint32_t>(n) != block->meta.shape.num_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block.token_ids has ", n, " ids; a block carries its shape's num_tokens (",
        block->meta.shape.num_tokens, ") and at most ", kMaxTokenIdsPerBlock));
  }
  block->token_ids.assign(pb.token_ids().begin(), pb.token_ids().end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BlockPtr> TakeBlock(TieredStore* store, const Key& ns, v1::Block* pb) {
  std::shared_ptr<Block> block = store->NewBlock(pb->payload().size());
  absl::StatusOr<Key> key = KeyFromBytes(pb->key(), "block.key");
  if (!key.ok()) return key.status();
  block->meta.id = BlockId{ns, *key};
  if (!pb->parent_key().empty()) {
    absl::StatusOr<Key> parent = KeyFromBytes(pb->parent_key(), "block.parent_key");
    if (!parent.ok()) return parent.status();
    block->meta.parent = *parent;
  }
  block->meta.checksum = pb->checksum();
  block->meta.shape = ShapeFromProto(pb->shape());
  if (!block->payload.empty()) {
    std::memcpy(block->payload.data(), pb->payload().data(), block->payload.size());
  }
  pb->clear_payload();
  if (absl::Status s = TakeTokenIds(*pb, block.get()); !s.ok()) return s;
  return block;
}

void FillBlockHeader(const Block& block, v1::Block* out) {
  const BlockMeta& m = block.meta;
  FillBlockHeader(m.id.key, m.parent, m.checksum, m.shape, out);
}

void FillBlockInfo(const BlockInfo& info, v1::BlockInfo* out) {
  const BlockMeta& m = info.meta;
  out->set_namespace_id(std::string(m.id.ns.view()));
  out->set_key(std::string(m.id.key.view()));
  if (m.parent) out->set_parent_key(std::string(m.parent->view()));
  out->set_tier(info.tier == TierId::kRam ? v1::TIER_RAM : v1::TIER_DISK);
  out->set_on_disk(info.on_disk);
  out->set_payload_bytes(info.payload_bytes);
  out->set_checksum(m.checksum);
  ShapeToProto(m.shape, out->mutable_shape());
  out->set_last_access_unix_micros(info.last_access_unix_micros);
}

void FillTierStats(const TierStats& s, v1::TierStats* out) {
  out->set_blocks(s.blocks);
  out->set_bytes(s.bytes);
  out->set_capacity_bytes(s.capacity_bytes);
  out->set_hits(s.hits);
  out->set_misses(s.misses);
  out->set_evictions(s.evictions);
  out->set_demotions(s.demotions);
  out->set_promotions(s.promotions);
  out->set_checksum_failures(s.checksum_failures);
  out->set_write_errors(s.write_errors);
  out->set_demotion_failures(s.demotion_failures);
  out->set_demotion_waits(s.demotion_waits);
  out->set_inserts(s.inserts);
  out->set_index_bytes(s.index_bytes);
  out->set_dir_bytes(s.dir_bytes);
  out->set_free_bytes(s.free_bytes);
  out->set_degraded(s.degraded != 0);
  out->set_fault(s.fault);
  out->set_write_refusals(s.write_refusals);
}

}  // namespace kvcache
