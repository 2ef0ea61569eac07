// Flags of kvcache-bench's subcommands.
//
// Abseil flags are global to a binary, so a flag name means one thing in every subcommand:
// a flag that several subcommands use (--json) is defined once, here, and each subcommand
// defines its own flags in its own file. ParseCommandFlags lets a subcommand accept only
// its own flags and the shared ones it names, answers --help, and reports usage errors
// with exit status 2; the parse itself is kvcache::ParseFlags (common/cli.h), as in every
// kvcache binary.
//
// Thread safety: call ParseCommandFlags once, from main's thread, before other threads run.

#ifndef KVCACHE_BENCH_FLAGS_H_
#define KVCACHE_BENCH_FLAGS_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/flags/declare.h"

// Print one JSON object instead of text (trace, throughput).
ABSL_DECLARE_FLAG(bool, json);

namespace kvcache {
namespace bench {

// The flags one subcommand accepts.
struct FlagSet {
  // The subcommand, as typed after kvcache-bench: "throughput".
  const char* command;
  // What --help prints before the flag list: the subcommand's usage lines.
  const char* usage;
  // The subcommand's own flags are those defined in the file whose path ends with this
  // ("bench/throughput.cc").
  const char* source;
  // Shared flags (defined in bench/flags.cc) it accepts too, comma separated: "json".
  const char* shared;
};

// Checks and parses the subcommand's `argv` (argv[0] is "kvcache-bench NAME"): --name=value,
// --name value, and --name / --noname for booleans, with dashes or underscores in names.
// Returns -1 when the subcommand should go on (its flags set, `positional` holding the
// other arguments after argv[0]), else the exit status to return at once:
//   0  --help (or -h, --helpfull): printed the usage and every flag to stdout.
//   2  an unknown flag, a flag of another subcommand, a missing or bad value: printed
//      "kvcache-bench NAME: <what>" and the usage to stderr.
int ParseCommandFlags(int argc, char** argv, const FlagSet& set,
                      std::vector<std::string>* positional);

// Prints `set`'s flags, sorted, one a line: "  --name  meaning (default: value)".
void PrintFlags(std::ostream& out, const FlagSet& set);

}  // namespace bench
}  // namespace kvcache

#endif  // KVCACHE_BENCH_FLAGS_H_
