// Fuzzes ParseTrace (bench/trace.h), the JSONL trace reader: any text gives a trace or
// INVALID_ARGUMENT; an accepted trace writes back (TraceToJsonl) to text that parses to the
// same requests, and its block keys can be derived.

#include <cstdint>
#include <cstdlib>

#include "bench/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<kvcache::Trace> trace = kvcache::ParseTrace(text);
  if (!trace.ok()) {
    if (trace.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  absl::StatusOr<kvcache::Trace> again = kvcache::ParseTrace(kvcache::TraceToJsonl(*trace));
  if (!again.ok() || again->requests.size() != trace->requests.size()) std::abort();
  for (size_t i = 0; i < trace->requests.size(); ++i) {
    const kvcache::TraceRequest& a = trace->requests[i];
    const kvcache::TraceRequest& b = again->requests[i];
    if (a.timestamp_ms != b.timestamp_ms || a.input_length != b.input_length ||
        a.output_length != b.output_length || a.hash_ids != b.hash_ids) {
      std::abort();
    }
    for (size_t j = 0; j < a.hash_ids.size(); ++j) {
      const uint64_t tokens = trace->BlockTokens(a, j);
      if (tokens < 1 || tokens > trace->block_tokens) std::abort();
    }
  }
  const kvcache::TraceKeys keys = kvcache::KeysOf(*trace);
  if (keys.keys.size() != trace->requests.size()) std::abort();
  return 0;
}
