#include "services/convert.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/byte_size.h"

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

absl::StatusOr<BlockPtr> TakeBlock(const Key& ns, v1::Block* pb, uint64_t max_block_bytes) {
  auto block = std::make_shared<Block>();
  absl::StatusOr<Key> key = KeyFromBytes(pb->key(), "block.key");
  if (!key.ok()) return key.status();
  block->meta.id = BlockId{ns, *key};
  if (!pb->parent_key().empty()) {
    absl::StatusOr<Key> parent = KeyFromBytes(pb->parent_key(), "block.parent_key");
    if (!parent.ok()) return parent.status();
    block->meta.parent = *parent;
  }
  if (pb->payload().size() > max_block_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "block ", KeyToHex(*key), " payload is ", FormatBytes(pb->payload().size()),
        ", over the server's limit of ", FormatBytes(max_block_bytes), " (--max-block-bytes)"));
  }
  block->meta.checksum = pb->checksum();
  const v1::BlockShape& s = pb->shape();
  block->meta.shape = BlockShape{s.format_version(), static_cast<uint32_t>(s.dtype()),
                                 s.num_layers(),     s.num_kv_heads(),
                                 s.head_dim(),       s.num_tokens()};
  block->payload = std::move(*pb->mutable_payload());
  return block;
}

void FillBlockHeader(const Block& block, v1::Block* out) {
  out->set_key(std::string(block.meta.id.key.view()));
  if (block.meta.parent) out->set_parent_key(std::string(block.meta.parent->view()));
  out->set_checksum(block.meta.checksum);
  const BlockShape& s = block.meta.shape;
  v1::BlockShape* shape = out->mutable_shape();
  shape->set_format_version(s.format_version);
  shape->set_dtype(static_cast<v1::DType>(s.dtype));
  shape->set_num_layers(s.num_layers);
  shape->set_num_kv_heads(s.num_kv_heads);
  shape->set_head_dim(s.head_dim);
  shape->set_num_tokens(s.num_tokens);
}

void FillBlockInfo(const BlockInfo& info, v1::BlockInfo* out) {
  Block header;
  header.meta = info.meta;
  v1::Block b;
  FillBlockHeader(header, &b);
  out->set_namespace_id(std::string(info.meta.id.ns.view()));
  out->set_key(b.key());
  out->set_parent_key(b.parent_key());
  out->set_tier(info.tier == TierId::kRam ? v1::TIER_RAM : v1::TIER_DISK);
  out->set_on_disk(info.on_disk);
  out->set_payload_bytes(info.payload_bytes);
  out->set_checksum(info.meta.checksum);
  *out->mutable_shape() = b.shape();
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
  out->set_inserts(s.inserts);
}

}  // namespace kvcache
