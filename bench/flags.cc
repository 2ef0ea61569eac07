#include "bench/flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(bool, json, false, "print one JSON object instead of text");
ABSL_FLAG(std::string, eviction, "lru", "eviction policy (see kvcache-bench trace --list-policies)");
