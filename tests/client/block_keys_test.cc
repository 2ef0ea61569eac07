// Block-key derivation against the test vectors of docs/block-keys.md (computed there with
// an independent Python implementation), and the doc still listing them.

#include "client/block_keys.h"

#include <cstdlib>
#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

struct Vector {
  NamespaceDescription description;
  std::vector<uint32_t> tokens;
  std::string namespace_id;
  std::vector<std::string> keys;
};

std::vector<Vector> Vectors() {
  NamespaceDescription a;
  a.weights_digest = std::string(64, '0');
  a.dtype = "f32";
  a.num_layers = 3;
  a.num_kv_heads = 2;
  a.head_dim = 16;
  a.rope_theta = 10000;
  a.block_size = 16;
  std::vector<uint32_t> forty(40);
  std::iota(forty.begin(), forty.end(), 0);
  NamespaceDescription b = a;
  b.cache_salt = "tenant-a";
  NamespaceDescription c = a;
  c.weights_digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  c.dtype = "bf16";
  c.num_layers = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.rope_theta = 500000;
  c.block_size = 4;
  return {
      {a,
       forty,
       "ee858ad33cf001dfa6bfa1c811fa1a0505fbd614d5a2fbe5c8dfd8b1c5de3199",
       {"688d61be459bf7cc7ff5d65f2c4a002b9627119dd7d0906d624739aed5b81b1b",
        "cb8f1ec6c7f7b4c0218b9b1533092896846ece529675de01c6efe7f73469c641"}},
      {b,
       forty,
       "f3a77a49dbf1c0bc9eed4b2dd50d2df942e43390c0f65d57ebe7277db9306961",
       {"09d0c0e71fae4ae873d7096eec2b8cca0cb1d6b913d246b215e18060b6df0443",
        "54fbed3b20a43cca0a7707af75098815228bea7ec8c941f12bbf674545b782b5"}},
      {c,
       {1, 2, 3, 4, 5, 6, 7, 8, 9, 70000, 0},
       "0602937f0ee9b6cfeedda79b3ba7844855e554e2acb8a6e2a9afad1bcc8007e9",
       {"055adcd33524a4f81d043bc9074368f1bfc26048b3f8605e84c6ccc22aad5768",
        "5321ae64e1314fba21360cefb86e8ab3f220a589de42174ca4e2b653c07a6ef0"}},
  };
}

TEST(BlockKeysTest, MatchesDocumentedVectors) {
  for (const Vector& v : Vectors()) {
    const Key ns = NamespaceId(v.description);
    EXPECT_EQ(KeyToHex(ns), v.namespace_id);
    const std::vector<Key> keys = ChainedBlockKeys(ns, v.tokens, v.description.block_size);
    ASSERT_EQ(keys.size(), v.keys.size());
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(KeyToHex(keys[i]), v.keys[i]) << i;
  }
}

TEST(BlockKeysTest, DocumentListsTheVectors) {
  const char* source = std::getenv("KVCACHE_SOURCE_DIR");
  if (source == nullptr) source = KVCACHE_TEST_SOURCE_DIR;  // Set by tests/client/CMakeLists.txt.
  std::ifstream in(std::string(source) + "/docs/block-keys.md");
  ASSERT_TRUE(in) << "docs/block-keys.md not found";
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const Vector& v : Vectors()) {
    EXPECT_NE(doc.find("namespace_id: " + v.namespace_id), std::string::npos) << v.namespace_id;
    for (const std::string& k : v.keys) EXPECT_NE(doc.find(k), std::string::npos) << k;
  }
  // Vector A's canonical text, line by line (indented in the page).
  std::string indented;
  for (absl::string_view line :
       absl::StrSplit(CanonicalNamespace(Vectors()[0].description), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&indented, "      ", line, "\n");
  }
  EXPECT_NE(doc.find(indented), std::string::npos) << indented;
}

TEST(BlockKeysTest, KeysCommitToTheWholePrefix) {
  const Key ns = NamespaceId(Vectors()[0].description);
  std::vector<uint32_t> t(48, 7);
  const std::vector<Key> base = ChainedBlockKeys(ns, t, 16);
  t[3] = 8;  // Changes block 0: every later key changes too.
  const std::vector<Key> changed = ChainedBlockKeys(ns, t, 16);
  for (size_t i = 0; i < 3; ++i) EXPECT_NE(base[i], changed[i]) << i;
  t[3] = 7;
  t[40] = 9;  // Changes block 2 only.
  const std::vector<Key> tail = ChainedBlockKeys(ns, t, 16);
  EXPECT_EQ(base[0], tail[0]);
  EXPECT_EQ(base[1], tail[1]);
  EXPECT_NE(base[2], tail[2]);
}

}  // namespace
}  // namespace kvcache
