#include "client/block_keys.h"

#include <openssl/evp.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvcache {
namespace {

constexpr absl::string_view kBlockDomain = "kvcache-block-v1";

using DigestCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

void AppendTokens(EVP_MD_CTX* ctx, absl::Span<const uint32_t> tokens) {
  unsigned char le[4];
  for (uint32_t t : tokens) {
    le[0] = static_cast<unsigned char>(t);
    le[1] = static_cast<unsigned char>(t >> 8);
    le[2] = static_cast<unsigned char>(t >> 16);
    le[3] = static_cast<unsigned char>(t >> 24);
    EVP_DigestUpdate(ctx, le, sizeof(le));
  }
}

}  // namespace

std::string CanonicalNamespace(const NamespaceDescription& d) {
  return absl::StrCat("kvcache-namespace-v1\n",                                //
                      "architecture=", d.architecture, "\n",                   //
                      "weights_digest=", d.weights_digest, "\n",               //
                      "dtype=", d.dtype, "\n",                                 //
                      "num_layers=", d.num_layers, "\n",                       //
                      "num_kv_heads=", d.num_kv_heads, "\n",                   //
                      "head_dim=", d.head_dim, "\n",                           //
                      "rope_theta=", absl::StrFormat("%.17g", d.rope_theta), "\n",  //
                      "block_size=", d.block_size, "\n",                       //
                      "cache_salt=", d.cache_salt, "\n");
}

Key Sha256(absl::string_view data) {
  Key key;
  EVP_Digest(data.data(), data.size(), key.bytes.data(), nullptr, EVP_sha256(), nullptr);
  return key;
}

Key NamespaceId(const NamespaceDescription& description) {
  return Sha256(CanonicalNamespace(description));
}

std::vector<Key> ChainedBlockKeys(const Key& namespace_id, absl::Span<const uint32_t> tokens,
                                  uint32_t block_size) {
  std::vector<Key> keys;
  const size_t num_blocks = block_size == 0 ? 0 : tokens.size() / block_size;
  keys.reserve(num_blocks);
  DigestCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  for (size_t i = 0; i < num_blocks; ++i) {
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    if (i == 0) {
      EVP_DigestUpdate(ctx.get(), kBlockDomain.data(), kBlockDomain.size());
      EVP_DigestUpdate(ctx.get(), namespace_id.bytes.data(), kKeyBytes);
    } else {
      EVP_DigestUpdate(ctx.get(), keys.back().bytes.data(), kKeyBytes);
    }
    AppendTokens(ctx.get(), tokens.subspan(i * block_size, block_size));
    Key key;
    EVP_DigestFinal_ex(ctx.get(), key.bytes.data(), nullptr);
    keys.push_back(key);
  }
  return keys;
}

}  // namespace kvcache
