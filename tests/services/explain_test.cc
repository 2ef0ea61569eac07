// `kvcache-admin explain` and `kvcache-admin events`: the real kvcache-admin binary against
// real servers on 127.0.0.1:0. For each reason a chain can break (never stored, evicted,
// erased, flushed, stored under another namespace whose differing fields it names), explain
// names the breaking block and the reason; and where the blocks of a cluster are.

#include <nlohmann/json.hpp>

#include "absl/strings/str_join.h"
#include "client/block_keys.h"
#include "client/cache_client.h"
#include "gtest/gtest.h"
#include "services/cache_server.h"
#include "tests/process.h"
#include "tests/test_util.h"
#include "worker/make_model.h"
#include "worker/model.h"

namespace kvcache {
namespace {

using nlohmann::json;
using testing::Bin;
using testing::TempDir;

constexpr uint32_t kBlockSize = 4;
constexpr size_t kPayload = 2000;

class ExplainTest : public ::testing::Test {
 protected:
  // A RAM-only server holding about `ram_blocks` blocks.
  std::string StartServer(uint64_t ram_blocks = 64) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.store.ram.capacity_bytes = ram_blocks * ChargeOf(kPayload);
    o.store.ram.num_shard_bits = 0;
    absl::StatusOr<std::unique_ptr<CacheServer>> s = StartCacheServer(o);
    EXPECT_TRUE(s.ok()) << s.status();
    servers_.push_back(*std::move(s));
    return servers_.back()->address();
  }

  // Puts the blocks [first, last) of `tokens`' chain under `ns` to `server`.
  static void PutPrompt(const std::string& server, const Key& ns,
                        const std::vector<uint32_t>& tokens, size_t first, size_t last,
                        uint32_t block_size = kBlockSize) {
    const std::vector<Key> keys = ChainedBlockKeys(ns, tokens, block_size);
    std::vector<CacheBlock> blocks = ChainedBlocks(keys, 0);
    for (size_t i = 0; i < blocks.size(); ++i) blocks[i].payload = testing::TestPayload(kPayload, i);
    CacheClientOptions o;
    o.target = server;
    o.use_data_channel = false;
    std::unique_ptr<CacheClient> client = *NewCacheClient(o);
    std::vector<CacheBlock> part(blocks.begin() + first, blocks.begin() + last);
    ASSERT_TRUE(client->Put(ns, part).ok());
  }

  // Runs kvcache-admin explain --json and returns its report.
  json Explain(const std::string& server, std::vector<std::string> flags) {
    std::vector<std::string> argv{Bin("kvcache-admin"), "--server=" + server, "--json",
                                  "--block-size=" + std::to_string(kBlockSize)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("explain");
    testing::CommandResult r = testing::Run(argv);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    const size_t brace = r.output.find('{');
    if (brace == std::string::npos) return json();
    return json::parse(r.output.substr(brace), nullptr, /*allow_exceptions=*/false);
  }

  static std::string Ids(const std::vector<uint32_t>& tokens) { return absl::StrJoin(tokens, ","); }

  const Key kNs = testing::TestKey(5, 1);
  const std::vector<uint32_t> kPrompt = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                         12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22};  // 5 blocks
  TempDir dir_;
  std::vector<std::unique_ptr<CacheServer>> servers_;
};

TEST_F(ExplainTest, NeverStored) {
  const std::string server = StartServer();
  PutPrompt(server, kNs, kPrompt, 0, 2);
  json r = Explain(server, {"--namespace=" + KeyToHex(kNs), "--prompt-ids=" + Ids(kPrompt)});
  ASSERT_FALSE(r.is_null());
  EXPECT_EQ(r["blocks"], 5);
  EXPECT_EQ(r["usable_blocks"], 2);
  EXPECT_EQ(r["break"]["index"], 2);
  EXPECT_EQ(r["break"]["reason"], "never_stored");
  EXPECT_EQ(r["block_list"][0]["stored"][0]["tier"], "ram");
  EXPECT_EQ(r["block_list"][0]["stored"][0]["node"], server);
}

TEST_F(ExplainTest, Evicted) {
  const std::string server = StartServer(/*ram_blocks=*/6);
  PutPrompt(server, kNs, kPrompt, 0, 5);
  PutPrompt(server, testing::TestKey(6, 1), kPrompt, 0, 3);  // LRU pushes out blocks 0..1.
  json r = Explain(server, {"--namespace=" + KeyToHex(kNs), "--prompt-ids=" + Ids(kPrompt)});
  EXPECT_EQ(r["usable_blocks"], 0);
  EXPECT_EQ(r["break"]["index"], 0);
  EXPECT_EQ(r["break"]["reason"], "evicted");
  EXPECT_EQ(r["break"]["tier"], "ram");
  EXPECT_EQ(r["block_list"][4]["status"], "unreachable");
}

TEST_F(ExplainTest, ErasedAndFlushed) {
  const std::string server = StartServer();
  PutPrompt(server, kNs, kPrompt, 0, 5);
  const std::vector<Key> keys = ChainedBlockKeys(kNs, kPrompt, kBlockSize);
  testing::CommandResult evict = testing::Run({Bin("kvcache-admin"), "--server=" + server,
                                               "--key=" + KeyToHex(keys[3]), "evict"});
  ASSERT_EQ(evict.exit_status, 0) << evict.output;
  json r = Explain(server, {"--namespace=" + KeyToHex(kNs), "--prompt-ids=" + Ids(kPrompt)});
  EXPECT_EQ(r["break"]["index"], 3);
  EXPECT_EQ(r["break"]["reason"], "erased");

  testing::CommandResult flush =
      testing::Run({Bin("kvcache-admin"), "--server=" + server, "--tier=ram", "flush"});
  ASSERT_EQ(flush.exit_status, 0) << flush.output;
  r = Explain(server, {"--namespace=" + KeyToHex(kNs), "--prompt-ids=" + Ids(kPrompt)});
  EXPECT_EQ(r["break"]["index"], 0);
  EXPECT_EQ(r["break"]["reason"], "flushed");
}

TEST_F(ExplainTest, AnotherNamespaceNamesTheFieldsThatDiffer) {
  ModelConfig config = *PresetConfig("tiny");
  ASSERT_TRUE(WriteRandomModel(dir_.Sub("model"), config, MakeModelOptions()).ok());
  std::unique_ptr<Model> model = *Model::Load(dir_.Sub("model"));
  // The worker that wrote the blocks ran with --block-size=2 and a salt.
  const Key theirs = NamespaceId(model->Namespace(2, "tenant-a"));
  const std::string server = StartServer();
  PutPrompt(server, theirs, kPrompt, 0, 6, /*block_size=*/2);

  json r = Explain(server, {"--model=" + dir_.Sub("model"), "--prompt-text=" +
                                std::string(kPrompt.begin(), kPrompt.end())});
  // (--prompt-text tokenizes to the same byte ids as kPrompt.)
  EXPECT_EQ(r["usable_blocks"], 0);
  EXPECT_EQ(r["break"]["reason"], "other_namespace");
  EXPECT_EQ(r["break"]["stored_block_size"], 2);
  // Without the salt no variant of this model gives their namespace: the salt is suspect.
  const std::string unsalted = r["break"]["differs_in"].dump();
  EXPECT_NE(unsalted.find("cache_salt"), std::string::npos) << unsalted;
  ASSERT_EQ(r["namespaces_held"].size(), 1u);
  EXPECT_EQ(r["namespaces_held"][0]["namespace"], KeyToHex(theirs));

  // With the same salt, exactly the block size differs.
  r = Explain(server, {"--model=" + dir_.Sub("model"), "--cache-salt=tenant-a",
                       "--prompt-ids=" + Ids(kPrompt)});
  EXPECT_EQ(r["break"]["reason"], "other_namespace");
  EXPECT_EQ(r["break"]["differs_in"], json::array({"block_size: 2 (yours: 4)"}))
      << r["break"].dump();
  EXPECT_EQ(r["namespaces_held"][0]["differs_in"], json::array({"block_size: 2 (yours: 4)"}));

  // Another dtype is named as such.
  NamespaceDescription f16 = model->Namespace(kBlockSize, "");
  f16.dtype = "f16";
  PutPrompt(server, NamespaceId(f16), kPrompt, 0, 5);
  r = Explain(server, {"--model=" + dir_.Sub("model"), "--prompt-ids=" + Ids(kPrompt)});
  EXPECT_EQ(r["break"]["reason"], "other_namespace");
  EXPECT_EQ(r["break"]["differs_in"], json::array({"dtype: f16 (yours: f32)"}))
      << r["break"].dump();
}

TEST_F(ExplainTest, SaysWhereTheBlocksOfAClusterAre) {
  const std::string a = StartServer();
  const std::string b = StartServer();
  PutPrompt(a, kNs, kPrompt, 0, 2);
  PutPrompt(b, kNs, kPrompt, 2, 4);
  json r = Explain(a + "," + b, {"--namespace=" + KeyToHex(kNs), "--prompt-ids=" + Ids(kPrompt)});
  EXPECT_EQ(r["usable_blocks"], 4);
  EXPECT_EQ(r["block_list"][1]["stored"][0]["node"], a);
  EXPECT_EQ(r["block_list"][3]["stored"][0]["node"], b);
  EXPECT_EQ(r["break"]["index"], 4);
  EXPECT_EQ(r["break"]["reason"], "never_stored");
}

TEST_F(ExplainTest, BadFlagsAreUsageErrors) {
  const std::string server = StartServer();
  testing::CommandResult r = testing::Run(
      {Bin("kvcache-admin"), "--server=" + server, "--prompt-ids=1,2", "explain"});
  EXPECT_EQ(r.exit_status, 2) << r.output;
  EXPECT_NE(r.output.find("--model=DIR or --namespace=HEX"), std::string::npos) << r.output;
  r = testing::Run({Bin("kvcache-admin"), "--server=" + server,
                    "--namespace=" + KeyToHex(kNs), "explain"});
  EXPECT_EQ(r.exit_status, 2) << r.output;
}

// `kvcache-admin events`: replays from --from, text and JSON lines.
TEST_F(ExplainTest, EventsTailsAndResumes) {
  const std::string server = StartServer();
  PutPrompt(server, kNs, kPrompt, 0, 3);
  testing::CommandResult r = testing::Run({Bin("kvcache-admin"), "--server=" + server,
                                           "--from=2", "--count=2", "--json", "events"});
  ASSERT_EQ(r.exit_status, 0) << r.output;
  std::vector<json> lines;
  size_t start = 0;
  while (start < r.output.size()) {
    const size_t end = r.output.find('\n', start);
    json j = json::parse(r.output.substr(start, end - start), nullptr, false);
    if (!j.is_discarded()) lines.push_back(j);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 3u) << r.output;  // The start, then events #2 and #3.
  EXPECT_EQ(lines[0]["type"], "start");
  EXPECT_EQ(lines[1]["type"], "stored");
  EXPECT_EQ(lines[1]["sequence"], 2);
  EXPECT_EQ(lines[2]["sequence"], 3);
  const std::vector<Key> keys = ChainedBlockKeys(kNs, kPrompt, kBlockSize);
  EXPECT_EQ(lines[2]["key"], KeyToHex(keys[2]));
  EXPECT_EQ(lines[2]["parent"], KeyToHex(keys[1]));

  r = testing::Run({Bin("kvcache-admin"), "--server=" + server, "--from=1", "--count=1",
                    "events"});
  ASSERT_EQ(r.exit_status, 0) << r.output;
  EXPECT_NE(r.output.find("#1 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stored ram ns=" + KeyToHex(kNs).substr(0, 16) + " key=" +
                          KeyToHex(keys[0])),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace kvcache
