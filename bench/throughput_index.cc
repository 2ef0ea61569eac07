#include "bench/throughput_index.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "cachestore/arena.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "client/cache_client.h"
#include "nlohmann/json.hpp"
#include "services/cache_server.h"

namespace kvcache {
namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

// Resident set size of this process, from /proc/self/status; 0 if unreadable.
uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Key KeyOf(uint64_t seed) {
  Key k;
  for (int i = 0; i < 4; ++i) {
    const uint64_t w = Mix(seed * 4 + static_cast<uint64_t>(i));
    std::memcpy(k.bytes.data() + 8 * i, &w, 8);
  }
  return k;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Runs `op(thread, n)` on `threads` threads for `seconds`; returns calls per second.
template <typename OpFn>
double Rate(int threads, double seconds, OpFn op) {
  std::atomic<uint64_t> total{0};
  const Clock::time_point end =
      Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  const Clock::time_point begin = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      uint64_t n = 0;
      while ((n & 255) != 0 || Clock::now() < end) op(t, n++);
      total += n;
    });
  }
  for (std::thread& th : pool) th.join();
  return static_cast<double>(total.load()) / Seconds(Clock::now() - begin);
}

}  // namespace

int RunIndexScale(const IndexScaleOptions& o, bool json) {
  const Key ns = KeyOf(0x6e73);
  std::vector<Key> keys(o.blocks);
  for (uint64_t i = 0; i < o.blocks; ++i) {
    keys[i] = KeyOf(i + 1);
    if (o.colliding_keys) std::memset(keys[i].bytes.data(), 0xc5, 16);
  }
  const std::string payload(o.value_bytes, 'p');

  TieredStoreOptions so;
  so.ram.eviction = o.eviction;
  const uint64_t charge = ChargeOf(o.value_bytes) + EvictionPolicyExtraBytes(o.eviction);
  so.ram.capacity_bytes = o.blocks * charge * 11 / 10 + (64ull << 20);
  so.ram.arena = o.arena;
  // The store: the bench's own, or (--served) the one a kvcache server in this process
  // opens and serves.
  std::unique_ptr<TieredStore> own;
  std::unique_ptr<CacheServer> server;
  if (o.served) {
    ServerOptions serving;
    serving.listen = "127.0.0.1:0";
    serving.data_listen = "127.0.0.1:0";
    serving.data_channel.local_listen = "auto";  // As kvcache-server: the same-host path.
    serving.store = so;
    absl::StatusOr<std::unique_ptr<CacheServer>> started = StartCacheServer(serving);
    if (!started.ok()) {
      std::cerr << "kvcache-bench throughput: " << started.status().message() << std::endl;
      return 1;
    }
    server = *std::move(started);
  } else {
    absl::StatusOr<std::unique_ptr<TieredStore>> opened = NewTieredStore(so);
    if (!opened.ok()) {
      std::cerr << "kvcache-bench throughput: " << opened.status().message() << std::endl;
      return 1;
    }
    own = *std::move(opened);
  }
  TieredStore* const store = server != nullptr ? server->store() : own.get();
  // The region is resident before the first reading, as in a server warmed up.
  while (store->arena() != nullptr &&
         store->arena()->Stats().prefaulted_bytes < store->arena()->Stats().capacity_bytes) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The innocent client: one stored block of its own, looked up throughout the fill.
  const Key other_ns = KeyOf(0x6f74);
  const Key other_key = KeyOf(0x6f7468);
  if (!store->Put(MakeBlock(BlockId{other_ns, other_key}, std::nullopt, payload)).ok()) {
    std::cerr << "kvcache-bench throughput: Put of the probe block failed" << std::endl;
    return 1;
  }
  std::atomic<bool> filling{true};
  uint64_t misses_during_fill = 0;  // Written by the prober only, read after it is joined.
  // Reserved before the first RSS reading; the latest samples kept when it fills.
  constexpr size_t kMaxProbes = size_t{1} << 20;
  std::vector<double> probe_us(kMaxProbes);
  size_t probes = 0;
  std::thread prober([&] {
    while (filling.load(std::memory_order_relaxed)) {
      const Clock::time_point t0 = Clock::now();
      if (store->Lookup(other_ns, absl::MakeConstSpan(&other_key, 1)).num_present != 1) {
        ++misses_during_fill;
      }
      probe_us[probes++ % kMaxProbes] = Seconds(Clock::now() - t0) * 1e6;
    }
  });
  const uint64_t rss_before = ResidentBytes();
  const Clock::time_point put_start = Clock::now();
  for (uint64_t i = 0; i < o.blocks; ++i) {
    absl::StatusOr<PutOutcome> r =
        store->Put(MakeBlock(BlockId{ns, keys[i]}, std::nullopt, payload));
    if (!r.ok() || *r != PutOutcome::kStored) {
      std::cerr << "kvcache-bench throughput: Put of block " << i << " failed" << std::endl;
      return 1;
    }
  }
  const double put_s = Seconds(Clock::now() - put_start);
  filling = false;
  prober.join();
  probe_us.resize(std::min(probes, kMaxProbes));
  std::sort(probe_us.begin(), probe_us.end());
  auto quantile = [&](double q) {
    return probe_us.empty() ? 0.0
                            : probe_us[static_cast<size_t>(q * (probe_us.size() - 1))];
  };
  const double probe_p50 = quantile(0.5), probe_p99 = quantile(0.99);
  const uint64_t rss_after = ResidentBytes();
  const StoreStats stats = store->GetStoreStats();
  if (stats.ram.blocks != o.blocks + 1) {
    std::cerr << "kvcache-bench throughput: the RAM tier holds " << stats.ram.blocks << " of "
              << o.blocks + 1 << " blocks" << std::endl;
    return 1;
  }

  std::atomic<uint64_t> misses{misses_during_fill};
  // Each Get's and Lookup's keys are made afresh, as a server has them fresh from its request:
  // reading them from `keys` (320 MB at 10M blocks) would add cache and TLB misses of the
  // benchmark's own.
  const double get_per_s = Rate(o.clients, o.seconds, [&](int t, uint64_t n) {
    const uint64_t i = Mix(n * 64 + static_cast<uint64_t>(t)) % o.blocks;
    Key key = KeyOf(i + 1);
    if (o.colliding_keys) std::memset(key.bytes.data(), 0xc5, 16);
    if (!store->Get(BlockId{ns, key}).ok()) ++misses;
  });
  constexpr size_t kChain = 64;
  std::vector<std::array<Key, kChain>> chains(static_cast<size_t>(o.clients));  // Per thread.
  const double lookup_per_s = Rate(o.clients, o.seconds, [&](int t, uint64_t n) {
    const uint64_t i = Mix(n * 64 + static_cast<uint64_t>(t) + 1) % (o.blocks - kChain + 1);
    std::array<Key, kChain>& chain = chains[static_cast<size_t>(t)];
    for (size_t k = 0; k < kChain; ++k) {  // Made afresh, as Get's key.
      chain[k] = KeyOf(i + k + 1);
      if (o.colliding_keys) std::memset(chain[k].bytes.data(), 0xc5, 16);
    }
    if (store->Lookup(ns, chain).num_present != kChain) ++misses;
  });

  // As a client sees them: the same reads through CacheClients over loopback, one each.
  double served_get_per_s = 0, served_lookup_per_s = 0;
  uint64_t served_local_calls = 0;  // Of them, the calls that took the same-host path.
  if (server != nullptr) {
    std::vector<std::unique_ptr<CacheClient>> clients;
    for (int t = 0; t < o.clients; ++t) {
      CacheClientOptions co;
      co.target = server->address();
      absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(co);
      if (!c.ok()) {
        std::cerr << "kvcache-bench throughput: " << c.status().message() << std::endl;
        return 1;
      }
      // Connected (channel, data connection) before the clock starts.
      if (!(*c)->Get(ns, absl::MakeConstSpan(&keys[0], 1)).ok()) {
        std::cerr << "kvcache-bench throughput: a served Get failed" << std::endl;
        return 1;
      }
      clients.push_back(*std::move(c));
    }
    served_get_per_s = Rate(o.clients, o.seconds, [&](int t, uint64_t n) {
      const uint64_t i = Mix(n * 64 + static_cast<uint64_t>(t)) % o.blocks;
      Key key = KeyOf(i + 1);
      if (o.colliding_keys) std::memset(key.bytes.data(), 0xc5, 16);
      absl::StatusOr<std::vector<CacheBlock>> got =
          clients[static_cast<size_t>(t)]->Get(ns, absl::MakeConstSpan(&key, 1));
      if (!got.ok() || got->size() != 1) ++misses;
    });
    served_lookup_per_s = Rate(o.clients, o.seconds, [&](int t, uint64_t n) {
      const uint64_t i = Mix(n * 64 + static_cast<uint64_t>(t) + 1) % (o.blocks - kChain + 1);
      std::array<Key, kChain>& chain = chains[static_cast<size_t>(t)];
      for (size_t k = 0; k < kChain; ++k) {
        chain[k] = KeyOf(i + k + 1);
        if (o.colliding_keys) std::memset(chain[k].bytes.data(), 0xc5, 16);
      }
      absl::StatusOr<CacheLookup> l = clients[static_cast<size_t>(t)]->Lookup(ns, chain);
      if (!l.ok() || l->num_present != kChain) ++misses;
    });
    for (const std::unique_ptr<CacheClient>& c : clients) served_local_calls += c->local_path_calls();
  }

  const double per_block = (static_cast<double>(rss_after) - static_cast<double>(rss_before)) /
                           static_cast<double>(o.blocks);
  const ArenaStats arena = store->arena() != nullptr ? store->arena()->Stats() : ArenaStats{};
  const bool in_arena = arena.heap_takes == 0 && store->arena() != nullptr;
  // In the arena the payloads were resident before the first reading.
  const double index_per_block = per_block - (in_arena ? 0.0 : static_cast<double>(o.value_bytes));
  if (json) {
    nlohmann::ordered_json j = {{"op", "index-scale"},
                                {"blocks", o.blocks},
                                {"value_bytes", o.value_bytes},
                                {"clients", o.clients},
                                {"key_pattern", o.colliding_keys ? "colliding" : "random"},
                                {"eviction", o.eviction},
                                {"ram_arena", o.arena},
                                {"arena_heap_takes", arena.heap_takes},
                                {"rss_before_bytes", rss_before},
                                {"rss_after_bytes", rss_after},
                                {"bytes_per_block", per_block},
                                {"index_bytes_per_block", index_per_block},
                                {"charged_overhead_bytes", charge - o.value_bytes},
                                {"put_ops_per_s", o.blocks / put_s},
                                {"put_seconds", put_s},
                                {"lookup_during_fill_p50_us", probe_p50},
                                {"lookup_during_fill_p99_us", probe_p99},
                                {"get_ops_per_s", get_per_s},
                                {"lookup64_per_s", lookup_per_s},
                                {"lookup_keys_per_s", lookup_per_s * kChain},
                                {"misses", misses.load()}};
    if (server != nullptr) {
      j["served_get_ops_per_s"] = served_get_per_s;
      j["served_lookup64_per_s"] = served_lookup_per_s;
      j["served_local_path_calls"] = served_local_calls;
    }
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << absl::StrFormat(
                     "index-scale: %d blocks of %d B, %s keys, %s%s: %.1f B/block resident (%.1f "
                     "beyond the payload; the store charges %d); put %.0f/s (%.2f s), get "
                     "%.0f/s, 64-key lookup %.0f/s (%d threads); another client's Lookup "
                     "during the fill: p50 %.1f us, p99 %.1f us",
                     o.blocks, o.value_bytes, o.colliding_keys ? "colliding" : "random",
                     o.eviction, in_arena ? ", arena" : "", per_block, index_per_block, charge - o.value_bytes, o.blocks / put_s, put_s,
                     get_per_s, lookup_per_s, o.clients, probe_p50, probe_p99)
              << std::endl;
    if (server != nullptr) {
      std::cout << absl::StrFormat(
                       "served (%d clients, loopback; %d calls took the same-host path): get "
                       "%.0f/s, 64-key lookup %.0f/s",
                       o.clients, served_local_calls, served_get_per_s, served_lookup_per_s)
                << std::endl;
    }
  }
  if (server != nullptr) server->Shutdown(absl::ZeroDuration());
  return misses.load() == 0 ? 0 : 1;
}

}  // namespace bench
}  // namespace kvcache
