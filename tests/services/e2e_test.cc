// End to end: the real kvcache-server and kvcache-admin binaries, as an operator runs them.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::CommandResult;
using testing::Process;
using testing::TempDir;
using testing::TestPayload;

class EndToEndTest : public ::testing::Test {
 protected:
  // Starts kvcache-server on a free port with a 4 MiB RAM tier over a 64 MiB disk tier.
  std::unique_ptr<Process> StartServer() {
    auto server = std::make_unique<Process>(std::vector<std::string>{
        Bin("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=4MiB",
        "--disk-path=" + dir_.Sub("data"), "--disk-bytes=64MiB", "--metrics-listen="});
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
                            "demotions", "promotions", "checksum_failures"}) {
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
  auto server = StartServer();
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
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.output.find("--ram-bytes"), std::string::npos) << r.output;
  r = testing::Run({Bin("kvcache-server"), "--eviction=nope", "--listen=127.0.0.1:0",
                    "--disk-path=" + dir_.Sub("d"), "--metrics-listen="});
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_NE(r.output.find("unknown eviction policy"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace kvcache
