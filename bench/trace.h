// Request traces of LLM serving in the Mooncake FAST'25 format, and the block keys derived
// from them. See ../shared/traces/README.md for the format:
//
//   {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47]}
//
// one request per line; hash_ids are prefix-chained ids of the prompt's blocks (equal ids at
// the same position mean the same prefix).
//
// Thread safety: plain values and pure functions.

#ifndef KVCACHE_BENCH_TRACE_H_
#define KVCACHE_BENCH_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/key.h"

namespace kvcache {

struct TraceRequest {
  int64_t timestamp_ms = 0;    // Arrival, relative to the trace start.
  uint64_t input_length = 0;   // Prompt tokens.
  uint64_t output_length = 0;  // Completion tokens.
  std::vector<uint32_t> hash_ids;
};

struct Trace {
  // Tokens per block of the trace (the README's 512). Default: 512.
  uint64_t block_tokens = 512;
  std::vector<TraceRequest> requests;

  // Total block reads (sum of chain lengths).
  uint64_t NumBlockReads() const;
  // Prompt tokens that block `i` of `r` holds: block_tokens for all but the last block,
  // the remainder of input_length for the last (never more than block_tokens, at least 1).
  uint64_t BlockTokens(const TraceRequest& r, size_t i) const;
};

// Parses JSONL text. Blank lines are skipped. INVALID_ARGUMENT naming the 1-based line for
// a line that is not a JSON object with a non-negative integer timestamp, input_length and
// output_length and an array of non-negative 32-bit integer hash_ids.
absl::StatusOr<Trace> ParseTrace(absl::string_view jsonl);

// Reads and parses a file. NOT_FOUND when it cannot be opened; otherwise as ParseTrace,
// with the path in the message.
absl::StatusOr<Trace> LoadTrace(const std::string& path);

// The requests in a random order (a fixed permutation for a seed), timestamps kept in
// order: the same blocks with the trace's temporal locality removed.
Trace ShuffleTrace(const Trace& trace, uint64_t seed);

// Writes `trace` as JSONL (the inverse of ParseTrace).
std::string TraceToJsonl(const Trace& trace);

// The 32-byte keys of a trace's blocks, by the DESIGN.md chaining: each hash id is one
// uint32 token of a block_size=1 chain under `TraceNamespace()`, so equal ids at the same
// prefix give equal keys.
// What a trace's requests got from a cache, counted the same way by the simulation
// (trace_sim.h) and the live replay (trace_replay.h): a block is a hit only if it and its
// whole prefix were served.
struct HitCounts {
  uint64_t requests = 0;
  uint64_t block_reads = 0;  // Blocks requests asked for.
  uint64_t block_hits = 0;   // Of those, served from the cache (whole prefix present).
  uint64_t ram_hits = 0;     // Hits in the leading run that the Lookup found in RAM.
  uint64_t disk_hits = 0;    // The other hits (a disk block at or before them; promoted).
  uint64_t tokens = 0;       // Prompt tokens.
  uint64_t token_hits = 0;   // Prompt tokens in hit blocks.

  double HitRatio() const { return Ratio(block_hits, block_reads); }
  double TokenHitRatio() const { return Ratio(token_hits, tokens); }
  // a / b, or 0 when b is 0.
  static double Ratio(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : double(a) / double(b); }
};

struct TraceKeys {
  Key ns;
  std::vector<std::vector<Key>> keys;        // Per request, in chain order.
  std::vector<std::vector<uint32_t>> dense;  // Per request: a dense id per distinct key.
  uint32_t num_distinct = 0;
};
Key TraceNamespace();
TraceKeys KeysOf(const Trace& trace);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_TRACE_H_
