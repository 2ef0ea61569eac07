// A 3-node cache cluster and 2 workers as separate processes, each with its own address on
// loopback, through a kill (SIGKILL), a freeze (SIGSTOP) and a partition (a proxy that stops
// forwarding): every request succeeds with the tokens and logits of a run without any cache,
// and the hit ratio recovers once the nodes are back. Prints requests, failures, p50/p99 time
// to first token and hit ratio per phase (scripts/cluster_demo.sh runs it longer).
//
// KVCACHE_CLUSTER_REQUESTS sets the requests per phase (default 8); KVCACHE_CLUSTER_PRESET
// the model (make-model --preset: tiny, the default, or bench, whose cold prefill takes
// longer than a cache deadline, as a real model's does).

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "kvcache/v1/worker.grpc.pb.h"
#include "client/rendezvous.h"
#include "tests/process.h"
#include "tests/tcp_proxy.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::Process;
using testing::TcpProxy;
using testing::TempDir;
namespace pb = ::kvcache::v1;

constexpr uint32_t kNewTokens = 4;
constexpr int kCacheTimeoutMs = 400;
const Key kNs = testing::TestKey(1, 77);  // Any namespace: placement is by (namespace, key).

std::string Preset() {
  const char* preset = std::getenv("KVCACHE_CLUSTER_PRESET");
  return preset != nullptr && *preset != '\0' ? preset : "tiny";
}

int RequestsPerPhase() {
  const char* n = std::getenv("KVCACHE_CLUSTER_REQUESTS");
  return n != nullptr && std::atoi(n) > 0 ? std::atoi(n) : 8;
}

struct Reply {
  grpc::Status status;
  std::vector<uint32_t> tokens;
  std::vector<float> logits;
  pb::GenerateStats stats;
};

// Logits from cached KV equal those computed from scratch up to float rounding (the cached
// and the recomputed positions go through differently shaped matrix products).
bool SameLogits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return false;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff <= 1e-4 * std::max(scale, 1.0);
}

struct Phase {
  std::string name;
  int requests = 0;
  int failures = 0;
  int mismatches = 0;
  std::vector<double> ttft_ms;
  uint64_t prompt_tokens = 0;
  uint64_t cached_tokens = 0;

  double Percentile(double p) const {
    if (ttft_ms.empty()) return 0;
    std::vector<double> v = ttft_ms;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
  }
  double HitRatio() const {
    return prompt_tokens ? static_cast<double>(cached_tokens) / prompt_tokens : 0;
  }
};

// One cache node: a kvcache-server process on its own port, restartable on that port.
class Node {
 public:
  Node(std::string dir, bool data_channel) : dir_(std::move(dir)), data_(data_channel) {
    Start("127.0.0.1:0");
  }
  void Start(const std::string& listen) {
    process_ = std::make_unique<Process>(std::vector<std::string>{
        Bin("kvcache-server"), "--listen=" + listen, "--ram-bytes=32MiB",
        "--disk-path=" + dir_, "--disk-bytes=128MiB", "--metrics-listen=",
        "--shutdown-grace=0s", data_ ? "--data-listen=auto" : "--data-listen=off"});
    address_ = testing::ListenAddress(process_->WaitForLine("listening on"));
    EXPECT_FALSE(address_.empty()) << process_->output();
  }
  void Restart() { Start(address_); }
  Process& process() { return *process_; }
  const std::string& address() const { return address_; }

 private:
  const std::string dir_;
  const bool data_;
  std::unique_ptr<Process> process_;
  std::string address_;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::CommandResult made = testing::Run(
        {Bin("kvcache-worker"), "make-model", "--out=" + model_, "--preset=" + Preset(), "--seed=9"});
    ASSERT_EQ(made.exit_status, 0) << made.output;
    // Every request shares one long system prompt (the hot prefix), then differs.
    std::string system;
    while (system.size() < 320) system += "You are a careful assistant; answer briefly. ";
    system.resize(320);
    for (int i = 0; i < 6; ++i) prompts_.push_back(absl::StrCat(system, "Question ", i, "?"));
  }

  std::unique_ptr<Process> StartWorker(const std::string& cache, std::string* address) {
    std::vector<std::string> argv = {Bin("kvcache-worker"), "serve", "--model=" + model_,
                                     "--listen=127.0.0.1:0", "--shutdown-grace=0s"};
    if (!cache.empty()) {
      argv.push_back("--cache=" + cache);
      argv.push_back("--replicas=2");
      argv.push_back(absl::StrCat("--cache-timeout-ms=", kCacheTimeoutMs));
    }
    auto worker = std::make_unique<Process>(argv);
    *address = testing::ListenAddress(worker->WaitForLine("listening on"));
    EXPECT_FALSE(address->empty()) << worker->output();
    return worker;
  }

  static Reply Generate(pb::InferenceService::Stub* stub, const std::string& text) {
    pb::GenerateRequest request;
    request.set_prompt_text(text);
    request.set_max_new_tokens(kNewTokens);
    request.set_return_logits(true);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->Generate(&context, request);
    Reply out;
    pb::GenerateResponse message;
    while (reader->Read(&message)) {
      out.tokens.insert(out.tokens.end(), message.tokens().begin(), message.tokens().end());
      out.logits.insert(out.logits.end(), message.logits().begin(), message.logits().end());
      if (message.has_stats()) out.stats = message.stats();
    }
    out.status = reader->Finish();
    return out;
  }

  // Sends RequestsPerPhase() requests, alternating workers and prompts, and checks each
  // against the run without a cache.
  Phase RunPhase(const std::string& name) {
    Phase phase{name};
    for (int i = 0; i < RequestsPerPhase(); ++i) {
      const size_t p = (next_++) % prompts_.size();
      const Reply r = Generate(workers_[i % workers_.size()].get(), prompts_[p]);
      ++phase.requests;
      if (!r.status.ok()) {
        ++phase.failures;
        ADD_FAILURE() << name << ": " << r.status.error_message();
        continue;
      }
      if (r.tokens != reference_[p].tokens || !SameLogits(r.logits, reference_[p].logits)) {
        ++phase.mismatches;
        ADD_FAILURE() << name << ": output differs from the run without a cache, prompt " << p;
      }
      phase.ttft_ms.push_back(r.stats.ttft_ms());
      phase.prompt_tokens += r.stats.prompt_tokens();
      phase.cached_tokens += r.stats.cached_tokens();
    }
    phases_.push_back(phase);
    return phase;
  }

  void PrintPhases() const {
    std::printf("\n%-22s %8s %8s %10s %10s %9s\n", "phase", "requests", "failures",
                "ttft p50", "ttft p99", "hit ratio");
    for (const Phase& p : phases_) {
      std::printf("%-22s %8d %8d %8.1fms %8.1fms %8.1f%%\n", p.name.c_str(), p.requests,
                  p.failures + p.mismatches, p.Percentile(0.5), p.Percentile(0.99),
                  100 * p.HitRatio());
    }
    std::fflush(stdout);
  }

  TempDir dir_;
  const std::string model_ = dir_.Sub("tiny");
  std::vector<std::string> prompts_;
  std::vector<Reply> reference_;
  std::vector<std::unique_ptr<pb::InferenceService::Stub>> workers_;
  std::vector<Phase> phases_;
  size_t next_ = 0;
};

TEST_F(ClusterTest, EveryRequestSucceedsThroughKillFreezeAndPartition) {
  std::printf("mode: loopback ports (each node its own port; the partition is a stopped proxy)\n");
  // The reference: a worker without any cache.
  {
    std::string address;
    auto plain = StartWorker("", &address);
    auto stub = pb::InferenceService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    Phase cold{"no cache (cold)"};
    for (const std::string& prompt : prompts_) {
      reference_.push_back(Generate(stub.get(), prompt));
      ++cold.requests;
      cold.ttft_ms.push_back(reference_.back().stats.ttft_ms());
      cold.prompt_tokens += reference_.back().stats.prompt_tokens();
      ASSERT_TRUE(reference_.back().status.ok()) << reference_.back().status.error_message();
      ASSERT_EQ(reference_.back().tokens.size(), kNewTokens);
      ASSERT_FALSE(reference_.back().logits.empty());
    }
    phases_.push_back(cold);
  }

  Node a(dir_.Sub("a"), true), b(dir_.Sub("b"), true), c(dir_.Sub("c"), false);
  // Node c is reached through a proxy, which a partition stops (its data channel is off so
  // that everything it serves goes through the proxy).
  TcpProxy to_c(c.address());
  ASSERT_FALSE(to_c.address().empty());
  const std::string cluster = absl::StrJoin({a.address(), b.address(), to_c.address()}, ",");

  std::vector<std::unique_ptr<Process>> worker_processes;
  for (int i = 0; i < 2; ++i) {
    std::string address;
    worker_processes.push_back(StartWorker(cluster, &address));
    workers_.push_back(pb::InferenceService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials())));
  }

  RunPhase("warm-up");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // Background publishes.
  const Phase before = RunPhase("before faults");

  a.process().Kill(SIGKILL);
  RunPhase("node a killed");
  a.Restart();
  RunPhase("node a restarted");

  b.process().Kill(SIGSTOP);
  RunPhase("node b frozen");
  b.process().Kill(SIGCONT);

  to_c.Cut();
  RunPhase("node c partitioned");
  to_c.Heal();

  // Back to health: breakers probe again within their backoff.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  RunPhase("after recovery");
  const Phase after = RunPhase("after recovery (2)");

  // A fourth node joins (the workers restart with the longer list, as DNS would give it):
  // only the blocks it gains move.
  Node d(dir_.Sub("d"), true);
  const std::vector<std::string> three = {a.address(), b.address(), to_c.address()};
  std::vector<std::string> four = three;
  four.push_back(d.address());
  size_t moved = 0, moved_elsewhere = 0;
  constexpr size_t kSample = 100000;
  for (size_t i = 0; i < kSample; ++i) {
    const Key key = testing::TestKey(i, 3);
    const std::string before_owner = LocateOwners(three, kNs, key)[0];
    const std::string after_owner = LocateOwners(four, kNs, key)[0];
    if (before_owner != after_owner) ++moved;
    if (before_owner != after_owner && after_owner != d.address()) ++moved_elsewhere;
  }
  worker_processes.clear();
  workers_.clear();
  for (int i = 0; i < 2; ++i) {
    std::string address;
    worker_processes.push_back(StartWorker(absl::StrJoin(four, ","), &address));
    workers_.push_back(pb::InferenceService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials())));
  }
  const Phase joined = RunPhase("4th node joined");
  PrintPhases();
  std::printf("a 4th node joining 3: %.1f%% of %zu keys move (to it: all but %zu)\n",
              100.0 * moved / kSample, kSample, moved_elsewhere);
  EXPECT_EQ(moved_elsewhere, 0u);
  EXPECT_GT(joined.HitRatio(), 0.5);

  int failures = 0;
  for (const Phase& p : phases_) failures += p.failures + p.mismatches;
  std::printf("requests with a wrong output or an error: %d\n", failures);
  EXPECT_EQ(failures, 0);
  EXPECT_GT(before.HitRatio(), 0.5);
  EXPECT_GT(after.HitRatio(), 0.5) << "the hit ratio did not recover";
}

}  // namespace
}  // namespace kvcache
