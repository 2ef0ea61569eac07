// A synthetic trace in the Mooncake format, for checking eviction policies off the real
// trace: a mix of shared system prompts, multi-turn chats and one-shot questions over
// shared documents, with distributions of its own (not fitted to any real trace).
//
// Thread safety: pure function (deterministic for a seed).

#ifndef KVCACHE_BENCH_SYNTHETIC_TRACE_H_
#define KVCACHE_BENCH_SYNTHETIC_TRACE_H_

#include <cstdint>

#include "bench/trace.h"

namespace kvcache {

struct SyntheticTraceOptions {
  // Requests to generate. Default: 12000.
  uint64_t requests = 12000;
  // Seed of the generator. Default: 1.
  uint64_t seed = 1;
  // Mean arrivals per second (Poisson). Default: 4.
  double requests_per_second = 4;
  // Distinct system prompts (Zipf(1) popularity, 200..6000 tokens). Default: 16.
  int system_prompts = 16;
  // Distinct shared documents for one-shot questions (Zipf(1), 1000..16000 tokens).
  // Default: 400.
  int documents = 400;
  // Share of requests that start a chat (the rest ask about a document). Default: 0.5.
  double chat_share = 0.5;
  // Mean turns of a chat (geometric) and mean seconds between its turns (exponential).
  // Default: 5 turns, 90 s.
  double mean_turns = 5;
  double mean_turn_gap_s = 90;
};

// Tokens per block of the generated trace: 512, as in the Mooncake traces.
Trace GenerateSyntheticTrace(const SyntheticTraceOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_SYNTHETIC_TRACE_H_
