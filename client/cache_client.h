// The kvcache client: Lookup / Get / Put against one cache server, with deadlines and clear
// errors. Used by the worker, kvcache-admin and the benchmarks; usable by any C++ inference
// engine on its own (it depends on gRPC and the kvcache.v1 stubs, not on the store).
//
// Thread safety: a CacheClient is safe to use from many threads at once. Each call blocks
// until it completes or its deadline (`CacheClientOptions::timeout`) passes.
//
// Errors are absl::Status with the server's gRPC code; a cache miss is never an error
// (Lookup returns 0, Get returns fewer blocks). When the server is down or slow, calls fail
// with UNAVAILABLE or DEADLINE_EXCEEDED: callers that can recompute should treat any error
// as a miss.

#ifndef KVCACHE_CLIENT_CACHE_CLIENT_H_
#define KVCACHE_CLIENT_CACHE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/block_shape.h"
#include "common/key.h"

namespace kvcache {

struct CacheClientOptions {
  // Server address, "host:port" (any gRPC target). Required.
  std::string target;
  // Deadline of each call. Default: 5 s.
  absl::Duration timeout = absl::Seconds(5);
  // Largest message the client accepts or sends. Default: 80 MiB.
  int max_message_bytes = 80 << 20;
  // Move Get and Put payloads over the server's bulk data channel (a plain TCP connection
  // negotiated with OpenDataChannel; docs/data-channel.md) when it offers one, falling back
  // to gRPC Get and Put when it does not or the channel fails (counted: see
  // data_channel_fallbacks). A channel advertised on an unspecified host (0.0.0.0, ::) is
  // reached on the host of `target`. Default: true.
  bool use_data_channel = true;
};

// A block as the client sends and receives it.
struct CacheBlock {
  Key key;
  std::optional<Key> parent;
  std::string payload;
  uint64_t checksum = 0;  // Filled in by Put; verified by Get.
  BlockShape shape;
};

// Blocks for chain[first..], in order, each with its key and its parent (the key before
// it in the chain; none for chain[0]), payload and shape left for the caller to fill: the
// list Put takes for the part of a chain that is not cached yet. Empty when first >=
// chain.size().
std::vector<CacheBlock> ChainedBlocks(absl::Span<const Key> chain, size_t first);

struct CacheLookup {
  size_t num_present = 0;  // Leading keys stored.
  size_t num_in_ram = 0;   // Of those, leading keys in the server's RAM tier.
};

struct CachePutResult {
  uint32_t stored = 0;
  uint32_t already_present = 0;
  uint32_t not_admitted = 0;
};

class CacheClient {
 public:
  CacheClient() = default;
  CacheClient(const CacheClient&) = delete;
  CacheClient& operator=(const CacheClient&) = delete;
  virtual ~CacheClient() = default;

  // How many leading `keys` of namespace `ns` the server holds.
  //   INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED.
  virtual absl::StatusOr<CacheLookup> Lookup(const Key& ns, absl::Span<const Key> keys) = 0;

  // The leading run of `keys` that the server holds, in order (possibly empty). A block
  // whose checksum fails on arrival ends the run there, as a miss.
  //   INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED.
  virtual absl::StatusOr<std::vector<CacheBlock>> Get(const Key& ns,
                                                      absl::Span<const Key> keys) = 0;

  // Publishes `blocks` (their checksums are computed here) as one client stream.
  //   INVALID_ARGUMENT, RESOURCE_EXHAUSTED (a block over the server's limit), UNAVAILABLE,
  //   DEADLINE_EXCEEDED.
  virtual absl::StatusOr<CachePutResult> Put(const Key& ns,
                                             absl::Span<const CacheBlock> blocks) = 0;

  // Get and Put calls that went over gRPC although the server offers a data channel (it
  // could not be reached or broke: see docs/data-channel.md). Never blocks.
  virtual uint64_t data_channel_fallbacks() const { return 0; }
};

// Makes a client; connects lazily (the first call connects).
//   INVALID_ARGUMENT  empty target.
absl::StatusOr<std::unique_ptr<CacheClient>> NewCacheClient(const CacheClientOptions& options);

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_CACHE_CLIENT_H_
