// The subcommands of kvcache-bench. Each lives in its own file (trace_command.cc, ...) with
// its flags, and is listed once in bench_main.cc's kCommands.
//
// A subcommand gets argv without the subcommand's name (argv[0] is "kvcache-bench NAME")
// and parses it with kvcache::ParseFlags (common/cli.h) under its own FlagScope, which
// accepts only the subcommand's flags. Abseil flags are global to the binary: a flag name means the same thing
// in every subcommand, so a flag two subcommands need is defined once in bench/flags.cc
// (--json) rather than declared again.

#ifndef KVCACHE_BENCH_COMMANDS_H_
#define KVCACHE_BENCH_COMMANDS_H_

#include "bench/flags.h"
#include "common/cli.h"

namespace kvcache {

// The flags of `trace` (kvcache-bench trace --help lists them).
extern const FlagScope kTraceFlags;

// `kvcache-bench trace`: trace simulation, live replay, capacity planning.
int TraceCommand(int argc, char** argv);

// The flags of `memory`.
extern const FlagScope kMemoryFlags;

// `kvcache-bench memory`: what a write into memory costs by how recently it was written.
int MemoryCommand(int argc, char** argv);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_COMMANDS_H_
