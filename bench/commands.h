// The subcommands of kvcache-bench. Each lives in its own file (trace_command.cc, ...) with
// its flags, and is listed once in bench_main.cc's kCommands.
//
// A subcommand gets argv without the subcommand's name (argv[0] is "kvcache-bench NAME")
// and parses it with kvcache::ParseFlags. Abseil flags are global to the binary: a flag
// name means the same thing in every subcommand, so reuse an existing flag (--trace,
// --json, --block-bytes, --server, ...) rather than declaring it again.

#ifndef KVCACHE_BENCH_COMMANDS_H_
#define KVCACHE_BENCH_COMMANDS_H_

namespace kvcache {

// `kvcache-bench trace`: trace simulation, live replay, capacity planning.
int TraceCommand(int argc, char** argv);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_COMMANDS_H_
