#include "common/cli.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/socket_io.h"
#include "common/version.h"

namespace kvcache {
namespace {

constexpr char kUsagePayload[] = "type.kvcache.dev/usage-error";

std::string Dashed(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

std::string ProgramName(const char* argv0) {
  const std::string path = argv0 ? argv0 : "kvcache";
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Whether `flag` is one `scope` accepts. Abseil's own flags, like --flagfile, never are.
bool InScope(const absl::CommandLineFlag& flag, const FlagScope& scope) {
  if (absl::StrContains(flag.Filename(), "absl/")) return false;
  for (absl::string_view name : absl::StrSplit(scope.exclude, ',', absl::SkipEmpty())) {
    if (flag.Name() == name) return false;
  }
  if (scope.source == nullptr || absl::EndsWith(flag.Filename(), scope.source)) return true;
  for (absl::string_view name : absl::StrSplit(scope.shared, ',', absl::SkipEmpty())) {
    if (flag.Name() == name) return true;
  }
  return false;
}

std::string UsageOf(const FlagScope& scope) {
  return scope.usage != nullptr ? scope.usage : std::string(absl::ProgramUsageMessage());
}

[[noreturn]] void ExitUsage(const std::string& program, const FlagScope& scope,
                            const std::string& message) {
  std::string usage = scope.usage != nullptr ? scope.usage : "";
  if (!usage.empty() && usage.back() != '\n') usage += '\n';
  std::fprintf(stderr, "%s: %s\n%s%s --help lists the flags\n", program.c_str(),
               message.c_str(), usage.c_str(), program.c_str());
  std::exit(kExitUsage);
}

// What a value of this flag's type looks like, for a value that did not parse.
std::string TypeHint(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<absl::Duration>()) {
    return "a duration needs a unit, e.g. 10s, 500ms, 2m, 1h";
  }
  if (flag.IsOfType<int>() || flag.IsOfType<int64_t>() || flag.IsOfType<uint32_t>() ||
      flag.IsOfType<uint64_t>()) {
    return "expected a whole number";
  }
  if (flag.IsOfType<bool>()) return "expected true or false";
  return "";
}

// `text` cut into lines of at most `width` characters at spaces, each after `indent`.
std::string Wrapped(const std::string& text, const std::string& indent, size_t width) {
  std::string out;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && indent.size() + line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, indent, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, indent, line, "\n");
  return out;
}

}  // namespace

std::string FlagsHelp(const FlagScope& scope) {
  std::map<std::string, absl::CommandLineFlag*> own;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (InScope(*flag, scope)) own[Dashed(name)] = flag;
  }
  std::string text = UsageOf(scope);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  absl::StrAppend(&text, "\n\nFlags:\n");
  for (const auto& [name, flag] : own) {
    const std::string def = flag->DefaultValue();
    absl::StrAppend(&text, "  --", name, "=", def.empty() ? "\"\"" : def, "\n",
                    Wrapped(flag->Help(), "      ", 96));
  }
  absl::StrAppend(&text,
                  "  --help\n      print this text and exit\n"
                  "  --version\n      print the version and exit\n");
  // The spelling notes, with examples among this command's own flags.
  std::string underscored, boolean;
  for (const auto& [name, flag] : own) {
    if (underscored.empty() && absl::StrContains(name, '-')) underscored = name;
    if (boolean.empty() && flag->IsOfType<bool>()) boolean = name;
  }
  absl::StrAppend(&text, "Flags are also accepted",
                  underscored.empty()
                      ? ""
                      : absl::StrCat(" with underscores (--",
                                     absl::StrReplaceAll(underscored, {{"-", "_"}}), "),"),
                  " as --name=value or --name value",
                  boolean.empty() ? ""
                                  : absl::StrCat(",\nand booleans as --", boolean, " / --no",
                                                 boolean),
                  ".\n");
  return text;
}

std::vector<std::string> ParseFlags(int argc, char** argv, const FlagScope& scope) {
  const std::string program = ProgramName(argc > 0 ? argv[0] : nullptr);
  std::vector<std::string> positional;
  if (argc > 0) positional.push_back(argv[0]);
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;  // Everything after is positional.
      continue;
    }
    const std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    const size_t eq = body.find('=');
    std::string name = absl::StrReplaceAll(body.substr(0, eq), {{"-", "_"}});
    const bool has_value = eq != std::string::npos;
    std::string value = has_value ? body.substr(eq + 1) : "";
    const std::string shown = "--" + Dashed(name);
    if (name == "help" || name == "h" || name == "helpfull" || name == "helpshort") {
      std::fputs(FlagsHelp(scope).c_str(), stdout);
      std::exit(kExitOk);
    }
    if (name == "version") {
      std::printf("%s %s\n", program.c_str(), kKvcacheVersion);
      std::exit(kExitOk);
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag != nullptr && !InScope(*flag, scope)) flag = nullptr;
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* positive = absl::FindCommandLineFlag(name.substr(2));
      if (positive != nullptr && InScope(*positive, scope) && positive->IsOfType<bool>()) {
        flag = positive;
        negated = true;
      }
    }
    if (flag == nullptr) ExitUsage(program, scope, absl::StrCat("unknown flag ", shown));
    if (flag->IsOfType<bool>()) {
      if (negated && has_value) ExitUsage(program, scope, shown + " takes no value");
      if (!has_value) value = negated ? "false" : "true";
    } else if (!has_value) {
      if (i + 1 >= argc) ExitUsage(program, scope, shown + " needs a value: " + shown + "=VALUE");
      value = argv[++i];
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::string hint = TypeHint(*flag);
      ExitUsage(program, scope, absl::StrCat(shown, "=", value, " is not valid",
                                      hint.empty() ? "" : ": ", hint));
    }
  }
  return positional;
}

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

int ExitStatusOf(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  return IsUsageError(status) ? kExitUsage : kExitFailure;
}

absl::Status CheckListenAddress(absl::string_view flag, absl::string_view value) {
  const std::string address(value);
  std::string host, port_text;
  int port = -1;
  if (!SplitHostPort(address, &host, &port_text) || !absl::SimpleAtoi(port_text, &port) ||
      port < 0 || port > 65535 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    return UsageError(absl::StrCat(flag, "='", address,
                                   "' is not host:port (e.g. 127.0.0.1:50051, 0.0.0.0:50051, "
                                   "[::]:50051; port 0 picks a free one)"));
  }
  if (host.empty()) {
    return UsageError(absl::StrCat(flag, "='", address,
                                   "' has no host; give 0.0.0.0 for every interface"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    return UsageError(absl::StrCat(flag, "='", address, "': host '", host,
                                   "' does not resolve: ", gai_strerror(rc)));
  }
  ::freeaddrinfo(found);
  return absl::OkStatus();
}

}  // namespace kvcache
