#include "bench/synthetic_trace.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>
#include <random>
#include <tuple>
#include <vector>

namespace kvcache {
namespace {

constexpr uint64_t kBlockTokens = 512;

// A run of prompt tokens owned by one thing: a system prompt, a document, a chat's own
// turns or a one-shot question. Owner ids are unique across kinds.
struct Segment {
  uint64_t owner;
  uint64_t tokens;
};

// Zipf(1) over [0, n): P(k) proportional to 1 / (k + 1).
class Zipf {
 public:
  explicit Zipf(int n) {
    double sum = 0;
    for (int k = 0; k < n; ++k) cdf_.push_back(sum += 1.0 / (k + 1));
    for (double& c : cdf_) c /= sum;
  }
  int operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return int(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

// Assigns prefix-chained ids: a block's id is determined by its parent's id, the owners of
// the segments it overlaps and where it ends, so equal prefixes get equal ids and a
// partial last block differs from the full block it later grows into.
class IdAssigner {
 public:
  std::vector<uint32_t> Chain(const std::vector<Segment>& prompt) {
    uint64_t total = 0;
    for (const Segment& s : prompt) total += s.tokens;
    std::vector<uint32_t> ids;
    int64_t parent = -1;
    for (uint64_t begin = 0; begin < total; begin += kBlockTokens) {
      const uint64_t end = std::min(total, begin + kBlockTokens);
      std::vector<uint64_t> sig{static_cast<uint64_t>(parent), end};
      uint64_t at = 0;
      for (const Segment& s : prompt) {
        if (at < end && at + s.tokens > begin) sig.push_back(s.owner);
        at += s.tokens;
      }
      auto [it, inserted] = ids_.try_emplace(sig, static_cast<uint32_t>(ids_.size()));
      ids.push_back(it->second);
      parent = it->second;
    }
    return ids;
  }

 private:
  std::map<std::vector<uint64_t>, uint32_t> ids_;
};

}  // namespace

Trace GenerateSyntheticTrace(const SyntheticTraceOptions& options) {
  std::mt19937_64 rng(options.seed);
  auto uniform = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  uint64_t next_owner = 0;
  std::vector<uint64_t> system_tokens, doc_tokens;
  for (int i = 0; i < options.system_prompts; ++i) system_tokens.push_back(uniform(200, 6000));
  for (int i = 0; i < options.documents; ++i) doc_tokens.push_back(uniform(1000, 16000));
  next_owner = options.system_prompts + options.documents;
  const Zipf pick_system(options.system_prompts), pick_doc(options.documents);

  struct Chat {
    std::vector<Segment> prompt;
    uint64_t turns_left;
  };
  // Pending chat turns by due time (ms).
  using Due = std::pair<int64_t, size_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due;
  std::vector<Chat> chats;
  std::exponential_distribution<double> arrival(options.requests_per_second);
  std::exponential_distribution<double> gap(1.0 / options.mean_turn_gap_s);
  std::geometric_distribution<uint64_t> extra_turns(1.0 / options.mean_turns);
  IdAssigner ids;
  Trace trace;
  trace.block_tokens = kBlockTokens;
  double now_s = 0;
  while (trace.requests.size() < options.requests) {
    now_s += arrival(rng);
    const int64_t now_ms = int64_t(now_s * 1000);
    // Chat turns that came due before this arrival go first.
    while (!due.empty() && due.top().first <= now_ms && trace.requests.size() < options.requests) {
      auto [at_ms, c] = due.top();
      due.pop();
      Chat& chat = chats[c];
      TraceRequest r;
      r.timestamp_ms = at_ms;
      chat.prompt.push_back({c + next_owner, uniform(20, 1500)});  // The new user message.
      for (const Segment& s : chat.prompt) r.input_length += s.tokens;
      r.output_length = uniform(20, 1200);
      r.hash_ids = ids.Chain(chat.prompt);
      trace.requests.push_back(std::move(r));
      chat.prompt.push_back({c + next_owner, trace.requests.back().output_length});
      if (--chat.turns_left > 0) due.emplace(at_ms + int64_t(gap(rng) * 1000), c);
    }
    if (trace.requests.size() >= options.requests) break;
    TraceRequest r;
    r.timestamp_ms = now_ms;
    std::vector<Segment> prompt;
    const int s = pick_system(rng);
    prompt.push_back({uint64_t(s), system_tokens[s]});
    const bool chat = std::uniform_real_distribution<double>(0, 1)(rng) < options.chat_share;
    if (!chat) {
      const int d = pick_doc(rng);
      prompt.push_back({uint64_t(options.system_prompts + d), doc_tokens[d]});
    }
    // Chat owners are next_owner + chat index; one-shot questions get owners past them.
    const uint64_t own =
        chat ? next_owner + chats.size() : next_owner + options.requests + trace.requests.size();
    prompt.push_back({own, uniform(20, 1500)});
    for (const Segment& seg : prompt) r.input_length += seg.tokens;
    r.output_length = uniform(20, 1200);
    r.hash_ids = ids.Chain(prompt);
    if (chat) {
      prompt.push_back({own, r.output_length});
      chats.push_back(Chat{std::move(prompt), 1 + extra_turns(rng)});
      if (chats.back().turns_left > 1) {
        --chats.back().turns_left;
        due.emplace(now_ms + int64_t(gap(rng) * 1000), chats.size() - 1);
      }
    }
    trace.requests.push_back(std::move(r));
  }
  std::stable_sort(
      trace.requests.begin(), trace.requests.end(),
      [](const TraceRequest& a, const TraceRequest& b) { return a.timestamp_ms < b.timestamp_ms; });
  return trace;
}

}  // namespace kvcache
