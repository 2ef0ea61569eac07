// `kvcache-bench throughput` end to end: the real bench binary against a real kvcache-server
// (RAM tier only) and against its own raw TCP server. Checks what a benchmark run must get
// right (every operation succeeds and its bytes check out, the JSON has its fields), never
// how fast it was.

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/process.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::ListenAddress;
using testing::Process;


// Runs the bench with `args` and returns its JSON line (failing the test if it exits
// non-zero or prints none).
nlohmann::json Bench(std::vector<std::string> args) {
  args.insert(args.begin(), {Bin("kvcache-bench"), "throughput"});
  args.push_back("--json");
  const testing::CommandResult r = testing::Run(args);
  EXPECT_EQ(r.exit_status, 0) << r.output;
  const size_t brace = r.output.rfind("\n{");
  const std::string line =
      r.output.substr(brace == std::string::npos ? 0 : brace + 1);
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << r.output;
  return j;
}

class ThroughputBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Process>(std::vector<std::string>{
        Bin("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=256MiB", "--disk-path=",
        "--max-block-bytes=8MiB", "--metrics-listen="});
    addr_ = ListenAddress(server_->WaitForLine("listening on"));
    ASSERT_FALSE(addr_.empty()) << server_->output();
  }

  std::unique_ptr<Process> server_;
  std::string addr_;
};

TEST_F(ThroughputBenchTest, KvcacheGetChecksEveryValue) {
  nlohmann::json j = Bench({"--target=kvcache", "--addr=" + addr_, "--op=get",
                            "--value-bytes=64KiB", "--clients=2", "--keys=16",
                            "--seconds=0.3", "--warmup-seconds=0.05", "--verify-every=1"});
  EXPECT_EQ(j["target"], "kvcache");
  EXPECT_GT(j["ops"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["verify_failures"], 0);
  // Warm-up reads are checked too, so at least every counted one was.
  EXPECT_GE(j["verified_full"].get<uint64_t>(), j["ops"].get<uint64_t>());
  for (const char* field : {"gbps", "ops_per_s", "p50_us", "p99_us"}) {
    EXPECT_TRUE(j.contains(field)) << field;
  }
}

// A Get of several consecutive keys (a prompt's blocks), over the same-host path and over TCP:
// every value checked, and the bytes counted are every block's.
TEST_F(ThroughputBenchTest, KvcacheGetOfSeveralKeysChecksThemAll) {
  for (const char* target : {"--target=kvcache", "--target=kvcache-tcp"}) {
    nlohmann::json j = Bench({target, "--addr=" + addr_, "--op=get", "--get-keys=4",
                              "--value-bytes=64KiB", "--clients=2", "--keys=16",
                              "--seconds=0.3", "--warmup-seconds=0.05", "--verify-every=1"});
    EXPECT_EQ(j["keys_per_get"], 4) << target;
    EXPECT_GT(j["ops"].get<uint64_t>(), 0u) << target;
    EXPECT_EQ(j["errors"], 0) << target;
    EXPECT_EQ(j["verify_failures"], 0) << target;
    EXPECT_EQ(j["bytes"].get<uint64_t>(), j["ops"].get<uint64_t>() * 4 * 65536) << target;
  }
}

TEST_F(ThroughputBenchTest, KvcachePutWritesFreshBlocks) {
  nlohmann::json j = Bench({"--target=kvcache", "--addr=" + addr_, "--op=put",
                            "--value-bytes=64KiB", "--clients=2", "--seconds=0.3",
                            "--warmup-seconds=0.05"});
  EXPECT_GT(j["ops"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["errors"], 0);
}

TEST_F(ThroughputBenchTest, GetOfKeysNeverWrittenCountsErrors) {
  const testing::CommandResult r =
      testing::Run({Bin("kvcache-bench"), "throughput", "--target=kvcache", "--addr=" + addr_,
           "--op=get", "--value-bytes=4KiB", "--keys=4", "--populate=false", "--seconds=0.2",
           "--warmup-seconds=0", "--json"});
  EXPECT_NE(r.exit_status, 0) << r.output;
  EXPECT_NE(r.output.find("\"errors\":"), std::string::npos) << r.output;
}

TEST_F(ThroughputBenchTest, LookupFindsTheWholeChain) {
  nlohmann::json j = Bench({"--target=kvcache", "--addr=" + addr_, "--op=lookup",
                            "--chain=64", "--seconds=0.3", "--warmup-seconds=0.05"});
  EXPECT_EQ(j["chain"], 64);
  EXPECT_GT(j["ops"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["verify_failures"], 0);
}

TEST(ThroughputBench, RawTcpCeilingMovesTheBytes) {
  Process raw({Bin("kvcache-bench"), "throughput", "--serve-rawtcp",
               "--listen=127.0.0.1:0"});
  const std::string addr = ListenAddress(raw.WaitForLine("listening on"));
  ASSERT_FALSE(addr.empty()) << raw.output();
  for (const char* op : {"--op=get", "--op=put"}) {
    nlohmann::json j = Bench({"--target=rawtcp", "--addr=" + addr, op, "--value-bytes=1MiB",
                              "--clients=2", "--seconds=0.2", "--warmup-seconds=0.05"});
    EXPECT_GT(j["ops"].get<uint64_t>(), 0u) << op;
    EXPECT_EQ(j["errors"], 0) << op;
  }
}

TEST(ThroughputBench, IndexScaleKeepsEveryBlock) {
  nlohmann::json j = Bench({"--op=index-scale", "--blocks=2000", "--seconds=0.1"});
  EXPECT_EQ(j["blocks"], 2000);
  EXPECT_EQ(j["misses"], 0);
  EXPECT_GT(j["bytes_per_block"].get<double>(), 0.0);
}

TEST(ThroughputBench, IndexScaleServedReadsEveryBlockThroughAServer) {
  nlohmann::json j = Bench({"--op=index-scale", "--blocks=2000", "--seconds=0.1", "--served",
                            "--clients=2"});
  EXPECT_EQ(j["misses"], 0);  // Every served Get returned its block, every Lookup all 64.
  EXPECT_GT(j["served_get_ops_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["served_lookup64_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["served_local_path_calls"].get<uint64_t>(), 0u);  // As a worker on the node.
  // Not served: no served figures.
  EXPECT_FALSE(Bench({"--op=index-scale", "--blocks=2000", "--seconds=0.05"})
                   .contains("served_get_ops_per_s"));
}

TEST(ThroughputBench, IndexScaleRunsTheChosenPolicy) {
  nlohmann::json j = Bench(
      {"--op=index-scale", "--blocks=2000", "--seconds=0.05", "--eviction=reuse-density"});
  EXPECT_EQ(j["eviction"], "reuse-density");
  EXPECT_EQ(j["misses"], 0);
  // The policy's own state is charged on top of the tiers' per-block overhead.
  EXPECT_GT(j["charged_overhead_bytes"].get<uint64_t>(),
            Bench({"--op=index-scale", "--blocks=2000", "--seconds=0.05"})["charged_overhead_bytes"]
                .get<uint64_t>());
  const testing::CommandResult bad = testing::Run(
      {Bin("kvcache-bench"), "throughput", "--op=index-scale", "--blocks=10", "--eviction=nope"});
  EXPECT_NE(bad.exit_status, 0);
  EXPECT_NE(bad.output.find("unknown eviction policy 'nope'"), std::string::npos) << bad.output;
}

TEST(MemoryBench, ReportsWritesAndRandomReads) {
  const testing::CommandResult r =
      testing::Run({Bin("kvcache-bench"), "memory", "--memory-bytes=1MiB", "--idle=0s"});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  for (const char* line : {"first touch", "again at once", "random read, dependent",
                           "random reads, independent", "1.0 MiB of random 64-byte lines"}) {
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  }
}

TEST(ThroughputBench, RejectsUnknownFlags) {
  const testing::CommandResult r =
      testing::Run({Bin("kvcache-bench"), "throughput", "--target=kvcache", "--bogus=1"});
  EXPECT_EQ(r.exit_status, 2) << r.output;
  EXPECT_NE(r.output.find("unknown flag --bogus"), std::string::npos) << r.output;
}

TEST_F(ThroughputBenchTest, TextReportsServerCpuOnlyWithItsPid) {
  const std::vector<std::string> run = {Bin("kvcache-bench"), "throughput", "--target=kvcache",
                                        "--addr=" + addr_, "--op=put", "--value-bytes=4KiB",
                                        "--seconds=0.2", "--warmup-seconds=0"};
  const testing::CommandResult without = testing::Run(run);
  EXPECT_EQ(without.exit_status, 0) << without.output;
  EXPECT_NE(without.output.find("client cpu"), std::string::npos) << without.output;
  EXPECT_EQ(without.output.find("server cpu"), std::string::npos) << without.output;

  // Any readable pid will do: this test's own.
  std::vector<std::string> with_pid = run;
  with_pid.push_back("--server-pid=" + std::to_string(getpid()));
  const testing::CommandResult with = testing::Run(with_pid);
  EXPECT_EQ(with.exit_status, 0) << with.output;
  EXPECT_NE(with.output.find("server cpu"), std::string::npos) << with.output;
}

TEST_F(ThroughputBenchTest, JsonSaysServerCpuIsUnmeasuredWithoutItsPid) {
  nlohmann::json j = Bench({"--target=kvcache", "--addr=" + addr_, "--op=put",
                            "--value-bytes=4KiB", "--seconds=0.2", "--warmup-seconds=0"});
  EXPECT_EQ(j["server_cpu_s"].get<double>(), -1.0);
  EXPECT_EQ(j["bytes"].get<uint64_t>(), j["ops"].get<uint64_t>() * 4096);
}

TEST(ThroughputBench, BlockCountsTakeDecimalSuffixes) {
  EXPECT_EQ(Bench({"--op=index-scale", "--blocks=2K", "--seconds=0.05"})["blocks"], 2000);
  EXPECT_EQ(Bench({"--op=index-scale", "--blocks=0.002M", "--seconds=0.05"})["blocks"], 2000);
  EXPECT_EQ(Bench({"--op=index-scale", "--blocks", "1500", "--seconds=0.05"})["blocks"], 1500);
}

TEST(ThroughputBench, HelpListsEveryFlagWithItsDefault) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{Bin("kvcache-bench"), "throughput", "--help"},
        std::vector<std::string>{Bin("kvcache-bench"), "--help"}}) {
    const testing::CommandResult r = testing::Run(args);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_NE(r.output.find("kvcache-grpc"), std::string::npos) << r.output;
    for (const char* flag :
         {"--target", "--addr", "--op", "--value-bytes", "--clients", "--seconds",
          "--warmup-seconds", "--keys", "--nonce", "--chain", "--blocks", "--server-pid",
          "--verify-every", "--json", "--listen", "--serve-rawtcp", "--fill-bytes",
          "--populate", "--tune-malloc"}) {
      EXPECT_NE(r.output.find(std::string(flag) + "="), std::string::npos) << flag;
    }
    EXPECT_NE(r.output.find("--blocks=100000"), std::string::npos) << r.output;
  }
  // The top-level help lists the trace command's flags as well.
  const testing::CommandResult top = testing::Run({Bin("kvcache-bench"), "--help"});
  EXPECT_NE(top.output.find("--simulate="), std::string::npos) << top.output;
}

TEST(ThroughputBench, SeveralKeysAGetIsForKvcacheOnly) {
  const testing::CommandResult r =
      testing::Run({Bin("kvcache-bench"), "throughput", "--target=redis",
                    "--addr=127.0.0.1:1", "--get-keys=4"});
  EXPECT_EQ(r.exit_status, 2) << r.output;
  EXPECT_NE(r.output.find("--get-keys above 1 is for the kvcache targets"), std::string::npos)
      << r.output;
}

TEST(ThroughputBench, UsageErrorsExitWithTwo) {
  for (const char* bad : {"--clients=abc", "--clients=0", "--trace=other-commands-flag",
                          "--op=scan", "--blocks=lots", "stray", "--get-keys=0",
                          "--get-keys=65"}) {
    const testing::CommandResult r = testing::Run(
        {Bin("kvcache-bench"), "throughput", "--target=kvcache", "--addr=127.0.0.1:1", bad});
    EXPECT_EQ(r.exit_status, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("usage: kvcache-bench throughput"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace kvcache
