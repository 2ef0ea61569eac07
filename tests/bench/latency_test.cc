// The benchmarks' one percentile definition (bench/latency.h).

#include "bench/latency.h"

#include <gtest/gtest.h>

#include <vector>

namespace kvcache {
namespace {

TEST(LatencyTest, NoSamplesIsAllZero) {
  std::vector<double> none;
  const LatencySummary s = SummarizeLatencies(none);
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.p50_us, 0);
  EXPECT_EQ(s.max_us, 0);
  EXPECT_EQ(s.mean_us, 0);
}

TEST(LatencyTest, UnsortedSamplesGiveMedianMaxAndMean) {
  std::vector<double> us = {5, 1, 3};
  const LatencySummary s = SummarizeLatencies(us);
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.p50_us, 3);
  EXPECT_EQ(s.max_us, 5);
  EXPECT_EQ(s.mean_us, 3);
}

TEST(LatencyTest, PercentilesAreTheNearestRankOfTheSortedSamples) {
  std::vector<double> us;
  for (int i = 1000; i >= 1; --i) us.push_back(i);
  const LatencySummary s = SummarizeLatencies(us);
  EXPECT_EQ(s.p50_us, 501);  // Rank round(0.5 * 999) = 500, counting from 0.
  EXPECT_EQ(s.p90_us, 900);  // round(899.1) = 899.
  EXPECT_EQ(s.p99_us, 990);  // round(989.01) = 989.
  EXPECT_EQ(s.p999_us, 999);  // round(998.001) = 998.
  EXPECT_EQ(s.max_us, 1000);
  EXPECT_DOUBLE_EQ(s.mean_us, 500.5);
}

}  // namespace
}  // namespace kvcache
