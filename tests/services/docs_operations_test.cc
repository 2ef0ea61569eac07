// docs/operations.md, run: every command in its ```sh blocks runs as shown, in order,
// against real kvcache-servers (the first session's one, then the cluster section's three),
// and must exit 0, so the operator's reference cannot drift from the binaries. The only
// changes made to a command are the addresses (the documented 127.0.0.1:50051, :50052,
// :50053 and 127.0.0.1:9464 become free ports) and the working directory (a fresh
// temporary one).

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::Bin;
using testing::CommandResult;
using testing::Process;
using testing::TempDir;

// The lines of every ```sh block of `markdown`, in order (blank lines and comments dropped).
std::vector<std::string> ShellCommands(const std::string& markdown) {
  std::vector<std::string> commands;
  std::istringstream in(markdown);
  bool in_block = false;
  for (std::string line; std::getline(in, line);) {
    if (!in_block && line == "```sh") {
      in_block = true;
    } else if (in_block && line.rfind("```", 0) == 0) {
      in_block = false;
    } else if (in_block && !line.empty() && line[0] != '#') {
      commands.push_back(line);
    }
  }
  return commands;
}

// A port that was free a moment ago.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// Single-quotes `s` for bash.
std::string Quote(const std::string& s) { return "'" + ReplaceAll(s, "'", "'\\''") + "'"; }

TEST(DocsOperationsTest, EveryCommandRunsAsShown) {
  std::ifstream doc(std::string(KVCACHE_TEST_SOURCE_DIR) + "/docs/operations.md");
  ASSERT_TRUE(doc) << "docs/operations.md not found";
  std::stringstream text;
  text << doc.rdbuf();
  const std::vector<std::string> commands = ShellCommands(text.str());
  ASSERT_GE(commands.size(), 10u) << "the walkthrough's ```sh blocks are gone";

  TempDir dir;
  const std::string bin_dir = std::filesystem::absolute(testing::BinDir()).string();
  std::vector<std::pair<std::string, std::string>> addresses;  // Documented, real.
  for (const char* documented :
       {"127.0.0.1:50051", "127.0.0.1:50052", "127.0.0.1:50053", "127.0.0.1:9464"}) {
    addresses.emplace_back(documented, "127.0.0.1:" + std::to_string(FreePort()));
  }
  auto shell = [&](const std::string& command) {
    std::string real = command;
    for (const auto& [documented, free] : addresses) real = ReplaceAll(real, documented, free);
    return std::vector<std::string>{
        "/bin/bash", "-o", "pipefail", "-c",
        "cd " + Quote(dir.path()) + " && PATH=" + Quote(bin_dir) + ":\"$PATH\" && " +
            (real.rfind("kvcache-server", 0) == 0 ? "exec " : "") + real};
  };

  std::vector<std::unique_ptr<Process>> servers;
  int ran = 0;
  for (const std::string& command : commands) {
    const std::string program = command.substr(0, command.find(' '));
    if (program == "kvcache-server") {
      servers.push_back(std::make_unique<Process>(shell(command)));
      ASSERT_NE(servers.back()->WaitForLine("listening on"), "")
          << command << "\n" << servers.back()->output();
      continue;
    }
    if (program.rfind("kvcache-", 0) != 0 &&
        testing::Run({"/bin/bash", "-c", "command -v " + Quote(program)}).exit_status != 0) {
      std::cerr << "skipped (" << program << " is not installed): " << command << "\n";
      continue;
    }
    CommandResult r = testing::Run(shell(command));
    EXPECT_EQ(r.exit_status, 0) << command << "\n" << r.output;
    ++ran;
  }
  EXPECT_GE(ran, 8);
  ASSERT_FALSE(servers.empty()) << "the walkthrough starts no kvcache-server";
  for (auto& server : servers) server->Kill(SIGTERM);
  for (auto& server : servers) {
    EXPECT_EQ(server->Wait(), 0) << server->output();
    EXPECT_NE(server->output().find("stopped cleanly"), std::string::npos) << server->output();
  }
}

}  // namespace
}  // namespace kvcache
