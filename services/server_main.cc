// kvcache-server: parses and checks flags, starts the server, waits for SIGTERM/SIGINT,
// drains. The work is in services/cache_server.h.

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cachestore/block_store.h"
#include "cachestore/eviction_policy.h"
#include "common/byte_size.h"
#include "common/cli.h"
#include "common/process_tuning.h"
#include "common/signals.h"
#include "common/tls_flags.h"
#include "services/cache_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address, host:port; port 0 picks a free one (printed at start); a port in use "
          "is an error");
ABSL_FLAG(std::string, ram_bytes, "512MiB",
          "RAM tier capacity, never exceeded (e.g. 4MiB, 2GiB; payload + 160 B per block)");
ABSL_FLAG(std::string, disk_path, "./kvcache-data",
          "RocksDB directory of the disk tier; empty runs RAM only");
ABSL_FLAG(std::string, disk_bytes, "8GiB", "disk tier capacity; 0 runs RAM only");
ABSL_FLAG(std::string, disk_index_bytes, "256MiB",
          "RAM budget of the disk tier's in-memory index (128 B per block on disk); the "
          "oldest blocks are evicted to stay within it; 0: no budget");
ABSL_FLAG(std::string, disk_dir_slack, "8MiB",
          "room the disk tier's RocksDB directory may take beyond --disk-bytes (WAL, metadata, "
          "garbage awaiting collection) before garbage shrinks the live budget and writes wait");
ABSL_FLAG(std::string, disk_min_free_bytes, "64MiB",
          "the disk tier takes no writes (reported degraded; RAM still serves) while its "
          "filesystem has less free space than this");
ABSL_FLAG(std::string, max_block_bytes, "16MiB",
          "largest block payload accepted; larger puts get RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, eviction, "reuse-density",
          "eviction policy of both tiers: reuse-density, lru or prefix-lfu (docs/eviction.md)");
ABSL_FLAG(int64_t, events_ring, 65536,
          "KV events (SubscribeEvents, docs/events.md): how many recent events are kept for "
          "subscribers that reconnect (about 160 B each); 0 turns events off");
ABSL_FLAG(std::string, demotion_queue_bytes, "256MiB",
          "RAM victims waiting for the background writer to put them on disk; past it a Put "
          "demotes its own victims (counted as demotion_waits); 0 demotes on the Put's thread");
ABSL_FLAG(int, io_threads, 8,
          "threads for store work that may wait on the disk (Get's reads from the disk tier, "
          "Put's stores, admin ls/inspect/evict/flush), 1 to 256; gRPC's own threads, which "
          "answer health checks, never wait on the disk");
ABSL_FLAG(bool, ram_arena, true,
          "receive payloads into a RAM-tier arena that a background thread faults in from the "
          "start, at idle priority, and eviction recycles (resident size = --ram-bytes from the "
          "start; Puts never wait on fresh memory); --ram-arena=false leaves payloads to malloc");
ABSL_FLAG(bool, ram_huge_pages, true,
          "with --ram-arena, advise the arena's region for transparent huge pages "
          "(MADV_HUGEPAGE; the kernel's THP setting decides: madvise or always gives them, "
          "never does not): the warm-up is several times faster (4 GiB: 5.5 s instead of "
          "25.6) and copies into and out of the arena miss the TLB less "
          "(docs/operations.md); --ram-huge-pages=false keeps 4 KiB pages");
ABSL_FLAG(int, ram_shard_bits, -1,
          "log2 of the RAM tier's shards, -1 to 10; -1 picks the most (up to 16) that leave "
          "64 MiB or more each");
ABSL_FLAG(std::string, data_listen, "auto",
          "bulk data channel TCP address, host:port (docs/data-channel.md); auto: --listen's "
          "host, any free port, or none with TLS (the channel is plaintext); off: none "
          "(clients use gRPC Get/Put)");
ABSL_FLAG(std::string, data_advertise, "",
          "data channel address told to clients, host or host:port; empty: the bound address "
          "(clients that get 0.0.0.0 or :: connect to the host they dialled)");
ABSL_FLAG(std::string, local_listen, "auto",
          "same-host path: Unix socket whose clients get payloads through shared memory "
          "(docs/data-channel.md); auto: an abstract socket with a random name; off: none "
          "(same-host clients use the TCP data channel); else a socket file path. Not "
          "offered without the data channel");
ABSL_FLAG(std::string, local_region_bytes, "0",
          "shared memory of each same-host connection; 0: max(16MiB, --max-block-bytes)");
ABSL_FLAG(std::string, local_regions_max_bytes, "256MiB",
          "most shared memory of all same-host connections at once; more connect over TCP");
ABSL_FLAG(int, data_max_connections, 256,
          "most data channel connections served at once; more are closed at accept");
ABSL_FLAG(int, data_max_connections_per_peer, 32,
          "most data channel connections at once from one client IP address; more are closed "
          "at accept");
ABSL_FLAG(int, max_keys_per_request, 65536,
          "most keys one Lookup or Get may name (1 to 65536); more: RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_blocks_per_put, 65536,
          "most blocks one Put stream may carry; the message past it: RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, max_inflight_bytes, "1GiB",
          "most bytes held at once by Put messages being stored and Get blocks being sent; "
          "over it: RESOURCE_EXHAUSTED; 0: no limit");
ABSL_FLAG(absl::Duration, max_call_duration, absl::Minutes(10),
          "longest a Get or Put stream may run: DEADLINE_EXCEEDED at its next message, "
          "CANCELLED if stalled; 0: no limit");
ABSL_FLAG(std::string, grpc_max_message_bytes, "auto",
          "largest gRPC message either way; auto: --max-block-bytes plus 4MiB; larger: "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int, grpc_max_concurrent_streams, 256,
          "most calls at once on one client connection; more wait at the client");
ABSL_FLAG(std::string, grpc_memory_bytes, "1GiB",
          "gRPC's memory quota for transport buffers and calls; 0: unbounded");
ABSL_FLAG(absl::Duration, grpc_max_connection_idle, absl::Minutes(10),
          "a gRPC connection with no call for this long is closed (clients reconnect); 0: "
          "never");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics address, host:port; empty for none");
ABSL_FLAG(std::string, auth_tokens, "",
          "callers, tenants, roles and quotas file (docs/security.md), re-read on SIGHUP; "
          "empty: every caller is an anonymous admin (loopback only, or --allow-anonymous)");
ABSL_FLAG(bool, allow_anonymous, false,
          "serve without --auth-tokens on a non-loopback address (refused otherwise)");
ABSL_FLAG(std::string, admin_listen, "",
          "the admin service's listener, host:port; empty: 127.0.0.1 and --listen's port + 2 "
          "(any port when that is 0). With a loopback --listen the admin service is served "
          "there too");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "drain period after SIGTERM/SIGINT: health answers NOT_SERVING and calls are still "
          "served for this long, then the server stops (a unit is required: 10s, 500ms)");

namespace kvcache {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "kvcache-server: " << status.message() << "\n";
  if (IsUsageError(status)) std::cerr << "kvcache-server --help lists the flags\n";
  return ExitStatusOf(status);
}

// The limit flags (services/call_limits.h, docs/operations.md "Limits").
absl::Status LimitsFromFlags(CallLimits* limits) {
  limits->max_keys_per_request = absl::GetFlag(FLAGS_max_keys_per_request);
  if (limits->max_keys_per_request < 1 || limits->max_keys_per_request > 65536) {
    return UsageError("--max-keys-per-request must be in [1, 65536]");
  }
  limits->max_blocks_per_put = absl::GetFlag(FLAGS_max_blocks_per_put);
  if (limits->max_blocks_per_put < 1) return UsageError("--max-blocks-per-put must be at least 1");
  absl::StatusOr<uint64_t> inflight =
      ParseByteSize(absl::GetFlag(FLAGS_max_inflight_bytes), "--max-inflight-bytes");
  if (!inflight.ok()) return UsageError(inflight.status().message());
  limits->max_inflight_bytes = *inflight;
  limits->max_call_duration = absl::GetFlag(FLAGS_max_call_duration);
  if (limits->max_call_duration < absl::ZeroDuration()) {
    return UsageError("--max-call-duration must not be negative");
  }
  const std::string message = absl::GetFlag(FLAGS_grpc_max_message_bytes);
  if (message != "auto") {
    absl::StatusOr<uint64_t> bytes = ParseByteSize(message, "--grpc-max-message-bytes");
    if (!bytes.ok()) return UsageError(bytes.status().message());
    if (*bytes < 4096 || *bytes > (2ull << 30) - 1) {
      return UsageError("--grpc-max-message-bytes must be in [4KiB, 2GiB) or auto");
    }
    limits->max_message_bytes = *bytes;
  }
  limits->max_concurrent_streams = absl::GetFlag(FLAGS_grpc_max_concurrent_streams);
  if (limits->max_concurrent_streams < 1) {
    return UsageError("--grpc-max-concurrent-streams must be at least 1");
  }
  absl::StatusOr<uint64_t> quota =
      ParseByteSize(absl::GetFlag(FLAGS_grpc_memory_bytes), "--grpc-memory-bytes");
  if (!quota.ok()) return UsageError(quota.status().message());
  if (*quota != 0 && *quota < (16ull << 20)) {
    return UsageError("--grpc-memory-bytes must be 0 (unbounded) or at least 16MiB");
  }
  limits->grpc_memory_bytes = *quota;
  limits->max_connection_idle = absl::GetFlag(FLAGS_grpc_max_connection_idle);
  if (limits->max_connection_idle < absl::ZeroDuration()) {
    return UsageError("--grpc-max-connection-idle must not be negative");
  }
  return absl::OkStatus();
}

// The flags as ServerOptions; every usage error names its flag.
absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  if (absl::Status s = CheckListenAddress("--listen", options.listen); !s.ok()) return s;
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!options.metrics_listen.empty()) {
    if (absl::Status s = CheckListenAddress("--metrics-listen", options.metrics_listen);
        !s.ok()) {
      return s;
    }
  }
  options.tls = TlsServerOptionsFromFlags();
  options.allow_plaintext = AllowPlaintextFromFlag();
  options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens);
  options.allow_anonymous = absl::GetFlag(FLAGS_allow_anonymous);
  options.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  if (!options.admin_listen.empty()) {
    if (absl::Status s = CheckListenAddress("--admin-listen", options.admin_listen); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckTlsServerOptions(options.tls); !s.ok()) {
    return UsageError(s.message());
  }
  const std::string data_listen = absl::GetFlag(FLAGS_data_listen);
  if (options.tls.enabled() && data_listen != "auto" && data_listen != "off" &&
      !data_listen.empty()) {
    return UsageError(
        "--data-listen: the data channel is plain TCP and is not offered with TLS; drop it "
        "or give --data-listen=off (clients then use gRPC Get and Put)");
  }
  if (data_listen == "auto" && options.tls.enabled()) {
    // Off under TLS: the bulk channel is plaintext (docs/security.md).
  } else if (data_listen == "auto") {
    options.data_listen = options.listen.substr(0, options.listen.rfind(':')) + ":0";
  } else if (data_listen != "off" && !data_listen.empty()) {
    if (absl::Status s = CheckListenAddress("--data-listen", data_listen); !s.ok()) return s;
    options.data_listen = data_listen;
  }
  options.data_advertise = absl::GetFlag(FLAGS_data_advertise);
  options.data_channel.local_listen = absl::GetFlag(FLAGS_local_listen);
  options.data_channel.max_connections = absl::GetFlag(FLAGS_data_max_connections);
  options.data_channel.max_connections_per_peer =
      absl::GetFlag(FLAGS_data_max_connections_per_peer);
  if (options.data_channel.max_connections < 1) {
    return UsageError("--data-max-connections must be at least 1");
  }
  if (options.data_channel.max_connections_per_peer < 1) {
    return UsageError("--data-max-connections-per-peer must be at least 1");
  }
  auto size = [](const std::string& text, const char* flag) -> absl::StatusOr<uint64_t> {
    absl::StatusOr<uint64_t> bytes = ParseByteSize(text, flag);
    if (!bytes.ok()) return UsageError(bytes.status().message());
    return bytes;
  };
  absl::StatusOr<uint64_t> ram = size(absl::GetFlag(FLAGS_ram_bytes), "--ram-bytes");
  absl::StatusOr<uint64_t> region =
      size(absl::GetFlag(FLAGS_local_region_bytes), "--local-region-bytes");
  if (!region.ok()) return region.status();
  options.data_channel.local_region_bytes = *region;
  absl::StatusOr<uint64_t> regions =
      size(absl::GetFlag(FLAGS_local_regions_max_bytes), "--local-regions-max-bytes");
  if (!regions.ok()) return regions.status();
  options.data_channel.local_regions_max_bytes = *regions;
  absl::StatusOr<uint64_t> disk = size(absl::GetFlag(FLAGS_disk_bytes), "--disk-bytes");
  absl::StatusOr<uint64_t> max_block =
      size(absl::GetFlag(FLAGS_max_block_bytes), "--max-block-bytes");
  for (const absl::Status& s : {ram.status(), disk.status(), max_block.status()}) {
    if (!s.ok()) return s;
  }
  if (*ram == 0) return UsageError("--ram-bytes must be more than 0 (e.g. 512MiB)");
  if (absl::Status s = LimitsFromFlags(&options.limits); !s.ok()) return s;
  if (*max_block == 0) return UsageError("--max-block-bytes must be more than 0 (e.g. 16MiB)");
  const int shard_bits = absl::GetFlag(FLAGS_ram_shard_bits);
  if (shard_bits < -1 || shard_bits > kMaxRamShardBits) {
    return UsageError(absl::StrCat("--ram-shard-bits must be in [-1, ", kMaxRamShardBits,
                                   "], got ", shard_bits));
  }
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  if (grace < absl::ZeroDuration()) return UsageError("--shutdown-grace must not be negative");
  options.shutdown_grace = grace;
  const int64_t events_ring = absl::GetFlag(FLAGS_events_ring);
  if (events_ring < 0 || events_ring > (int64_t{1} << 26)) {
    return UsageError(absl::StrCat("--events-ring must be in [0, 67108864], got ", events_ring));
  }
  options.events_ring = static_cast<size_t>(events_ring);
  options.io_threads = absl::GetFlag(FLAGS_io_threads);
  if (options.io_threads < 1 || options.io_threads > 256) {
    return UsageError(absl::StrCat("--io-threads must be in [1, 256], got ", options.io_threads));
  }
  options.store.ram.capacity_bytes = *ram;
  options.store.ram.num_shard_bits = shard_bits;
  options.store.ram.eviction = absl::GetFlag(FLAGS_eviction);
  options.store.ram.arena = absl::GetFlag(FLAGS_ram_arena);
  options.store.ram.huge_pages = absl::GetFlag(FLAGS_ram_huge_pages);
  absl::StatusOr<uint64_t> queue =
      ParseByteSize(absl::GetFlag(FLAGS_demotion_queue_bytes), "--demotion-queue-bytes");
  if (!queue.ok()) return UsageError(queue.status().message());
  options.store.demotion_queue_bytes = *queue;
  const std::vector<std::string> policies = EvictionPolicyNames();
  if (std::find(policies.begin(), policies.end(), options.store.ram.eviction) == policies.end()) {
    return UsageError(absl::StrCat("--eviction: unknown eviction policy '",
                                   options.store.ram.eviction, "'; known: ",
                                   absl::StrJoin(policies, ", ")));
  }
  options.store.max_block_bytes = *max_block;
  absl::StatusOr<uint64_t> index =
      size(absl::GetFlag(FLAGS_disk_index_bytes), "--disk-index-bytes");
  if (!index.ok()) return index.status();
  absl::StatusOr<uint64_t> min_free =
      size(absl::GetFlag(FLAGS_disk_min_free_bytes), "--disk-min-free-bytes");
  if (!min_free.ok()) return min_free.status();
  absl::StatusOr<uint64_t> slack = size(absl::GetFlag(FLAGS_disk_dir_slack), "--disk-dir-slack");
  if (!slack.ok()) return slack.status();
  const std::string disk_path = absl::GetFlag(FLAGS_disk_path);
  if (!disk_path.empty() && *disk > 0) {
    DiskTierOptions d;
    d.path = disk_path;
    d.capacity_bytes = *disk;
    d.eviction = options.store.ram.eviction;
    d.index_capacity_bytes = *index;
    d.min_free_bytes = *min_free;
    d.directory_slack_bytes = *slack;
    options.store.disk = d;
  }
  return options;
}

}  // namespace
}  // namespace kvcache

int main(int argc, char** argv) {
  kvcache::TuneMallocForLargeBuffers();
  kvcache::TurnOffMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "kvcache-server: the KV-cache block service (kvcache.v1), docs/operations.md.\n"
      "usage: kvcache-server [--listen=HOST:PORT] [--ram-bytes=SIZE] [--disk-path=DIR] "
      "[--disk-bytes=SIZE]\n"
      "                      [--max-block-bytes=SIZE] [--eviction=NAME] "
      "[--ram-shard-bits=N] [--ram-arena=false] [--ram-huge-pages=false]\n"
      "                      [--data-listen=HOST:PORT|auto|off] [--data-advertise=HOST[:PORT]]\n"
      "                      [--local-listen=auto|off|PATH] [--local-region-bytes=SIZE]\n"
      "                      [--metrics-listen=HOST:PORT] [--shutdown-grace=DURATION]\n"
      "                      [limits: --max-keys-per-request, --max-blocks-per-put,\n"
      "                       --max-inflight-bytes, --max-call-duration,\n"
      "                       --grpc-max-message-bytes, --grpc-max-concurrent-streams,\n"
      "                       --grpc-max-connection-idle, --grpc-memory-bytes;\n"
      "                       docs/operations.md]\n"
      "                      [--events-ring=N]\n"
      "                      [--tls-cert=PEM --tls-key=PEM [--tls-client-ca=PEM]] "
      "[--allow-plaintext]\n"
      "                      [--auth-tokens=FILE | --allow-anonymous] "
      "[--admin-listen=HOST:PORT]\n"
      "Exit status: 0 after a clean shutdown, 2 for a usage error, 1 when the server cannot "
      "start.");
  // The TLS client flags come along with --tls-cert/--tls-key; a server has no use for
  // --tls-ca, --tls-server-name (its client CA is --tls-client-ca) or --token-file (its
  // callers are --auth-tokens): refuse them.
  kvcache::FlagScope flags;
  flags.exclude = "tls_ca,tls_server_name,token_file";
  std::vector<std::string> rest = kvcache::ParseFlags(argc, argv, flags);
  if (rest.size() > 1) {
    return kvcache::Fail(kvcache::UsageError("unexpected argument '" + rest[1] +
                                             "' (flags are --name=value)"));
  }
  absl::StatusOr<kvcache::ServerOptions> options = kvcache::OptionsFromFlags();
  if (!options.ok()) return kvcache::Fail(options.status());

  std::vector<std::string> warnings;
  if (absl::Status s = kvcache::CheckServerPolicies(*options, &warnings); !s.ok()) {
    return kvcache::Fail(s);
  }
  if (std::getenv("KVCACHE_INDEX_HASH_SEED") != nullptr) {
    warnings.push_back(
        "kvcache-server: warning: KVCACHE_INDEX_HASH_SEED is set: the index hash seed is "
        "known, so clients can aim hash collisions at it (tests and benchmarks only)");
  }
  for (const std::string& warning : warnings) std::cerr << warning << std::endl;

  kvcache::BlockTerminationSignals();  // Before gRPC starts its threads.
  absl::StatusOr<std::unique_ptr<kvcache::CacheServer>> server =
      kvcache::StartCacheServer(*options);
  if (!server.ok()) return kvcache::Fail(server.status());
  std::cout << (*server)->ConfigSummary() << std::endl;

  const int sig = kvcache::WaitForTerminationSignal([&] {
    const absl::Status s = (*server)->ReloadAccess();
    if (options->auth_tokens_file.empty()) {
      std::cout << "kvcache-server: SIGHUP: nothing to reload (no --auth-tokens)" << std::endl;
    } else if (s.ok()) {
      std::cout << "kvcache-server: SIGHUP: reloaded " << options->auth_tokens_file
                << std::endl;
    } else {
      std::cerr << "kvcache-server: SIGHUP: kept the callers in use: " << s.message()
                << std::endl;
    }
  });
  std::cout << "kvcache-server: signal " << sig << ", draining for "
            << absl::FormatDuration(options->shutdown_grace)
            << " (health NOT_SERVING, calls still served)" << std::endl;
  (*server)->Shutdown(options->shutdown_grace);
  server->reset();  // Closes the store.
  std::cout << "kvcache-server: stopped cleanly" << std::endl;
  return 0;
}
