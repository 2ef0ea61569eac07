#include "bench/trace.h"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/block_keys.h"
#include "nlohmann/json.hpp"

namespace kvcache {
namespace {

using nlohmann::json;

absl::Status LineError(size_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("trace line ", line, ": ", what));
}

// A non-negative integer field. `max` bounds it.
absl::StatusOr<uint64_t> Field(const json& obj, const char* name, size_t line, uint64_t max) {
  auto it = obj.find(name);
  if (it == obj.end()) return LineError(line, absl::StrCat("missing \"", name, "\""));
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
    return LineError(
        line, absl::StrCat("\"", name, "\" must be a non-negative integer, got ", it->dump()));
  }
  const uint64_t v = it->get<uint64_t>();
  if (v > max) return LineError(line, absl::StrCat("\"", name, "\" is too large: ", v));
  return v;
}

}  // namespace

uint64_t Trace::NumBlockReads() const {
  uint64_t n = 0;
  for (const TraceRequest& r : requests) n += r.hash_ids.size();
  return n;
}

uint64_t Trace::BlockTokens(const TraceRequest& r, size_t i) const {
  if (i + 1 < r.hash_ids.size()) return block_tokens;
  const uint64_t before = block_tokens * i;
  const uint64_t rest = r.input_length > before ? r.input_length - before : 1;
  return std::clamp<uint64_t>(rest, 1, block_tokens);
}

absl::StatusOr<Trace> ParseTrace(absl::string_view jsonl) {
  Trace trace;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(jsonl, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const json obj = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded()) return LineError(line_no, "not valid JSON");
    if (!obj.is_object()) return LineError(line_no, "not a JSON object");
    TraceRequest r;
    absl::StatusOr<uint64_t> ts = Field(obj, "timestamp", line_no, uint64_t{1} << 62);
    if (!ts.ok()) return ts.status();
    absl::StatusOr<uint64_t> in = Field(obj, "input_length", line_no, uint64_t{1} << 40);
    if (!in.ok()) return in.status();
    absl::StatusOr<uint64_t> out = Field(obj, "output_length", line_no, uint64_t{1} << 40);
    if (!out.ok()) return out.status();
    r.timestamp_ms = static_cast<int64_t>(*ts);
    r.input_length = *in;
    r.output_length = *out;
    auto ids = obj.find("hash_ids");
    if (ids == obj.end()) return LineError(line_no, "missing \"hash_ids\"");
    if (!ids->is_array()) return LineError(line_no, "\"hash_ids\" must be an array");
    r.hash_ids.reserve(ids->size());
    for (const json& id : *ids) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() > UINT32_MAX) {
        return LineError(line_no,
                         absl::StrCat("hash id ", id.dump(), " is not an integer in [0, 2^32)"));
      }
      r.hash_ids.push_back(id.get<uint32_t>());
    }
    trace.requests.push_back(std::move(r));
  }
  return trace;
}

absl::StatusOr<Trace> LoadTrace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace '", path, "'"));
  std::stringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<Trace> trace = ParseTrace(buf.str());
  if (!trace.ok()) {
    return absl::Status(trace.status().code(), absl::StrCat(path, ": ", trace.status().message()));
  }
  return trace;
}

Trace ShuffleTrace(const Trace& trace, uint64_t seed) {
  Trace out = trace;
  std::mt19937_64 rng(seed);
  std::shuffle(out.requests.begin(), out.requests.end(), rng);
  for (size_t i = 0; i < out.requests.size(); ++i) {
    out.requests[i].timestamp_ms = trace.requests[i].timestamp_ms;
  }
  return out;
}

std::string TraceToJsonl(const Trace& trace) {
  std::string out;
  for (const TraceRequest& r : trace.requests) {
    json obj = {{"timestamp", r.timestamp_ms},
                {"input_length", r.input_length},
                {"output_length", r.output_length},
                {"hash_ids", r.hash_ids}};
    absl::StrAppend(&out, obj.dump(), "\n");
  }
  return out;
}

Key TraceNamespace() {
  NamespaceDescription d;
  d.architecture = "trace";
  d.weights_digest = "kvcache-bench trace replay";
  d.block_size = 1;
  return NamespaceId(d);
}

TraceKeys KeysOf(const Trace& trace) {
  TraceKeys out;
  out.ns = TraceNamespace();
  absl::flat_hash_map<Key, uint32_t> dense;
  out.keys.reserve(trace.requests.size());
  out.dense.reserve(trace.requests.size());
  for (const TraceRequest& r : trace.requests) {
    out.keys.push_back(ChainedBlockKeys(out.ns, r.hash_ids, 1));
    std::vector<uint32_t>& d = out.dense.emplace_back();
    d.reserve(r.hash_ids.size());
    for (const Key& k : out.keys.back()) {
      auto [it, inserted] = dense.try_emplace(k, static_cast<uint32_t>(dense.size()));
      d.push_back(it->second);
    }
  }
  out.num_distinct = static_cast<uint32_t>(dense.size());
  return out;
}

}  // namespace kvcache
