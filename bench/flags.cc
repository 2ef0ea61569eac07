#include "bench/flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(bool, json, false, "print one JSON object instead of text");
