// common/cli.h and the address helpers of common/socket_io.h: what the binaries rely on to
// check flags and to pick exit statuses.

#include "common/cli.h"

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, cli_test_address, "127.0.0.1:1", "an address for the help test");
ABSL_FLAG(absl::Duration, cli_test_grace, absl::Seconds(3), "a duration for the help test");

namespace kvcache {
namespace {

TEST(CliTest, UsageErrorsAreToldApartByTheirMarkNotTheirText) {
  EXPECT_EQ(ExitStatusOf(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitStatusOf(UsageError("--limit must be a positive number")), kExitUsage);
  EXPECT_TRUE(IsUsageError(UsageError("x")));
  EXPECT_TRUE(absl::IsInvalidArgument(UsageError("x")));
  // The same words from a server are not a usage error.
  EXPECT_EQ(ExitStatusOf(absl::InvalidArgumentError("--limit must be a positive number")),
            kExitFailure);
  EXPECT_EQ(ExitStatusOf(absl::UnavailableError("down")), kExitFailure);
}

TEST(CliTest, ListenAddressesAreCheckedBeforeTheyReachASocket) {
  for (const char* ok : {"127.0.0.1:0", "0.0.0.0:50051", "[::]:50051", "localhost:65535"}) {
    EXPECT_TRUE(CheckListenAddress("--listen", ok).ok()) << ok;
  }
  for (const char* bad : {"notanaddr", "127.0.0.1", "127.0.0.1:", ":50051", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:8o", "no.such.host.invalid:1"}) {
    absl::Status s = CheckListenAddress("--listen", bad);
    EXPECT_TRUE(IsUsageError(s)) << bad;
    EXPECT_EQ(s.message().rfind("--listen", 0), 0u) << s.message();
  }
}

TEST(CliTest, AnUnspecifiedAdvertisedHostBecomesTheDialledOne) {
  EXPECT_EQ(ReachableAddress("0.0.0.0:50052", "10.0.0.7:50051"), "10.0.0.7:50052");
  EXPECT_EQ(ReachableAddress("[::]:50052", "node-1.kvcache:50051"), "node-1.kvcache:50052");
  EXPECT_EQ(ReachableAddress("[::]:50052", "dns:///node-1.kvcache:50051"),
            "node-1.kvcache:50052");
  EXPECT_EQ(ReachableAddress("0.0.0.0:50052", "[fd00::7]:50051"), "[fd00::7]:50052");
  EXPECT_EQ(ReachableAddress(":50052", "10.0.0.7:50051"), "10.0.0.7:50052");
  // A specific advertised host is used as it is; so is a target we cannot read a host from.
  EXPECT_EQ(ReachableAddress("10.1.1.1:50052", "10.0.0.7:50051"), "10.1.1.1:50052");
  EXPECT_EQ(ReachableAddress("0.0.0.0:50052", "unix:///tmp/sock"), "0.0.0.0:50052");
}

TEST(CliTest, HelpShowsEveryFlagWithItsDashNameAndDefault) {
  absl::SetProgramUsageMessage("usage: cli_test");
  const std::string help = FlagsHelp();
  EXPECT_EQ(help.rfind("usage: cli_test", 0), 0u);
  EXPECT_NE(help.find("  --cli-test-address=127.0.0.1:1\n      an address for the help test"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("  --cli-test-grace=3s\n"), std::string::npos) << help;
  EXPECT_EQ(help.find("--flagfile"), std::string::npos) << "Abseil's own flags are not ours";
}

TEST(CliTest, ExcludedFlagsAreNeitherListedNorAccepted) {
  FlagScope scope;
  scope.usage = "usage: cli_test";
  scope.exclude = "cli_test_grace";
  const std::string help = FlagsHelp(scope);
  EXPECT_EQ(help.find("--cli-test-grace"), std::string::npos) << help;
  EXPECT_NE(help.find("--cli-test-address"), std::string::npos) << help;
  // The spelling notes name a flag of this scope, not one of another binary's.
  EXPECT_NE(help.find("with underscores (--cli_test_address)"), std::string::npos) << help;
  EXPECT_EQ(help.find("--ram_bytes"), std::string::npos) << help;
  char prog[] = "cli_test";
  char grace[] = "--cli-test-grace=5s";
  char* argv[] = {prog, grace, nullptr};
  EXPECT_EXIT(ParseFlags(2, argv, scope), ::testing::ExitedWithCode(kExitUsage),
              "unknown flag --cli-test-grace");
}

}  // namespace
}  // namespace kvcache
