#include "bench/trace_replay.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kvcache {
namespace {

double MicrosSince(absl::Time t) { return absl::ToDoubleMicroseconds(absl::Now() - t); }

}  // namespace

absl::StatusOr<ReplayResult> ReplayTrace(CacheClient& client, const Trace& trace,
                                         const TraceKeys& keys, const ReplayOptions& options) {
  if (options.block_bytes == 0) return absl::InvalidArgumentError("block_bytes must be > 0");
  if (options.speed < 0) return absl::InvalidArgumentError("speed must be >= 0");
  std::string payload(options.block_bytes, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + 7);

  ReplayResult result;
  std::vector<double> lookup_us, get_us, put_us, request_us;
  size_t n = trace.requests.size();
  if (options.limit_requests > 0) n = std::min<size_t>(n, options.limit_requests);
  const absl::Time start = absl::Now();
  const int64_t first_ts = n > 0 ? trace.requests[0].timestamp_ms : 0;
  for (size_t r = 0; r < n; ++r) {
    const TraceRequest& req = trace.requests[r];
    const std::vector<Key>& chain = keys.keys[r];
    if (options.speed > 0) {
      absl::SleepFor(start + absl::Milliseconds((req.timestamp_ms - first_ts) / options.speed) -
                     absl::Now());
    }
    const absl::Time t0 = absl::Now();
    ++result.requests;
    result.block_reads += chain.size();
    for (size_t i = 0; i < chain.size(); ++i) result.tokens += trace.BlockTokens(req, i);

    absl::Time t = absl::Now();
    absl::StatusOr<CacheLookup> found = client.Lookup(keys.ns, chain);
    lookup_us.push_back(MicrosSince(t));
    size_t served = 0;
    if (!found.ok()) {
      ++result.errors;
    } else if (found->num_present > 0) {
      t = absl::Now();
      absl::StatusOr<std::vector<CacheBlock>> got =
          client.Get(keys.ns, absl::MakeConstSpan(chain).subspan(0, found->num_present));
      get_us.push_back(MicrosSince(t));
      if (!got.ok()) {
        ++result.errors;
      } else {
        served = got->size();
        for (const CacheBlock& b : *got) result.bytes_read += b.payload.size();
        const size_t in_ram = std::min(served, found->num_in_ram);
        result.ram_hits += in_ram;
        result.disk_hits += served - in_ram;
      }
    }
    result.block_hits += served;
    for (size_t i = 0; i < served; ++i) result.token_hits += trace.BlockTokens(req, i);
    if (served < chain.size()) {
      std::vector<CacheBlock> blocks = ChainedBlocks(chain, served);
      for (CacheBlock& b : blocks) b.payload = payload;
      t = absl::Now();
      absl::StatusOr<CachePutResult> put = client.Put(keys.ns, blocks);
      put_us.push_back(MicrosSince(t));
      if (!put.ok()) {
        ++result.errors;
      } else {
        result.bytes_written += blocks.size() * options.block_bytes;
        result.stored += put->stored;
        result.already_present += put->already_present;
        result.not_admitted += put->not_admitted;
      }
    }
    request_us.push_back(MicrosSince(t0));
    if (options.on_progress) options.on_progress(r + 1, n);
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result.lookup = SummarizeLatencies(lookup_us);
  result.get = SummarizeLatencies(get_us);
  result.put = SummarizeLatencies(put_us);
  result.request = SummarizeLatencies(request_us);
  return result;
}

}  // namespace kvcache
