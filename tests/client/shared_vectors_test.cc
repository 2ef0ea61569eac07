// The C++ half of the vectors shared with the Python client (tests/data/block_key_vectors.json;
// the Python half is tests/clients/python/test_keys.py): namespace text and id, block keys and
// rendezvous placements. Both suites read the same file, so a change on either side that
// would make two workers hash or place differently fails here or there.

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/block_keys.h"
#include "client/rendezvous.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvcache {
namespace {

nlohmann::json LoadVectors() {
  const char* source = std::getenv("KVCACHE_SOURCE_DIR");
  if (source == nullptr) source = KVCACHE_TEST_SOURCE_DIR;  // Set by tests/client/CMakeLists.txt.
  std::ifstream in(std::string(source) + "/tests/data/block_key_vectors.json");
  EXPECT_TRUE(in) << "tests/data/block_key_vectors.json not found";
  return nlohmann::json::parse(in);
}

Key HexKey(const std::string& hex) {
  absl::StatusOr<Key> key = KeyFromHex(hex, "vector");
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? *key : Key();
}

TEST(SharedVectorsTest, BlockKeysMatchThePythonClient) {
  const nlohmann::json vectors = LoadVectors();
  ASSERT_GE(vectors.at("block_keys").size(), 5u);
  for (const nlohmann::json& v : vectors.at("block_keys")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const nlohmann::json& d = v.at("description");
    NamespaceDescription desc;
    desc.architecture = d.at("architecture").get<std::string>();
    desc.weights_digest = d.at("weights_digest").get<std::string>();
    desc.dtype = d.at("dtype").get<std::string>();
    desc.num_layers = d.at("num_layers").get<uint32_t>();
    desc.num_kv_heads = d.at("num_kv_heads").get<uint32_t>();
    desc.head_dim = d.at("head_dim").get<uint32_t>();
    desc.rope_theta = d.at("rope_theta").get<double>();
    desc.block_size = d.at("block_size").get<uint32_t>();
    desc.cache_salt = d.at("cache_salt").get<std::string>();
    EXPECT_EQ(CanonicalNamespace(desc), v.at("canonical").get<std::string>());
    const Key ns = NamespaceId(desc);
    EXPECT_EQ(KeyToHex(ns), v.at("namespace_id").get<std::string>());
    const std::vector<uint32_t> tokens = v.at("tokens").get<std::vector<uint32_t>>();
    const std::vector<std::string> want = v.at("keys").get<std::vector<std::string>>();
    const std::vector<Key> keys = ChainedBlockKeys(ns, tokens, desc.block_size);
    ASSERT_EQ(keys.size(), want.size());
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(KeyToHex(keys[i]), want[i]) << i;
  }
}

TEST(SharedVectorsTest, PlacementsMatchThePythonClient) {
  const nlohmann::json vectors = LoadVectors();
  const std::vector<std::string> nodes =
      vectors.at("placement_nodes").get<std::vector<std::string>>();
  ASSERT_GE(vectors.at("placements").size(), 10u);
  for (const nlohmann::json& p : vectors.at("placements")) {
    const Key ns = HexKey(p.at("namespace_id").get<std::string>());
    const Key key = HexKey(p.at("key").get<std::string>());
    const std::vector<std::string> scores = p.at("scores").get<std::vector<std::string>>();
    ASSERT_EQ(scores.size(), nodes.size());
    for (size_t n = 0; n < nodes.size(); ++n) {
      EXPECT_EQ(absl::StrFormat("%016x", RendezvousScore(nodes[n], ns, key)), scores[n])
          << nodes[n];
    }
    EXPECT_EQ(RendezvousRank(nodes, ns, key, nodes.size()),
              p.at("order").get<std::vector<size_t>>())
        << p.at("key");
  }
}

}  // namespace
}  // namespace kvcache
