// kvcache-bench: benchmarks and trace tools. `kvcache-bench COMMAND [--flags]`.
//
// To add a subcommand: declare it in commands.h, define it in its own file, add the file to
// the kvcache-bench sources in CMakeLists.txt and one row to kCommands below.

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/commands.h"
#include "bench/flags.h"
#include "bench/throughput.h"
#include "common/process_tuning.h"

namespace {

struct Command {
  const char* name;
  const char* help;
  int (*run)(int argc, char** argv);
  const kvcache::FlagScope* flags;
};

constexpr Command kCommands[] = {
    {"trace", "replay a request trace: simulate policies, plan capacity, or drive a server",
     &kvcache::TraceCommand, &kvcache::kTraceFlags},
    {"throughput", "Get/Put GB/s and latency vs Redis, memcached, raw TCP; lookup; index cost",
     &kvcache::bench::RunThroughput, &kvcache::bench::kThroughputFlags},
    {"memory", "what memory costs: writing (first touch, at once, after an idle time), random reads",
     &kvcache::MemoryCommand, &kvcache::kMemoryFlags},
};

void Usage(std::ostream& out) {
  out << "usage: kvcache-bench COMMAND [--flags]   (COMMAND --help for its usage)\n";
  for (const Command& c : kCommands) out << absl::StrFormat("  %-12s %s\n", c.name, c.help);
}

// --help: the commands, then each command's flags with their defaults and meanings.
void Help() {
  Usage(std::cout);
  for (const Command& c : kCommands) {
    std::cout << "\n" << kvcache::FlagsHelp(*c.flags);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The store and client code measured here in-process run as in kvcache-server.
  kvcache::TurnOffMutexDeadlockDetection();
  if (argc < 2) {
    Usage(std::cerr);
    return 2;
  }
  if (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--helpfull") == 0) {
    Help();
    return 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    // The subcommand sees "kvcache-bench NAME" as its program name and its own flags.
    std::string program = std::string(argv[0]) + " " + c.name;
    std::vector<char*> args{program.data()};
    for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    return c.run(static_cast<int>(args.size()) - 1, args.data());
  }
  std::cerr << "kvcache-bench: unknown command '" << argv[1] << "'\n";
  Usage(std::cerr);
  return 2;
}
