#include "bench/trace.h"

#include <algorithm>
#include <map>

#include "bench/synthetic_trace.h"
#include "gtest/gtest.h"

namespace kvcache {
namespace {

TEST(ParseTraceTest, ReadsRequestsAndSkipsBlankLines) {
  absl::StatusOr<Trace> trace = ParseTrace(
      "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 5, \"hash_ids\": [0, 1]}\n"
      "\n"
      "{\"timestamp\": 27, \"input_length\": 100, \"output_length\": 0, \"hash_ids\": [0]}");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->requests.size(), 2u);
  EXPECT_EQ(trace->requests[0].hash_ids, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(trace->requests[0].input_length, 1000u);
  EXPECT_EQ(trace->requests[0].output_length, 5u);
  EXPECT_EQ(trace->requests[1].timestamp_ms, 27);
  EXPECT_EQ(trace->NumBlockReads(), 3u);
}

TEST(ParseTraceTest, CountsTokensOfTheLastPartialBlock) {
  absl::StatusOr<Trace> trace = ParseTrace(
      "{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 5, \"hash_ids\": [0, 1]}");
  ASSERT_TRUE(trace.ok());
  EXPECT_EQ(trace->BlockTokens(trace->requests[0], 0), 512u);
  EXPECT_EQ(trace->BlockTokens(trace->requests[0], 1), 488u);
}

TEST(ParseTraceTest, RejectsMalformedLinesNamingTheLine) {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": [0]}\n";
  const struct {
    std::string line;
    std::string says;
  } cases[] = {
      {"{\"timestamp\": 0, \"input_length\": 10", "not valid JSON"},
      {"[1, 2]", "not a JSON object"},
      {"{\"input_length\": 10, \"output_length\": 5, \"hash_ids\": [0]}", "missing \"timestamp\""},
      {"{\"timestamp\": -4, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": [0]}",
       "\"timestamp\" must be a non-negative integer"},
      {"{\"timestamp\": 0, \"input_length\": \"x\", \"output_length\": 5, \"hash_ids\": [0]}",
       "\"input_length\" must be"},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5}", "missing \"hash_ids\""},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": 3}",
       "must be an array"},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": [1.5]}",
       "hash id 1.5"},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 5, \"hash_ids\": "
       "[4294967296]}",
       "hash id 4294967296"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<Trace> trace = ParseTrace(good + "\n" + c.line + "\n" + good);
    ASSERT_FALSE(trace.ok()) << c.line;
    EXPECT_TRUE(absl::IsInvalidArgument(trace.status()));
    EXPECT_NE(trace.status().message().find("trace line 3: "), std::string::npos) << trace.status();
    EXPECT_NE(trace.status().message().find(c.says), std::string::npos) << trace.status();
  }
}

TEST(LoadTraceTest, MissingFileIsNotFound) {
  absl::StatusOr<Trace> trace = LoadTrace("/nonexistent/trace.jsonl");
  EXPECT_TRUE(absl::IsNotFound(trace.status()));
  EXPECT_NE(trace.status().message().find("/nonexistent/trace.jsonl"), std::string::npos);
}

TEST(TraceKeysTest, EqualIdsAtTheSamePrefixGiveEqualKeys) {
  Trace trace;
  trace.requests.push_back({0, 10, 1, {7, 8, 9}});
  trace.requests.push_back({1, 10, 1, {7, 8, 5}});
  trace.requests.push_back({2, 10, 1, {8}});  // Id 8 again, but at another prefix.
  const TraceKeys keys = KeysOf(trace);
  EXPECT_EQ(keys.ns, TraceNamespace());
  EXPECT_EQ(keys.keys[0][0], keys.keys[1][0]);
  EXPECT_EQ(keys.keys[0][1], keys.keys[1][1]);
  EXPECT_NE(keys.keys[0][2], keys.keys[1][2]);
  EXPECT_NE(keys.keys[2][0], keys.keys[0][1]);
  EXPECT_EQ(keys.num_distinct, 5u);
  EXPECT_EQ(keys.dense[1][1], keys.dense[0][1]);
}

TEST(TraceTest, ShuffleKeepsTheRequestsAndTheClock) {
  Trace trace;
  for (uint32_t i = 0; i < 50; ++i) trace.requests.push_back({int64_t(i) * 10, 1, 1, {i}});
  const Trace shuffled = ShuffleTrace(trace, 3);
  ASSERT_EQ(shuffled.requests.size(), 50u);
  std::vector<uint32_t> ids;
  bool moved = false;
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(shuffled.requests[i].timestamp_ms, int64_t(i) * 10);
    ids.push_back(shuffled.requests[i].hash_ids[0]);
    moved = moved || ids.back() != i;
  }
  EXPECT_TRUE(moved);
  std::sort(ids.begin(), ids.end());
  for (uint32_t i = 0; i < 50; ++i) EXPECT_EQ(ids[i], i);
}

TEST(TraceTest, JsonlRoundTrips) {
  Trace trace;
  trace.requests.push_back({5, 1000, 3, {1, 2}});
  absl::StatusOr<Trace> back = ParseTrace(TraceToJsonl(trace));
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->requests.size(), 1u);
  EXPECT_EQ(back->requests[0].timestamp_ms, 5);
  EXPECT_EQ(back->requests[0].hash_ids, (std::vector<uint32_t>{1, 2}));
}

TEST(SyntheticTraceTest, IsDeterministicPrefixChainedAndInTimeOrder) {
  SyntheticTraceOptions o;
  o.requests = 2000;
  const Trace a = GenerateSyntheticTrace(o);
  const Trace b = GenerateSyntheticTrace(o);
  ASSERT_EQ(a.requests.size(), 2000u);
  EXPECT_EQ(TraceToJsonl(a), TraceToJsonl(b));
  // An id always follows the same parent id: ids are prefix-chained.
  std::map<uint32_t, int64_t> parent_of;
  uint64_t reads = 0;
  for (size_t i = 0; i < a.requests.size(); ++i) {
    const TraceRequest& r = a.requests[i];
    if (i > 0) {
      EXPECT_LE(a.requests[i - 1].timestamp_ms, r.timestamp_ms);
    }
    EXPECT_EQ(r.hash_ids.size(), (r.input_length + 511) / 512);
    for (size_t j = 0; j < r.hash_ids.size(); ++j) {
      const int64_t parent = j == 0 ? -1 : r.hash_ids[j - 1];
      auto [it, inserted] = parent_of.emplace(r.hash_ids[j], parent);
      EXPECT_EQ(it->second, parent);
      ++reads;
    }
  }
  EXPECT_LT(parent_of.size(), reads);  // Some blocks are shared.
}

}  // namespace
}  // namespace kvcache
