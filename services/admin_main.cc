// kvcache-admin: operate a kvcache server. See services/admin_cli.h.

#include <iostream>

#include "absl/flags/usage.h"
#include "common/cli.h"
#include "services/admin_cli.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kvcache::AdminUsage());
  const std::vector<std::string> args = kvcache::ParseFlags(argc, argv);
  return kvcache::RunAdminCommand(args, std::cout, std::cerr);
}
