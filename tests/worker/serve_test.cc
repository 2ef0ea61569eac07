// kvcache-worker serve, end to end: the real binary behind kvcache.v1.InferenceService,
// with and without a real kvcache-server.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "kvcache/v1/worker.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/process.h"
#include "tests/test_util.h"
#include "tests/tls_test_certs.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::CommandResult;
using testing::Process;
using testing::TempDir;
namespace pb = ::kvcache::v1;

struct Streamed {
  grpc::Status status;
  std::vector<uint32_t> tokens;
  int messages = 0;
  pb::GenerateStats stats;
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CommandResult made = testing::Run(
        {Bin("kvcache-worker"), "make-model", "--out=" + model_, "--preset=tiny", "--seed=4"});
    ASSERT_EQ(made.exit_status, 0) << made.output;
    for (int i = 0; i < 10; ++i) prompt_ += "Serving tokens one at a time, from shared blocks. ";
    prompt_.resize(300);
  }

  std::unique_ptr<Process> StartWorker(const std::string& cache,
                                       const std::string& grace = "1s") {
    std::vector<std::string> argv = {Bin("kvcache-worker"), "serve", "--model=" + model_,
                                     "--listen=127.0.0.1:0", "--shutdown-grace=" + grace};
    if (!cache.empty()) argv.push_back("--cache=" + cache);
    auto worker = std::make_unique<Process>(argv);
    const std::string address = testing::ListenAddress(worker->WaitForLine("listening on"));
    EXPECT_FALSE(address.empty()) << worker->output();
    address_ = address;
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    stub_ = pb::InferenceService::NewStub(channel_);
    return worker;
  }

  Streamed Generate(const std::string& text, uint32_t n) {
    pb::GenerateRequest request;
    request.set_prompt_text(text);
    request.set_max_new_tokens(n);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = stub_->Generate(&context, request);
    Streamed out;
    pb::GenerateResponse message;
    while (reader->Read(&message)) {
      ++out.messages;
      out.tokens.insert(out.tokens.end(), message.tokens().begin(), message.tokens().end());
      if (message.has_stats()) out.stats = message.stats();
    }
    out.status = reader->Finish();
    return out;
  }

  // The tokens the one-shot CLI gives for `text`.
  std::vector<uint32_t> CliTokens(const std::string& text, uint32_t n) {
    CommandResult r =
        testing::Run({Bin("kvcache-worker"), "generate", "--model=" + model_,
                      "--prompt-text=" + text, "--max-new-tokens=" + std::to_string(n), "--json"});
    EXPECT_EQ(r.exit_status, 0) << r.output;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line[0] == '{') {
        return nlohmann::json::parse(line)["tokens"].get<std::vector<uint32_t>>();
      }
    }
    return {};
  }

  TempDir dir_;
  const std::string model_ = dir_.Sub("tiny");
  std::string prompt_;
  std::string address_;  // Of the last worker started.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::InferenceService::Stub> stub_;
};

TEST_F(ServeTest, StreamsTokensWithoutACache) {
  auto worker = StartWorker("");
  const Streamed r = Generate(prompt_, 6);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens, CliTokens(prompt_, 6));
  EXPECT_EQ(r.messages, 7);  // One per token, then the stats.
  EXPECT_EQ(r.stats.prompt_tokens(), 300u);
  EXPECT_EQ(r.stats.cached_tokens(), 0u);
  EXPECT_GT(r.stats.ttft_ms(), 0);

  grpc::health::v1::HealthCheckRequest health_request;
  grpc::health::v1::HealthCheckResponse health;
  grpc::ClientContext context;
  ASSERT_TRUE(
      grpc::health::v1::Health::NewStub(channel_)->Check(&context, health_request, &health).ok());
  EXPECT_EQ(health.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  const Streamed empty = Generate("", 3);
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  worker->Kill(SIGTERM);
  EXPECT_EQ(worker->Wait(), 0) << worker->output();
}

TEST_F(ServeTest, SharesPrefixesThroughTheCacheUnderConcurrentRequests) {
  ASSERT_TRUE(std::filesystem::exists(Bin("kvcache-server"))) << Bin("kvcache-server");
  Process server({Bin("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=64MiB",
                  "--disk-path=" + dir_.Sub("data"), "--disk-bytes=256MiB", "--metrics-listen="});
  const std::string cache = testing::ListenAddress(server.WaitForLine("listening on"));
  ASSERT_FALSE(cache.empty()) << server.output();
  auto worker = StartWorker(cache);

  const std::vector<uint32_t> want = CliTokens(prompt_, 5);
  const Streamed cold = Generate(prompt_, 5);
  ASSERT_TRUE(cold.status.ok()) << cold.status.error_message();
  EXPECT_EQ(cold.tokens, want);
  EXPECT_EQ(cold.stats.cached_tokens(), 0u);
  // Publishing is asynchronous: wait until the blocks are in.
  Streamed warm;
  for (int i = 0; i < 50; ++i) {
    warm = Generate(prompt_, 5);
    if (warm.stats.cached_tokens() == 288) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(warm.stats.cached_tokens(), 288u);
  EXPECT_EQ(warm.tokens, want);
  // Where the warm TTFT went: the fetch and the compute are both in it.
  EXPECT_GT(warm.stats.fetch_ms(), 0);
  EXPECT_GT(warm.stats.compute_ms(), 0);
  EXPECT_LE(warm.stats.lookup_ms() + warm.stats.fetch_ms() + warm.stats.place_ms() +
                warm.stats.compute_ms(),
            warm.stats.ttft_ms());

  // `generate --worker` runs the request on this worker and prints what it reports.
  CommandResult remote = testing::Run({Bin("kvcache-worker"), "generate", "--worker=" + address_,
                                       "--prompt-text=" + prompt_, "--max-new-tokens=5", "--json"});
  ASSERT_EQ(remote.exit_status, 0) << remote.output;
  const nlohmann::json j = nlohmann::json::parse(remote.output.substr(remote.output.find('{')));
  EXPECT_EQ(j["tokens"].get<std::vector<uint32_t>>(), want);
  EXPECT_EQ(j["cached_tokens"].get<int>(), 288);
  EXPECT_GT(j["compute_ms"].get<double>(), 0);
  EXPECT_FALSE(j.contains("model_load_ms"));  // The model is resident there.

  // Four requests at once, each a different continuation of the cached prefix.
  std::vector<std::string> prompts;
  std::vector<std::vector<uint32_t>> wants;
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(prompt_ + std::to_string(i) + " and then");  // Diverge at 300.
    wants.push_back(CliTokens(prompts.back(), 4));
  }
  std::vector<Streamed> got(prompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = Generate(prompts[i], 4); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_TRUE(got[i].status.ok()) << got[i].status.error_message();
    EXPECT_EQ(got[i].tokens, wants[i]) << i;
    EXPECT_EQ(got[i].stats.cached_tokens(), 288u) << i;
  }

  // The cache server killed: requests still answer, with the same tokens.
  server.Kill(SIGKILL);
  const Streamed down = Generate(prompt_, 5);
  ASSERT_TRUE(down.status.ok()) << down.status.error_message();
  EXPECT_EQ(down.tokens, want);
  EXPECT_EQ(down.stats.cached_tokens(), 0u);
  EXPECT_FALSE(down.stats.cache_note().empty());
}

// grpc.health.v1 Check: the status name, or "error" and the call's code.
std::string HealthOf(const std::string& address) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return "error " + std::to_string(s.error_code());
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}

TEST_F(ServeTest, ASecondWorkerOnAUsedPortFailsToStart) {
  auto first = StartWorker("");
  CommandResult second = testing::Run(
      {Bin("kvcache-worker"), "serve", "--model=" + model_, "--listen=" + address_});
  EXPECT_EQ(second.exit_status, 1) << second.output;
  EXPECT_NE(second.output.find("--listen"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("in use"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("listening on"), std::string::npos) << second.output;
  EXPECT_EQ(HealthOf(address_), "SERVING");
}

TEST_F(ServeTest, HealthAnswersNotServingWhileDraining) {
  auto worker = StartWorker("", "3s");
  EXPECT_EQ(HealthOf(address_), "SERVING");
  worker->Kill(SIGTERM);
  ASSERT_NE(worker->WaitForLine("draining"), "") << worker->output();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(HealthOf(address_), "NOT_SERVING");
  // Requests are still served while load balancers move away.
  const Streamed r = Generate("drain", 2);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(worker->Wait(), 0) << worker->output();
  EXPECT_EQ(HealthOf(address_).rfind("error", 0), 0u);
}

TEST_F(ServeTest, AdminPointedAtAWorkerSaysWhy) {
  auto worker = StartWorker("");
  CommandResult r = testing::Run({Bin("kvcache-admin"), "--server=" + address_, "stats"});
  EXPECT_EQ(r.exit_status, 1) << r.output;
  EXPECT_NE(r.output.find("UNIMPLEMENTED"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kvcache-server"), std::string::npos) << r.output;
}

TEST_F(ServeTest, WorkerHelpListsEveryFlagAndBadFlagsAreUsageErrors) {
  CommandResult help = testing::Run({Bin("kvcache-worker"), "--help"});
  EXPECT_EQ(help.exit_status, 0) << help.output;
  for (const char* flag :
       {"--out=\"\"", "--preset=tiny", "--seed=0", "--dtype=f32", "--shards=1", "--model=\"\"",
        "--cache=\"\"", "--prompt-ids=\"\"", "--prompt-text=\"\"", "--prompt-file=\"\"",
        "--max-new-tokens=16", "--dump-logits=\"\"", "--json=false", "--block-size=16",
        "--cache-salt=\"\"", "--cache-timeout-ms=2000", "--listen=127.0.0.1:50061",
        "--shutdown-grace=10s"}) {
    EXPECT_NE(help.output.find(std::string("  ") + flag), std::string::npos) << flag;
  }
  CommandResult version = testing::Run({Bin("kvcache-worker"), "--version"});
  EXPECT_EQ(version.exit_status, 0);
  EXPECT_EQ(version.output, "kvcache-worker 0.1.0\n");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"serve", "--model=" + model_, "--listen=127.0.0.1"},
        std::vector<std::string>{"serve", "--model=" + model_, "--listen=notanaddr"},
        std::vector<std::string>{"serve", "--model=" + model_, "--shutdown-grace=3"},
        std::vector<std::string>{"generate", "--model=" + model_, "--max-new-tokens=x"},
        std::vector<std::string>{"serve", "--bogus"}}) {
    args.insert(args.begin(), Bin("kvcache-worker"));
    CommandResult r = testing::Run(args);
    EXPECT_EQ(r.exit_status, 2) << r.output;
    EXPECT_EQ(r.output.rfind("kvcache-worker: ", 0), 0u) << r.output;
  }
}

// With --auth-tokens every caller of the worker needs a listed token (any role), a reload
// (SIGHUP) revokes one at once, and a worker off loopback without a callers file refuses
// to start unless --allow-anonymous.
TEST_F(ServeTest, CallersNeedATokenWhenTheWorkerHasACallersFile) {
  const std::string tokens = dir_.path() + "/callers";
  const std::string token_file = dir_.path() + "/token";
  std::ofstream(tokens) << "token router-0123456789abcdef tenant=default role=reader\n";
  std::ofstream(token_file) << "router-0123456789abcdef\n";
  Process worker({Bin("kvcache-worker"), "serve", "--model=" + model_, "--listen=127.0.0.1:0",
                  "--shutdown-grace=0s", "--auth-tokens=" + tokens});
  const std::string address = testing::ListenAddress(worker.WaitForLine("listening on"));
  ASSERT_FALSE(address.empty()) << worker.output();
  auto generate = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {Bin("kvcache-worker"), "generate", "--worker=" + address,
                                     "--prompt-text=hello there", "--max-new-tokens=2"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::Run(argv);
  };
  CommandResult anonymous = generate({});
  EXPECT_EQ(anonymous.exit_status, 1) << anonymous.output;
  EXPECT_NE(anonymous.output.find("requires credentials"), std::string::npos) << anonymous.output;
  CommandResult with_token = generate({"--token-file=" + token_file});
  EXPECT_EQ(with_token.exit_status, 0) << with_token.output;

  std::ofstream(tokens) << "token other-0123456789abcdef tenant=default role=reader\n";
  worker.Kill(SIGHUP);
  ASSERT_NE(worker.WaitForLine("callers reloaded"), "") << worker.output();
  CommandResult revoked = generate({"--token-file=" + token_file});
  EXPECT_EQ(revoked.exit_status, 1) << revoked.output;
  EXPECT_NE(revoked.output.find("unknown or revoked bearer token"), std::string::npos)
      << revoked.output;

  CommandResult open = testing::Run({Bin("kvcache-worker"), "serve", "--model=" + model_,
                                     "--listen=0.0.0.0:0", "--allow-plaintext"});
  EXPECT_EQ(open.exit_status, 2) << open.output;
  EXPECT_NE(open.output.find("--allow-anonymous"), std::string::npos) << open.output;
  Process anyone({Bin("kvcache-worker"), "serve", "--model=" + model_, "--listen=0.0.0.0:0",
                  "--allow-plaintext", "--allow-anonymous", "--shutdown-grace=0s"});
  EXPECT_NE(anyone.WaitForLine("listening on"), "") << anyone.output();
}


// Mutual TLS both ways: a kvcache-server that requires client certificates, and a worker
// that serves over TLS and reaches the cache with --tls-ca, presenting its own
// certificate (docs/security.md). The warm request proves the worker-to-cache path.
TEST_F(ServeTest, ServesAndReachesTheCacheOverMutualTls) {
  const testing::TestCert ca = testing::MakeTestCa(dir_.path(), "ca");
  const testing::TestCert cert = testing::MakeTestLeaf(dir_.path(), "node", ca, 2);
  const std::vector<std::string> tls = {"--tls-cert=" + cert.cert_file,
                                        "--tls-key=" + cert.key_file,
                                        "--tls-client-ca=" + ca.cert_file};
  std::vector<std::string> server_argv = {Bin("kvcache-server"), "--listen=127.0.0.1:0",
                                          "--ram-bytes=64MiB", "--disk-path=",
                                          "--metrics-listen="};
  server_argv.insert(server_argv.end(), tls.begin(), tls.end());
  Process server(server_argv);
  const std::string cache = testing::ListenAddress(server.WaitForLine("listening on"));
  ASSERT_FALSE(cache.empty()) << server.output();

  std::vector<std::string> argv = {Bin("kvcache-worker"), "serve", "--model=" + model_,
                                   "--listen=127.0.0.1:0", "--shutdown-grace=1s",
                                   "--cache=" + cache, "--tls-ca=" + ca.cert_file};
  argv.insert(argv.end(), tls.begin(), tls.end());
  Process worker(argv);
  const std::string address = testing::ListenAddress(worker.WaitForLine("listening on"));
  ASSERT_FALSE(address.empty()) << worker.output();

  // A plaintext client of the TLS worker is refused.
  channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  stub_ = pb::InferenceService::NewStub(channel_);
  EXPECT_EQ(Generate(prompt_, 1).status.error_code(), grpc::StatusCode::UNAVAILABLE);

  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read(ca.cert_file);
  ssl.pem_cert_chain = read(cert.cert_file);
  ssl.pem_private_key = read(cert.key_file);
  channel_ = grpc::CreateChannel(address, grpc::SslCredentials(ssl));
  stub_ = pb::InferenceService::NewStub(channel_);
  const Streamed cold = Generate(prompt_, 2);
  ASSERT_TRUE(cold.status.ok()) << cold.status.error_message();
  Streamed warm;
  for (int i = 0; i < 50; ++i) {
    warm = Generate(prompt_, 2);
    if (warm.stats.cached_tokens() == 288) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(warm.stats.cached_tokens(), 288u) << worker.output();
  EXPECT_EQ(warm.tokens, cold.tokens);
}

}  // namespace
}  // namespace kvcache
