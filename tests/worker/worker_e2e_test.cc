// End to end: the real kvcache-worker binary (and kvcache-server, when built) as a user
// runs them.

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/process.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::CommandResult;
using testing::Process;
using testing::TempDir;

class WorkerEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CommandResult made = Worker({"make-model", "--out=" + model_, "--preset=tiny", "--seed=3"});
    ASSERT_EQ(made.exit_status, 0) << made.output;
  }

  static CommandResult Worker(std::vector<std::string> args) {
    args.insert(args.begin(), Bin("kvcache-worker"));
    return testing::Run(std::move(args));
  }

  // Runs generate --json and parses the JSON line of its output.
  static nlohmann::json GenerateJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"generate", "--json"});
    CommandResult r = Worker(args);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line[0] == '{') return nlohmann::json::parse(line);
    }
    ADD_FAILURE() << "no JSON in: " << r.output;
    return nlohmann::json::object();
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // Expects `status` (2: a usage error, 1: the work failed) and a reason containing `flag`.
  static void ExpectFlagError(std::vector<std::string> args, const std::string& flag,
                              int status = 2) {
    CommandResult r = Worker(std::move(args));
    EXPECT_EQ(r.exit_status, status) << r.output;
    EXPECT_NE(r.output.find(flag), std::string::npos) << r.output;
  }

  TempDir dir_;
  const std::string model_ = dir_.Sub("tiny");
};

TEST_F(WorkerEndToEndTest, MakeModelIntoAnExistingFolderReplacesTheOldShards) {
  const std::string dir = dir_.Sub("remade");
  ASSERT_EQ(Worker({"make-model", "--out=" + dir, "--shards=3", "--seed=1"}).exit_status, 0);
  CommandResult again = Worker({"make-model", "--out=" + dir, "--seed=2"});
  ASSERT_EQ(again.exit_status, 0) << again.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/model-00001-of-00003.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/model.safetensors"));
  CommandResult r = Worker({"generate", "--model=" + dir, "--prompt-ids=1,2", "--max-new-tokens=1"});
  EXPECT_EQ(r.exit_status, 0) << r.output;
}

TEST_F(WorkerEndToEndTest, MakeModelWritesAHuggingFaceFolder) {
  EXPECT_TRUE(std::filesystem::exists(model_ + "/config.json"));
  EXPECT_TRUE(std::filesystem::exists(model_ + "/model.safetensors"));
  const nlohmann::json config = nlohmann::json::parse(ReadFile(model_ + "/config.json"));
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["torch_dtype"], "float32");
  CommandResult bf16 =
      Worker({"make-model", "--out=" + dir_.Sub("bf16"), "--preset=tiny", "--dtype=bf16"});
  ASSERT_EQ(bf16.exit_status, 0) << bf16.output;
  EXPECT_EQ(nlohmann::json::parse(ReadFile(dir_.Sub("bf16/config.json")))["torch_dtype"],
            "bfloat16");
}

TEST_F(WorkerEndToEndTest, GenerateJsonReportsTokensTimingsAndLogits) {
  const std::string logits_path = dir_.Sub("logits.bin");
  const std::string prompt = "Once upon a time, in a cache far away,";
  nlohmann::json j = GenerateJson({"--model=" + model_, "--prompt-text=" + prompt,
                                   "--max-new-tokens=8", "--dump-logits=" + logits_path});
  ASSERT_TRUE(j.contains("tokens"));
  ASSERT_EQ(j["tokens"].size(), 8u);
  EXPECT_EQ(j["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["cached_tokens"], 0);
  EXPECT_GT(j["ttft_ms"].get<double>(), 0.0);
  EXPECT_GE(j["total_ms"].get<double>(), j["ttft_ms"].get<double>());
  EXPECT_TRUE(j.contains("text"));
  // 8 rows of vocab_size (260) little-endian floats; token i is the argmax of row i.
  const std::string raw = ReadFile(logits_path);
  ASSERT_EQ(raw.size(), 8u * 260 * sizeof(float));
  for (size_t row = 0; row < 8; ++row) {
    const float* r = reinterpret_cast<const float*>(raw.data()) + row * 260;
    EXPECT_EQ(std::max_element(r, r + 260) - r, j["tokens"][row].get<long>()) << row;
  }
  // Deterministic from run to run.
  EXPECT_EQ(GenerateJson(
                {"--model=" + model_, "--prompt-text=" + prompt, "--max-new-tokens=8"})["tokens"],
            j["tokens"]);
}

TEST_F(WorkerEndToEndTest, PromptFlagsAgree) {
  std::ofstream(dir_.Sub("prompt.txt"), std::ios::binary) << "abc";
  const nlohmann::json text =
      GenerateJson({"--model=" + model_, "--prompt-text=abc", "--max-new-tokens=5"});
  const nlohmann::json ids =
      GenerateJson({"--model=" + model_, "--prompt-ids=97,98,99", "--max-new-tokens=5"});
  const nlohmann::json file = GenerateJson(
      {"--model=" + model_, "--prompt-file=" + dir_.Sub("prompt.txt"), "--max-new-tokens=5"});
  EXPECT_EQ(text["tokens"], ids["tokens"]);
  EXPECT_EQ(text["tokens"], file["tokens"]);
  // Plain output names the tokens too.
  CommandResult plain =
      Worker({"generate", "--model=" + model_, "--prompt-ids=97,98,99", "--max-new-tokens=5"});
  ASSERT_EQ(plain.exit_status, 0) << plain.output;
  EXPECT_NE(plain.output.find("tokens: "), std::string::npos);
}

TEST_F(WorkerEndToEndTest, ErrorsNameTheFlag) {
  ExpectFlagError({"generate", "--prompt-ids=1", "--max-new-tokens=1"}, "--model");
  ExpectFlagError({"generate", "--model=" + dir_.Sub("nope"), "--prompt-ids=1"}, "--model", 1);
  ExpectFlagError({"generate", "--model=" + model_, "--prompt-ids=1,x"}, "--prompt-ids");
  ExpectFlagError({"generate", "--model=" + model_, "--prompt-ids=1,999"}, "--prompt-ids");
  ExpectFlagError({"generate", "--model=" + model_, "--prompt-ids=1", "--prompt-text=a"},
                  "--prompt-text");
  ExpectFlagError({"generate", "--model=" + model_, "--prompt-file=" + dir_.Sub("none")},
                  "--prompt-file", 1);
  ExpectFlagError({"generate", "--model=" + model_, "--prompt-ids=1", "--max-new-tokens=5000"},
                  "--max-new-tokens");
  ExpectFlagError({"make-model", "--out=" + dir_.Sub("x"), "--preset=huge"}, "--preset");
  ExpectFlagError({"make-model", "--out=" + dir_.Sub("x"), "--dtype=f8"}, "--dtype");
  ExpectFlagError({"make-model", "--preset=tiny"}, "--out");
  ExpectFlagError({"frobnicate"}, "frobnicate");
}

// ---- With the real cache server.

class WorkerWithServerTest : public WorkerEndToEndTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(Bin("kvcache-server"))) << Bin("kvcache-server");
    WorkerEndToEndTest::SetUp();
    for (int i = 0; i < 20; ++i) prompt_ += "The cache remembers what the model computed. ";
    prompt_.resize(300);  // 18 full blocks of 16, 12 tokens over.
  }

  std::unique_ptr<Process> StartServer() {
    auto server = std::make_unique<Process>(std::vector<std::string>{
        Bin("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=64MiB",
        "--disk-path=" + dir_.Sub("data"), "--disk-bytes=256MiB", "--metrics-listen="});
    address_ = testing::ListenAddress(server->WaitForLine("listening on"));
    EXPECT_FALSE(address_.empty()) << server->output();
    return server;
  }

  nlohmann::json Generate() {
    return GenerateJson({"--model=" + model_, "--cache=" + address_, "--prompt-text=" + prompt_,
                         "--max-new-tokens=10", "--cache-timeout-ms=1000"});
  }

  std::string prompt_;
  std::string address_;
};

TEST_F(WorkerWithServerTest, ColdWarmAndServerDownGiveTheSameTokens) {
  const nlohmann::json plain =
      GenerateJson({"--model=" + model_, "--prompt-text=" + prompt_, "--max-new-tokens=10"});
  auto server = StartServer();
  const nlohmann::json cold = Generate();
  EXPECT_EQ(cold["cached_tokens"], 0);
  EXPECT_EQ(cold["published_blocks"], 18);
  EXPECT_EQ(cold["tokens"], plain["tokens"]);
  const nlohmann::json warm = Generate();
  EXPECT_EQ(warm["cached_tokens"], 288) << warm.dump();
  EXPECT_EQ(warm["tokens"], plain["tokens"]);

  server->Kill(SIGKILL);
  const nlohmann::json down = Generate();
  EXPECT_EQ(down["cached_tokens"], 0);
  EXPECT_TRUE(down.contains("cache_note")) << down.dump();
  EXPECT_EQ(down["tokens"], plain["tokens"]);

  // A restarted server (its RAM tier lost with the kill) is filled again by the next run.
  auto restarted = StartServer();
  EXPECT_EQ(Generate()["tokens"], plain["tokens"]);
  const nlohmann::json again = Generate();
  EXPECT_EQ(again["tokens"], plain["tokens"]);
  EXPECT_EQ(again["cached_tokens"], 288) << again.dump();
}

TEST_F(WorkerWithServerTest, SharedPrefixAcrossPromptsAndSalts) {
  auto server = StartServer();
  const std::string base = prompt_;
  Generate();  // Publishes 18 blocks.
  prompt_ = base.substr(0, 100) + " and now something else entirely, to see the prefix reused";
  const nlohmann::json branch = Generate();
  EXPECT_EQ(branch["cached_tokens"], 96) << branch.dump();
  const nlohmann::json salted =
      GenerateJson({"--model=" + model_, "--cache=" + address_, "--prompt-text=" + base,
                    "--max-new-tokens=3", "--cache-salt=other-tenant"});
  EXPECT_EQ(salted["cached_tokens"], 0) << salted.dump();
}

}  // namespace
}  // namespace kvcache
