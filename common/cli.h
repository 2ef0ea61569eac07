// Command-line parsing for kvcache's binaries: Abseil flags, spelled with dashes, and the
// exit statuses every binary shares. The one place that parses a command line.
//
// Operators write `--ram-bytes=4MiB`; Abseil flags are declared `ram_bytes`. ParseFlags
// accepts both spellings, `--name=value` and `--name value`, and `--flag` / `--noflag` for
// booleans. It answers two flags itself and exits:
//   --help (-h)  the program usage message, then every flag of the program with its default
//                and its meaning (dash spelling), on stdout; exit status 0.
//   --version    "<program> <version>" on stdout; exit status 0.
// A usage error (an unknown flag, a value that does not parse as the flag's type, a flag
// with no value) prints "<program>: <reason>" and a hint to use --help on stderr, and exits
// with kExitUsage. A duration given without a unit is told that it needs one.
//
// Validation after parsing goes through UsageError: a main checks its flags before calling
// any library and reports a bad value with UsageError(...); ExitStatusOf then picks the exit
// status from what failed (the status's usage mark), never from its message text.
//
// Thread safety: ParseFlags runs once, at the top of main, before threads start.

#ifndef KVCACHE_COMMON_CLI_H_
#define KVCACHE_COMMON_CLI_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvcache {

// Exit statuses of every kvcache binary.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // The work failed (server error, unreachable, I/O).
inline constexpr int kExitUsage = 2;    // The command line is wrong.

// The flags a command accepts, and its usage text. The default scope is the whole program:
// every flag it defines, and absl::ProgramUsageMessage() (set it with
// absl::SetProgramUsageMessage first). A binary with subcommands (kvcache-bench) gives each
// subcommand a scope of its own, so that one subcommand rejects another's flags.
struct FlagScope {
  // The usage lines --help prints first and a usage error repeats. Default: nullptr, the
  // program's usage message.
  const char* usage = nullptr;
  // Only flags defined in a source file whose path ends with this ("bench/trace_command.cc"),
  // plus those named in `shared`. Default: nullptr, every flag of the program.
  const char* source = nullptr;
  // Flags accepted besides `source`'s, comma separated ("json"). Default: none.
  const char* shared = "";
  // Flags of the program neither accepted nor listed, comma separated: a server links the TLS
  // client flags for --tls-cert/--tls-key but has no use for --tls-ca. Default: none.
  const char* exclude = "";
};

// Parses the flags of argv (see above) and returns the positional arguments, argv[0] first.
// The program's name in messages is argv[0]'s last path component ("kvcache-bench trace"
// when a dispatcher passes that as argv[0]).
std::vector<std::string> ParseFlags(int argc, char** argv, const FlagScope& scope = FlagScope());

// The --help text: the usage message, then each flag in `scope` (never Abseil's own) as
// "  --dash-name=DEFAULT" and its help on the next line, sorted by name.
std::string FlagsHelp(const FlagScope& scope = FlagScope());

// INVALID_ARGUMENT marked as a usage error: the command line is wrong.
absl::Status UsageError(absl::string_view message);
// Whether `status` came from UsageError (the mark survives copies, not re-wrapping).
bool IsUsageError(const absl::Status& status);
// kExitOk for OK, kExitUsage for a usage error, kExitFailure for any other error.
int ExitStatusOf(const absl::Status& status);

// Checks a listen address flag before it reaches gRPC or a socket: "host:port" with a port
// in [0, 65535] (0: any free port), and a host this machine can resolve ("0.0.0.0", "[::]",
// a name or an address literal). Usage errors name `flag`, e.g. "--listen".
absl::Status CheckListenAddress(absl::string_view flag, absl::string_view value);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_CLI_H_
