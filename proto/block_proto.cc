#include "proto/block_proto.h"

#include <string>

namespace kvcache {

void ShapeToProto(const BlockShape& s, v1::BlockShape* out) {
  out->set_format_version(s.format_version);
  out->set_dtype(static_cast<v1::DType>(s.dtype));
  out->set_num_layers(s.num_layers);
  out->set_num_kv_heads(s.num_kv_heads);
  out->set_head_dim(s.head_dim);
  out->set_num_tokens(s.num_tokens);
}

BlockShape ShapeFromProto(const v1::BlockShape& s) {
  BlockShape shape;
  shape.format_version = s.format_version();
  shape.dtype = static_cast<uint32_t>(s.dtype());
  shape.num_layers = s.num_layers();
  shape.num_kv_heads = s.num_kv_heads();
  shape.head_dim = s.head_dim();
  shape.num_tokens = s.num_tokens();
  return shape;
}

void FillBlockHeader(const Key& key, const std::optional<Key>& parent, uint64_t checksum,
                     const BlockShape& shape, v1::Block* out) {
  out->set_key(std::string(key.view()));
  if (parent) out->set_parent_key(std::string(parent->view()));
  out->set_checksum(checksum);
  ShapeToProto(shape, out->mutable_shape());
}

}  // namespace kvcache
