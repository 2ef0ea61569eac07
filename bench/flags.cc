#include "bench/flags.h"

#include <algorithm>
#include <iostream>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"

ABSL_FLAG(bool, json, false, "print one JSON object instead of text");

namespace kvcache {
namespace bench {
namespace {

bool InSet(const absl::CommandLineFlag& flag, const FlagSet& set) {
  if (absl::EndsWith(flag.Filename(), set.source)) return true;
  for (absl::string_view name : absl::StrSplit(set.shared, ',', absl::SkipEmpty())) {
    if (flag.Name() == name) return true;
  }
  return false;
}

std::string Dashed(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

int UsageError(const FlagSet& set, absl::string_view what) {
  std::cerr << "kvcache-bench " << set.command << ": " << what << "\n" << set.usage;
  return 2;
}

}  // namespace

void PrintFlags(std::ostream& out, const FlagSet& set) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (InSet(*flag, set)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  for (const absl::CommandLineFlag* f : flags) {
    const std::string default_value = f->DefaultValue();
    out << absl::StrFormat("  --%-16s %s (default: %s)\n", Dashed(f->Name()), f->Help(),
                           default_value.empty() ? "none" : default_value);
  }
}

int ParseCommandFlags(int argc, char** argv, const FlagSet& set,
                      std::vector<std::string>* positional) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;  // The rest is positional.
    if (arg == "--help" || arg == "-h" || arg == "--helpfull" || arg == "-help") {
      std::cout << set.usage << "flags:\n";
      PrintFlags(std::cout, set);
      return 0;
    }
    if (arg.size() < 2 || arg[0] != '-') continue;  // Positional.
    absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    const size_t eq = body.find('=');
    const std::string name = absl::StrReplaceAll(body.substr(0, eq), {{"-", "_"}});
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = absl::FindCommandLineFlag(absl::string_view(name).substr(2));
      negated = flag != nullptr && flag->IsOfType<bool>() && eq == absl::string_view::npos;
      if (!negated) flag = nullptr;
    }
    if (flag == nullptr || !InSet(*flag, set)) {
      return UsageError(set, absl::StrCat("unknown flag --", Dashed(name)));
    }
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
    } else if (flag->IsOfType<bool>()) {
      value = negated ? "false" : "true";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return UsageError(set, absl::StrCat("--", Dashed(name), " needs a value"));
    }
    // Checks the value (setting it, as the parse below will again).
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return UsageError(set, absl::StrCat("--", Dashed(flag->Name()), "=", value,
                                          " is not valid: ", error));
    }
  }
  std::vector<std::string> rest = ParseFlags(argc, argv);
  positional->assign(rest.begin() + std::min<size_t>(1, rest.size()), rest.end());
  return -1;
}

}  // namespace bench
}  // namespace kvcache
