// Block keys: the prefix-chained SHA-256 of DESIGN.md, reproducible in any language.
//
//   namespace_id = SHA-256( CanonicalNamespace(description) )
//   key_0        = SHA-256( "kvcache-block-v1" || namespace_id || tokens_0 )
//   key_i        = SHA-256( key_{i-1} || tokens_i )
//
// with each token id written as 4 bytes little-endian and tokens_i the i-th run of
// `block_size` tokens. Only full blocks get keys: a trailing partial block is never cached.
// docs/block-keys.md gives the canonical namespace text and test vectors.
//
// Thread safety: pure functions.

#ifndef KVCACHE_CLIENT_BLOCK_KEYS_H_
#define KVCACHE_CLIENT_BLOCK_KEYS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "common/key.h"

namespace kvcache {

// Everything that changes the bytes of a block's K and V.
struct NamespaceDescription {
  std::string architecture = "llama";  // Model family.
  std::string weights_digest;          // Hex SHA-256 of the model's weights (and config).
  std::string dtype = "f32";           // KV element type: f32, f16 or bf16.
  uint32_t num_layers = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  double rope_theta = 10000.0;
  uint32_t block_size = 16;  // Tokens per block.
  std::string cache_salt;    // Optional tenant salt: different salts never share blocks.
};

// The canonical text hashed into the namespace id: one "name=value\n" line per field, in
// the order of the struct, after a first line "kvcache-namespace-v1". rope_theta is printed
// with %.17g.
std::string CanonicalNamespace(const NamespaceDescription& description);

Key NamespaceId(const NamespaceDescription& description);

// The keys of the full blocks of `tokens`, in chain order. REQUIRES: block_size > 0.
std::vector<Key> ChainedBlockKeys(const Key& namespace_id, absl::Span<const uint32_t> tokens,
                                  uint32_t block_size);

// SHA-256 of `data` as a Key (exposed for digests of weights and the like).
Key Sha256(absl::string_view data);

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_BLOCK_KEYS_H_
