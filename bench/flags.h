// Flags of kvcache-bench's subcommands.
//
// Abseil flags are global to a binary, so a flag name means one thing in every subcommand:
// a flag that several subcommands use (--json) is defined once, here, and each subcommand
// defines its own flags in its own file. Each subcommand parses with kvcache::ParseFlags
// (common/cli.h) under its own FlagScope, so it accepts only its own flags and the shared
// ones it names, answers --help, and exits 2 on a usage error.

#ifndef KVCACHE_BENCH_FLAGS_H_
#define KVCACHE_BENCH_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"

// Print one JSON object instead of text (trace, throughput).
ABSL_DECLARE_FLAG(bool, json);
// Eviction policy of the in-process store (trace, throughput --op=index-scale).
ABSL_DECLARE_FLAG(std::string, eviction);

#endif  // KVCACHE_BENCH_FLAGS_H_
