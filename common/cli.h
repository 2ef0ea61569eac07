// Command-line parsing for kvcache's binaries: Abseil flags, spelled with dashes.
//
// Operators write `--ram-bytes=4MiB`; Abseil flags are declared `ram_bytes`. ParseFlags
// accepts both spellings (dashes in a flag's name become underscores before parsing), then
// parses with absl::ParseCommandLine, which exits with a message on an unknown flag.

#ifndef KVCACHE_COMMON_CLI_H_
#define KVCACHE_COMMON_CLI_H_

#include <string>
#include <vector>

namespace kvcache {

// Returns the positional arguments (argv[0] first). Call once, at the top of main.
std::vector<std::string> ParseFlags(int argc, char** argv);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_CLI_H_
