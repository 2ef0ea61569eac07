// `kvcache-bench throughput`: bulk Get/Put throughput and latency of kvcache, measured side
// by side with Redis, memcached and a raw TCP ceiling, driven by the same C++ loop; plus
// kvcache Lookup latency of a chain and the RAM tier's index cost per block.
//
//   kvcache-bench throughput --target=kvcache|kvcache-tcp|kvcache-grpc|redis|memcached|rawtcp
//       --addr=HOST:PORT --op=get|put --value-bytes=256KiB --clients=4 --seconds=3 [--json]
//   kvcache-bench throughput --target=kvcache --addr=HOST:PORT --op=lookup --chain=64
//   kvcache-bench throughput --op=index-scale --blocks=1000000 [--value-bytes=64]
//   kvcache-bench throughput --serve-rawtcp [--listen=127.0.0.1:0]
//
// Each of the --clients threads has its own connection (kvcache: its own CacheClient, so its
// own gRPC channel; Redis: its own hiredis context; memcached: its own memcached_st). Get
// reads random keys of a key set written just before (enough keys to exceed CPU caches:
// about 256 MiB of values, 16 to 1024 keys) and checks every value's length and its
// first 8 bytes (which name the key), and every --verify-every'th value in full. Put writes
// fresh keys, so every Put is a real insert (the stores evict to stay in budget). Only
// operations that start and end inside the measured window count; a warm-up precedes it.
// The client process tunes glibc malloc for large buffers (as kvcache-worker does) for
// --target=kvcache only; the peers' clients run with glibc's defaults (--tune-malloc=
// auto|true|false). --json prints one JSON object (gbps = 1e9 bytes/s of values moved, ops_per_s, p50_us,
// p90_us, p99_us, ...); the exit status is non-zero on errors or a failed check.
//
// `--op=index-scale` runs in-process: it creates the server's tiered store (RAM tier only),
// stores --blocks blocks of --value-bytes, and reports the resident memory it grew by per
// block minus the payload bytes (index entry, metadata, allocator overhead), and Put, Get
// and Lookup rates at that size. See docs/benchmarks.md.

#ifndef KVCACHE_BENCH_THROUGHPUT_H_
#define KVCACHE_BENCH_THROUGHPUT_H_

#include "bench/flags.h"
#include "common/cli.h"

namespace kvcache {
namespace bench {

// The flags of `throughput` (kvcache-bench throughput --help lists them).
extern const FlagScope kThroughputFlags;

// The `throughput` subcommand. `argv` may start with the program name and the word
// "throughput"; the rest are its flags (see above). Returns the exit status: 0 on
// success or --help, 1 after errors or failed checks, 2 on a usage error.
int RunThroughput(int argc, char** argv);

}  // namespace bench
}  // namespace kvcache

#endif  // KVCACHE_BENCH_THROUGHPUT_H_
