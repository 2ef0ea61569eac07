// kvcache-bench: benchmarks and trace tools. `kvcache-bench COMMAND [--flags]`.
//
// To add a subcommand: declare it in commands.h, define it in its own file, add the file to
// the kvcache-bench sources in CMakeLists.txt and one row to kCommands below.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/commands.h"
#include "bench/throughput.h"

namespace {

struct Command {
  const char* name;
  const char* help;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"trace", "replay a request trace: simulate policies, plan capacity, or drive a server",
     &kvcache::TraceCommand},
    {"throughput", "Get/Put GB/s and latency vs Redis, memcached, raw TCP; lookup; index cost",
     &kvcache::bench::RunThroughput},
};

void Usage(FILE* out) {
  std::fprintf(out, "usage: kvcache-bench COMMAND [--flags]   (COMMAND --help for its flags)\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
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
  std::fprintf(stderr, "kvcache-bench: unknown command '%s'\n", argv[1]);
  Usage(stderr);
  return 2;
}
