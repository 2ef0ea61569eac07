// `kvcache-bench throughput --op=index-scale`: the RAM tier's memory and speed at a given
// number of stored blocks, measured in-process on the same TieredStore the server runs.
//
// Resident memory (VmRSS) is read before and after storing the blocks; the keys are made
// before the first reading, so they are not counted. bytes_per_block is the growth per
// block. With the arena (the server's default) the payloads land in its region, resident
// before the first reading, so the growth is what the store spends per block beyond the
// payload (index_bytes_per_block); on the heap (--ram-arena=false) index_bytes_per_block
// subtracts the payload bytes, leaving the index, metadata and malloc's own header and
// rounding of each payload. Single process, so run one size per process for clean figures.
//
// While the blocks are stored, another thread looks up one unrelated stored key in a loop:
// its p50 and p99 are what an innocent client sees during the fill (with colliding keys, a
// hash-flooding attempt).

#ifndef KVCACHE_BENCH_THROUGHPUT_INDEX_H_
#define KVCACHE_BENCH_THROUGHPUT_INDEX_H_

#include <cstdint>
#include <string>

namespace kvcache {
namespace bench {

struct IndexScaleOptions {
  // Blocks to store. Default: 100000.
  uint64_t blocks = 100000;
  // Payload bytes per block. Default: 64.
  uint64_t value_bytes = 64;
  // Threads reading (Get, Lookup) after the fill. Default: 1.
  int clients = 1;
  // Seconds of each read phase. Default: 1.
  double seconds = 1.0;
  // Keys that all share their first 16 bytes (what a client flooding the index's hash would
  // send) instead of random ones. Default: false (--key-pattern=random).
  bool colliding_keys = false;
  // The RAM tier's eviction policy (the server's default is reuse-density). Default: "lru".
  std::string eviction = "lru";
  // Payloads in the RAM tier's arena (RamTierOptions::arena), as the server's default.
  // Default: true.
  bool arena = true;
  // Also measure Get and Lookup as a client sees them: the store is served by a real
  // kvcache server in this process (loopback gRPC and data channel, the same-host path),
  // and `clients` CacheClients read it after the in-process phases. Default: false.
  bool served = false;
};

// Runs the measurement and prints one JSON object (json) or a line for people. Returns the
// exit status (non-zero if the store did not keep every block).
int RunIndexScale(const IndexScaleOptions& options, bool json);

}  // namespace bench
}  // namespace kvcache

#endif  // KVCACHE_BENCH_THROUGHPUT_INDEX_H_
