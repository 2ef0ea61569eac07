// Latency percentiles for the benchmarks: one definition of p50/p90/p99/p99.9, shared by
// `kvcache-bench throughput` and the live trace replay.
//
// Thread safety: pure functions.

#ifndef KVCACHE_BENCH_LATENCY_H_
#define KVCACHE_BENCH_LATENCY_H_

#include <cstdint>
#include <vector>

namespace kvcache {

// Latencies of one kind of operation, in microseconds. All zero when there were none.
struct LatencySummary {
  uint64_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
};

// Summarizes `us` (microseconds; sorted in place). Percentile q is the sample at rank
// round(q * (count - 1)) of the sorted samples, so p50 of an odd count is the median and
// p100 would be the maximum.
LatencySummary SummarizeLatencies(std::vector<double>& us);

}  // namespace kvcache

#endif  // KVCACHE_BENCH_LATENCY_H_
