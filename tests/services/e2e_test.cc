// End to end: the real kvcache-server and kvcache-admin binaries, as an operator runs them.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/cache_client.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/http_get.h"
#include "tests/process.h"
#include "tests/test_util.h"
#include "tests/tls_test_certs.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::CommandResult;
using testing::Process;
using testing::TempDir;
using testing::TestPayload;

class EndToEndTest : public ::testing::Test {
 protected:
  // Starts kvcache-server on a free port with a 4 MiB RAM tier over a 64 MiB disk tier;
  // `extra` flags come last (and win).
  std::unique_ptr<Process> StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{Bin("kvcache-server"), "--listen=127.0.0.1:0",
                                  "--ram-bytes=4MiB", "--disk-path=" + dir_.Sub("data"),
                                  "--disk-bytes=64MiB", "--metrics-listen="};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto server = std::make_unique<Process>(std::move(argv));
    EXPECT_TRUE(server->started());
    const std::string line = server->WaitForLine("listening on");
    address_ = testing::ListenAddress(line);
    EXPECT_FALSE(address_.empty()) << server->output();
    return server;
  }

  CommandResult Admin(std::vector<std::string> args) {
    args.insert(args.begin(), {Bin("kvcache-admin"), "--server=" + address_});
    return testing::Run(std::move(args));
  }

  std::string WriteFile(const std::string& name, const std::string& bytes) {
    const std::string path = dir_.Sub(name);
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  static std::string Hex64(uint64_t n) {
    char buf[65];
    snprintf(buf, sizeof(buf), "%064llx", static_cast<unsigned long long>(n));
    return buf;
  }

  TempDir dir_;
  std::string address_;
  const std::string ns_ = std::string(64, 'a');
};

TEST_F(EndToEndTest, BlockPushedToDiskSurvivesKill9ByteIdentical) {
  auto server = StartServer();
  const std::string first = TestPayload(256 << 10, 1);
  CommandResult put = Admin({"put", "--namespace=" + ns_, "--key=" + Hex64(1),
                             "--file=" + WriteFile("first", first)});
  ASSERT_EQ(put.exit_status, 0) << put.output;
  EXPECT_NE(put.output.find("stored"), std::string::npos);
  // 40 more blocks of 256 KiB: 10 MiB through a 4 MiB RAM tier pushes the first to disk.
  for (uint64_t i = 2; i <= 41; ++i) {
    CommandResult r = Admin({"put", "--namespace=" + ns_, "--key=" + Hex64(i),
                             "--file=" + WriteFile("b", TestPayload(256 << 10, i))});
    ASSERT_EQ(r.exit_status, 0) << r.output;
  }
  CommandResult inspect = Admin({"inspect", "--key=" + Hex64(1), "--json"});
  ASSERT_EQ(inspect.exit_status, 0) << inspect.output;
  EXPECT_EQ(nlohmann::json::parse(inspect.output)["tier"], "disk");

  server->Kill(SIGKILL);
  server = StartServer();
  const std::string out = dir_.Sub("out");
  CommandResult get =
      Admin({"get", "--namespace=" + ns_, "--key=" + Hex64(1), "--out=" + out});
  ASSERT_EQ(get.exit_status, 0) << get.output;
  EXPECT_EQ(ReadFile(out), first);

  CommandResult stats = Admin({"stats", "--json"});
  ASSERT_EQ(stats.exit_status, 0) << stats.output;
  nlohmann::json s = nlohmann::json::parse(stats.output);
  EXPECT_LE(s["ram"]["bytes"].get<uint64_t>(), s["ram"]["capacity_bytes"].get<uint64_t>());
  EXPECT_EQ(s["ram"]["capacity_bytes"].get<uint64_t>(), 4u << 20);
  EXPECT_GE(s["disk"]["blocks"].get<uint64_t>(), 1u);
  EXPECT_EQ(s["disk"]["hits"].get<uint64_t>(), 1u);
  for (const char* field : {"blocks", "bytes", "capacity_bytes", "hits", "misses", "evictions",
                            "demotions", "promotions", "checksum_failures", "write_errors",
                            "demotion_failures", "demotion_waits"}) {
    EXPECT_TRUE(s["ram"].contains(field)) << field;
    EXPECT_TRUE(s["disk"].contains(field)) << field;
  }
}

TEST_F(EndToEndTest, AdminCommandsAndTheirErrors) {
  auto server = StartServer();
  CommandResult health = Admin({"health"});
  EXPECT_EQ(health.exit_status, 0);
  EXPECT_NE(health.output.find("SERVING"), std::string::npos);

  CommandResult bad_key = Admin({"get", "--namespace=" + ns_, "--key=abc", "--out=/dev/null"});
  EXPECT_NE(bad_key.exit_status, 0);
  EXPECT_NE(bad_key.output.find("--key must be 64 hex digits"), std::string::npos)
      << bad_key.output;

  CommandResult bad_hex = Admin({"inspect", "--key=" + std::string(64, 'z')});
  EXPECT_NE(bad_hex.exit_status, 0);
  EXPECT_NE(bad_hex.output.find("hex"), std::string::npos) << bad_hex.output;

  CommandResult no_file = Admin({"put", "--namespace=" + ns_, "--key=" + Hex64(1)});
  EXPECT_NE(no_file.exit_status, 0);
  EXPECT_NE(no_file.output.find("--file"), std::string::npos);

  CommandResult missing = Admin({"get", "--namespace=" + ns_, "--key=" + Hex64(9),
                                 "--out=" + dir_.Sub("x")});
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_NE(missing.output.find("not cached"), std::string::npos);

  CommandResult bad_tier = Admin({"flush", "--tier=cold"});
  EXPECT_NE(bad_tier.exit_status, 0);
  EXPECT_NE(bad_tier.output.find("--tier"), std::string::npos);

  EXPECT_NE(Admin({"frobnicate"}).exit_status, 0);
  EXPECT_NE(Admin({}).exit_status, 0);

  ASSERT_EQ(Admin({"put", "--namespace=" + ns_, "--key=" + Hex64(5),
                   "--file=" + WriteFile("p", "payload")}).exit_status, 0);
  CommandResult ls = Admin({"ls", "--json"});
  ASSERT_EQ(ls.exit_status, 0);
  EXPECT_EQ(nlohmann::json::parse(ls.output)["blocks"].size(), 1u);
  CommandResult evict = Admin({"evict", "--namespace=" + ns_});
  EXPECT_NE(evict.output.find("evicted 1"), std::string::npos) << evict.output;
  CommandResult flush = Admin({"flush", "--tier=all"});
  EXPECT_EQ(flush.exit_status, 0) << flush.output;

  server->Kill(SIGKILL);
  CommandResult down = Admin({"stats", "--timeout=2s"});
  EXPECT_EQ(down.exit_status, 1);
  EXPECT_NE(down.output.find("GetStats to " + address_), std::string::npos) << down.output;
}

TEST_F(EndToEndTest, StandardHealthCheckAndReflection) {
  auto server = StartServer();
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());

  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(health->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  namespace refl = grpc::reflection::v1alpha;
  auto reflection = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext rctx;
  auto stream = reflection->ServerReflectionInfo(&rctx);
  refl::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  refl::ServerReflectionResponse listed;
  ASSERT_TRUE(stream->Read(&listed));
  std::vector<std::string> names;
  for (const auto& s : listed.list_services_response().service()) names.push_back(s.name());
  stream->WritesDone();
  stream->Finish().IgnoreError();
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  EXPECT_TRUE(has("kvcache.v1.CacheService"));
  EXPECT_TRUE(has("kvcache.v1.AdminService"));
  EXPECT_TRUE(has("grpc.health.v1.Health"));
}

TEST_F(EndToEndTest, SigtermDrainsAndStopsCleanly) {
  auto server = StartServer({"--shutdown-grace=1s"});
  ASSERT_EQ(Admin({"put", "--namespace=" + ns_, "--key=" + Hex64(3),
                   "--file=" + WriteFile("p", "payload")}).exit_status, 0);
  server->Kill(SIGTERM);
  EXPECT_EQ(server->Wait(), 0);
  EXPECT_NE(server->output().find("stopped cleanly"), std::string::npos) << server->output();
  // RocksDB was closed cleanly: a new server opens the same directory at once.
  server = StartServer();
  EXPECT_EQ(Admin({"health"}).exit_status, 0);
}

TEST_F(EndToEndTest, BadServerFlagsExitWithAReason) {
  CommandResult r = testing::Run({Bin("kvcache-server"), "--ram-bytes=lots",
                                  "--disk-path=" + dir_.Sub("d"), "--metrics-listen="});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.output.find("--ram-bytes"), std::string::npos) << r.output;
  r = testing::Run({Bin("kvcache-server"), "--eviction=nope", "--listen=127.0.0.1:0",
                    "--disk-path=" + dir_.Sub("d"), "--metrics-listen="});
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.output.find("unknown eviction policy"), std::string::npos) << r.output;
}

// The first line of `text`.
std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// grpc.health.v1 Check against `address`: the status name, or the call's error code name.
std::string HealthOf(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::Status s = health->Check(&ctx, req, &resp);
  if (!s.ok()) return "error " + std::to_string(s.error_code()) + ": " + s.error_message();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
}


TEST_F(EndToEndTest, ASecondServerOnAUsedPortFailsToStart) {
  auto first = StartServer();
  CommandResult second = testing::Run({Bin("kvcache-server"), "--listen=" + address_,
                                       "--disk-path=", "--metrics-listen="});
  EXPECT_EQ(second.exit_status, 1) << second.output;
  EXPECT_NE(second.output.find("--listen"), std::string::npos) << second.output;
  EXPECT_NE(second.output.find("in use"), std::string::npos) << second.output;
  EXPECT_EQ(second.output.find("listening on"), std::string::npos) << second.output;
  // The data channel's port is not shared either.
  CommandResult config = Admin({"config", "--json"});
  ASSERT_EQ(config.exit_status, 0) << config.output;
  const std::string data = nlohmann::json::parse(config.output)["data_listen"];
  CommandResult data_clash =
      testing::Run({Bin("kvcache-server"), "--listen=127.0.0.1:0", "--data-listen=" + data,
                    "--disk-path=", "--metrics-listen="});
  EXPECT_EQ(data_clash.exit_status, 1) << data_clash.output;
  EXPECT_NE(data_clash.output.find("--data-listen"), std::string::npos) << data_clash.output;
  EXPECT_EQ(Admin({"health"}).exit_status, 0);
}

TEST_F(EndToEndTest, HelpListsEveryFlagWithItsDefaultAndVersionPrintsTheVersion) {
  struct Program {
    std::string name;
    std::vector<std::string> flags;  // As --help must show them: --name=default.
  };
  const Program programs[] = {
      {"kvcache-server",
       {"--listen=127.0.0.1:50051", "--ram-bytes=512MiB", "--ram-shard-bits=-1",
        "--disk-path=./kvcache-data", "--disk-bytes=8GiB", "--max-block-bytes=16MiB",
        "--eviction=reuse-density", "--data-listen=auto", "--data-advertise=\"\"", "--metrics-listen=127.0.0.1:9464",
        "--shutdown-grace=10s", "--ram-arena=true"}},
      {"kvcache-admin",
       {"--server=127.0.0.1:50051", "--timeout=10s", "--json=false", "--namespace=\"\"",
        "--key=\"\"", "--parent=\"\"", "--file=\"\"", "--out=\"\"", "--limit=100",
        "--tier=\"\"", "--replicas=1"}},
  };
  for (const Program& p : programs) {
    CommandResult help = testing::Run({Bin(p.name), "--help"});
    EXPECT_EQ(help.exit_status, 0) << help.output;
    for (const std::string& flag : p.flags) {
      EXPECT_NE(help.output.find("  " + flag), std::string::npos) << p.name << " " << flag
                                                                  << "\n" << help.output;
    }
    // Dash spellings only.
    for (size_t at = help.output.find("\n  --"); at != std::string::npos;
         at = help.output.find("\n  --", at + 1)) {
      const std::string line = help.output.substr(at + 1, help.output.find('\n', at + 1) - at - 1);
      EXPECT_EQ(line.substr(0, line.find('=')).find('_'), std::string::npos) << line;
    }
    EXPECT_EQ(help.output.find("No flags matched"), std::string::npos) << help.output;
    CommandResult version = testing::Run({Bin(p.name), "--version"});
    EXPECT_EQ(version.exit_status, 0);
    EXPECT_EQ(FirstLine(version.output), p.name + " 0.1.0") << version.output;
  }
}

TEST_F(EndToEndTest, UsageErrorsExitTwoAndNameTheFlag) {
  auto server = StartServer();
  struct Case {
    std::vector<std::string> args;
    std::string expected;  // In the first line of output.
  };
  const Case admin_cases[] = {
      {{"ls", "--limit=abc"}, "--limit=abc"},
      {{"ls", "--frobnicate"}, "unknown flag --frobnicate"},
      {{"--timeout=2", "stats"}, "needs a unit"},
      {{"ls", "--namespace=abc"}, "--namespace"},
      {{"frobnicate"}, "unknown command"},
  };
  for (const Case& c : admin_cases) {
    CommandResult r = Admin(c.args);
    EXPECT_EQ(r.exit_status, 2) << r.output;
    EXPECT_NE(FirstLine(r.output).find(c.expected), std::string::npos) << r.output;
  }
  const std::string disk = "--disk-path=" + dir_.Sub("d");
  const Case server_cases[] = {
      {{"--listen=notanaddr"}, "--listen"},
      {{"--listen=127.0.0.1"}, "--listen"},
      {{"--listen=no.such.host.invalid:5000"}, "--listen"},
      {{"--listen=127.0.0.1:0", "--ram-bytes=0"}, "--ram-bytes"},
      {{"--listen=127.0.0.1:0", "--ram-shard-bits=40"}, "--ram-shard-bits"},
      {{"--listen=127.0.0.1:0", "--shutdown-grace=2"}, "needs a unit"},
      {{"--listen=127.0.0.1:0", "--data-listen=nope"}, "--data-listen"},
      {{"--listen=127.0.0.1:0", "--bogus"}, "unknown flag --bogus"},
  };
  for (const Case& c : server_cases) {
    std::vector<std::string> argv{Bin("kvcache-server"), disk, "--metrics-listen="};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    CommandResult r = testing::Run(argv);
    EXPECT_EQ(r.exit_status, 2) << r.output;
    // Our reason comes first: no gRPC log line before it.
    EXPECT_EQ(FirstLine(r.output).rfind("kvcache-server: ", 0), 0u) << r.output;
    EXPECT_NE(FirstLine(r.output).find(c.expected), std::string::npos) << r.output;
  }
}

TEST_F(EndToEndTest, HealthAnswersNotServingWhileDraining) {
  auto server = StartServer({"--shutdown-grace=3s"});
  EXPECT_EQ(HealthOf(address_), "SERVING");
  const auto sent = std::chrono::steady_clock::now();
  server->Kill(SIGTERM);
  ASSERT_NE(server->WaitForLine("draining"), "") << server->output();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(HealthOf(address_), "NOT_SERVING");
  // Still serving calls while load balancers move away.
  EXPECT_EQ(Admin({"stats"}).exit_status, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(HealthOf(address_), "NOT_SERVING");
  EXPECT_EQ(server->Wait(), 0) << server->output();
  EXPECT_GE(std::chrono::steady_clock::now() - sent, std::chrono::seconds(3));
  EXPECT_NE(HealthOf(address_).rfind("error", 0), std::string::npos);
}

TEST_F(EndToEndTest, DataChannelOnEveryInterfaceIsReachedOnTheDialledHost) {
  auto server = StartServer({"--listen=0.0.0.0:0", "--allow-plaintext", "--allow-anonymous"});
  const std::string port = address_.substr(address_.rfind(':') + 1);
  // Off loopback the admin service is on its own listener only (127.0.0.1, port + 2 or,
  // with port 0, any: the start-up line names it).
  const std::string summary = server->output();
  const size_t admin_at = summary.find("| admin ");
  ASSERT_NE(admin_at, std::string::npos) << summary;
  const std::string admin = summary.substr(admin_at + 8, summary.find(' ', admin_at + 8) -
                                                             (admin_at + 8));
  CommandResult unimplemented = Admin({"config", "--json"});
  EXPECT_NE(unimplemented.exit_status, 0) << "admin served on a non-loopback --listen";
  address_ = admin;
  CommandResult config = Admin({"config", "--json"});
  // The server was reached on 0.0.0.0 here; dial 127.0.0.1 like a remote client would.
  CacheClientOptions o;
  o.target = "127.0.0.1:" + port;
  o.timeout = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<CacheClient>> client = NewCacheClient(o);
  ASSERT_TRUE(client.ok());
  CacheBlock block;
  block.key = testing::TestKey(1);
  block.payload = TestPayload(64 << 10, 1);
  Key ns = testing::TestKey(99);
  ASSERT_TRUE((*client)->Put(ns, {block}).ok());
  absl::StatusOr<std::vector<CacheBlock>> got = (*client)->Get(ns, {block.key});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().payload, block.payload);
  EXPECT_EQ((*client)->data_channel_fallbacks(), 0u);
  ASSERT_EQ(config.exit_status, 0) << config.output;
  EXPECT_EQ(nlohmann::json::parse(config.output)["data_listen"].get<std::string>().rfind(
                "0.0.0.0:", 0),
            0u)
      << config.output;
}

TEST_F(EndToEndTest, FallbacksToGrpcAreCountedByClientAndServer) {
  // A data channel advertised where nothing listens (port 1): every call falls back. (The
  // same-host path, which needs no TCP address, is off: it would carry the calls.)
  auto server = StartServer({"--data-advertise=127.0.0.1:1", "--metrics-listen=127.0.0.1:0",
                             "--local-listen=off"});
  const std::string first = server->output();
  const std::string marker = "metrics http://";
  const size_t at = first.find(marker);
  ASSERT_NE(at, std::string::npos) << first;
  const std::string metrics =
      first.substr(at + marker.size(), first.find("/metrics", at) - at - marker.size());
  CacheClientOptions o;
  o.target = address_;
  o.timeout = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<CacheClient>> client = NewCacheClient(o);
  ASSERT_TRUE(client.ok());
  CacheBlock block;
  block.key = testing::TestKey(1);
  block.payload = TestPayload(4096, 1);
  Key ns = testing::TestKey(99);
  ASSERT_TRUE((*client)->Put(ns, {block}).ok());
  absl::StatusOr<std::vector<CacheBlock>> got = (*client)->Get(ns, {block.key});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 1u);
  EXPECT_EQ((*client)->data_channel_fallbacks(), 2u);
  const std::string body = testing::HttpGet(metrics);
  EXPECT_NE(body.find("kvcache_data_channel_fallbacks_total{rpc=\"Put\"} 1"), std::string::npos)
      << body;
  EXPECT_NE(body.find("kvcache_data_channel_fallbacks_total{rpc=\"Get\"} 1"), std::string::npos)
      << body;
}

// The real binary offers the same-host path by default, and a client on this machine takes
// it by itself (docs/data-channel.md, "Same-host path").
TEST_F(EndToEndTest, SameHostClientUsesSharedMemoryByDefault) {
  auto server = StartServer();
  EXPECT_NE(server->output().find("+ same-host @kvcache-dc-"), std::string::npos)
      << server->output();
  CacheClientOptions o;
  o.target = address_;
  absl::StatusOr<std::unique_ptr<CacheClient>> client = NewCacheClient(o);
  ASSERT_TRUE(client.ok());
  CacheBlock block;
  block.key = testing::TestKey(1);
  block.payload = TestPayload(300000, 1);
  const Key ns = testing::TestKey(98);
  ASSERT_TRUE((*client)->Put(ns, {block}).ok());
  absl::StatusOr<std::vector<CacheBlock>> got = (*client)->Get(ns, {block.key});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_TRUE((*got)[0].payload == block.payload);
  EXPECT_EQ((*client)->local_path_calls(), 2u);
  EXPECT_EQ((*client)->local_path_fallbacks(), 0u);
  EXPECT_EQ((*client)->data_channel_fallbacks(), 0u);
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The server's environment as the kernel shows it (after any re-exec).
// Bytes of the mappings of /proc/PID/smaps that may get transparent huge pages
// ("THPeligible: 1").
uint64_t ThpEligibleBytes(pid_t pid) {
  std::istringstream smaps(ReadWholeFile("/proc/" + std::to_string(pid) + "/smaps"));
  uint64_t total = 0, size_kb = 0;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind("Size:", 0) == 0) size_kb = std::stoull(line.substr(5));
    if (line.rfind("THPeligible:", 0) == 0 && line.find('1') != std::string::npos) {
      total += size_kb << 10;
    }
  }
  return total;
}

// The arena's region is advised for huge pages by default (where the kernel offers them: THP
// "madvise" or "always"), which the start-up line, admin config and the process's own
// mappings show; --ram-huge-pages=false leaves it on 4 KiB pages.
TEST_F(EndToEndTest, TheArenaIsOnHugePagesUnlessToldNot) {
  const std::string thp = ReadWholeFile("/sys/kernel/mm/transparent_hugepage/enabled");
  const bool offered = thp.find("[always]") != std::string::npos ||
                       thp.find("[madvise]") != std::string::npos;
  auto server = StartServer();
  EXPECT_EQ(server->output().find("(arena, huge pages)") != std::string::npos, offered)
      << server->output();
  CommandResult config = Admin({"config", "--json"});
  ASSERT_EQ(config.exit_status, 0) << config.output;
  EXPECT_EQ(nlohmann::json::parse(config.output)["ram_huge_pages"], offered);
  // The region: at least 64 MiB beyond --ram-bytes.
  if (offered) EXPECT_GE(ThpEligibleBytes(server->pid()), 64u << 20);
  server.reset();

  server = StartServer({"--ram-huge-pages=false"});
  EXPECT_NE(server->output().find("(arena)"), std::string::npos) << server->output();
  config = Admin({"config", "--json"});
  ASSERT_EQ(config.exit_status, 0) << config.output;
  EXPECT_EQ(nlohmann::json::parse(config.output)["ram_huge_pages"], false);
  // Under "madvise" only advised mappings are eligible: not the region.
  if (thp.find("[madvise]") != std::string::npos) {
    EXPECT_LT(ThpEligibleBytes(server->pid()), 64u << 20);
  }
  EXPECT_EQ(Admin({"health"}).exit_status, 0);
}

TEST_F(EndToEndTest, WhatAdminShowsIsWhatItAccepts) {
  auto server = StartServer({"--ram-shard-bits=2", "--shutdown-grace=1s", "--io-threads=3"});
  ASSERT_EQ(Admin({"put", "--namespace=" + ns_, "--key=" + Hex64(7),
                   "--file=" + WriteFile("p", "payload")}).exit_status, 0);
  // ls shows full namespace ids, which --namespace takes back.
  CommandResult ls = Admin({"ls"});
  ASSERT_EQ(ls.exit_status, 0) << ls.output;
  EXPECT_NE(ls.output.find(ns_ + " " + Hex64(7)), std::string::npos) << ls.output;
  CommandResult ls_ns = Admin({"ls", "--namespace=" + ns_});
  EXPECT_EQ(ls_ns.exit_status, 0) << ls_ns.output;
  EXPECT_NE(ls_ns.output.find("1 blocks"), std::string::npos) << ls_ns.output;

  CommandResult config = Admin({"config", "--json"});
  ASSERT_EQ(config.exit_status, 0) << config.output;
  nlohmann::json c = nlohmann::json::parse(config.output);
  EXPECT_EQ(c["ram_shards"], 4);
  EXPECT_EQ(c["shutdown_grace"], "1s");
  EXPECT_EQ(c["io_threads"], 3);
  EXPECT_EQ(c["ram_arena"], true);
  EXPECT_GT(c["demotion_queue_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(c["auth"], "off");
  EXPECT_FALSE(c["data_listen"].get<std::string>().empty());
  EXPECT_TRUE(c.contains("data_advertise"));

  CommandResult health = Admin({"health", "--json"});
  ASSERT_EQ(health.exit_status, 0) << health.output;
  EXPECT_EQ(nlohmann::json::parse(health.output)["status"], "SERVING");
}


// The credentials flags of the real binaries: a mutual-TLS kvcache-server, kvcache-admin
// with and without a client certificate (health over the admin client, put and get over
// the cache client), and the plaintext policy at start (docs/security.md).
TEST_F(EndToEndTest, TlsFlagsOfServerAndAdmin) {
  const testing::TestCert ca = testing::MakeTestCa(dir_.path(), "ca");
  const testing::TestCert server_cert = testing::MakeTestLeaf(dir_.path(), "server", ca, 2);
  const testing::TestCert client_cert = testing::MakeTestLeaf(dir_.path(), "client", ca, 3);
  std::unique_ptr<Process> server =
      StartServer({"--tls-cert=" + server_cert.cert_file, "--tls-key=" + server_cert.key_file,
                   "--tls-client-ca=" + ca.cert_file});
  const std::vector<std::string> creds = {"--tls-ca=" + ca.cert_file,
                                          "--tls-cert=" + client_cert.cert_file,
                                          "--tls-key=" + client_cert.key_file};
  auto with_creds = [&](std::vector<std::string> args) {
    args.insert(args.begin(), creds.begin(), creds.end());
    return Admin(std::move(args));
  };
  CommandResult r = with_creds({"health"});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_NE(r.output.find("SERVING"), std::string::npos) << r.output;
  const std::string ns(64, 'a');
  const std::string key = std::string(63, '0') + "1";
  const std::string payload = TestPayload(100000, 5);
  r = with_creds({"put", "--namespace=" + ns, "--key=" + key,
                  "--file=" + WriteFile("block.bin", payload)});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  r = with_creds({"get", "--namespace=" + ns, "--key=" + key, "--out=" + dir_.Sub("back.bin")});
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_EQ(ReadFile(dir_.Sub("back.bin")), payload);

  r = Admin({"health"});
  EXPECT_EQ(r.exit_status, 1) << "plaintext to a TLS server\n" << r.output;
  r = Admin({"--tls-ca=" + ca.cert_file, "health"});
  EXPECT_EQ(r.exit_status, 1) << "no client certificate\n" << r.output;
  r = Admin({"--tls-ca=" + dir_.Sub("missing.pem"), "health"});
  EXPECT_NE(r.exit_status, 0);
  EXPECT_NE(r.output.find("--tls-ca"), std::string::npos) << r.output;

  // Plaintext: a warning on loopback; refused elsewhere unless --allow-plaintext.
  std::unique_ptr<Process> plain = StartServer({"--disk-path="});
  EXPECT_NE(plain->output().find("warning: plaintext"), std::string::npos) << plain->output();
  r = testing::Run({Bin("kvcache-server"), "--listen=0.0.0.0:0", "--disk-path=",
                    "--metrics-listen="});
  EXPECT_EQ(r.exit_status, 2) << r.output;
  EXPECT_NE(r.output.find("--allow-plaintext"), std::string::npos) << r.output;
  r = testing::Run({Bin("kvcache-server"), "--listen=127.0.0.1:0", "--disk-path=",
                    "--metrics-listen=", "--tls-cert=" + server_cert.cert_file,
                    "--tls-key=" + client_cert.key_file});
  EXPECT_EQ(r.exit_status, 2) << r.output;
  EXPECT_NE(r.output.find("--tls-key"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kvcache
