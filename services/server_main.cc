// kvcache-server: parses and checks flags, starts the server, waits for SIGTERM/SIGINT,
// drains. The work is in services/cache_server.h.

#include <algorithm>
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
#include "common/malloc_tuning.h"
#include "common/signals.h"
#include "common/tls_flags.h"
#include "services/cache_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address, host:port; port 0 picks a free one (printed at start); a port in use "
          "is an error");
ABSL_FLAG(std::string, ram_bytes, "512MiB",
          "RAM tier capacity, never exceeded (e.g. 4MiB, 2GiB; payload + 640 B per block)");
ABSL_FLAG(std::string, disk_path, "./kvcache-data",
          "RocksDB directory of the disk tier; empty runs RAM only");
ABSL_FLAG(std::string, disk_bytes, "8GiB", "disk tier capacity; 0 runs RAM only");
ABSL_FLAG(std::string, max_block_bytes, "16MiB",
          "largest block payload accepted; larger puts get RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, eviction, "lru",
          "eviction policy of both tiers: lru or prefix-lfu (docs/eviction.md)");
ABSL_FLAG(bool, ram_arena, false,
          "receive payloads into a RAM-tier arena faulted in from the start (resident size = "
          "--ram-bytes from the start; Puts into an empty tier as fast as into a full one)");
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
ABSL_FLAG(int, data_max_connections, 256,
          "most data channel connections served at once; more are closed at accept");
ABSL_FLAG(int, data_max_connections_per_peer, 32,
          "most data channel connections at once from one client IP address; more are closed "
          "at accept");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics address, host:port; empty for none");
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
  absl::StatusOr<uint64_t> disk = size(absl::GetFlag(FLAGS_disk_bytes), "--disk-bytes");
  absl::StatusOr<uint64_t> max_block =
      size(absl::GetFlag(FLAGS_max_block_bytes), "--max-block-bytes");
  for (const absl::Status& s : {ram.status(), disk.status(), max_block.status()}) {
    if (!s.ok()) return s;
  }
  if (*ram == 0) return UsageError("--ram-bytes must be more than 0 (e.g. 512MiB)");
  if (*max_block == 0) return UsageError("--max-block-bytes must be more than 0 (e.g. 16MiB)");
  const int shard_bits = absl::GetFlag(FLAGS_ram_shard_bits);
  if (shard_bits < -1 || shard_bits > kMaxRamShardBits) {
    return UsageError(absl::StrCat("--ram-shard-bits must be in [-1, ", kMaxRamShardBits,
                                   "], got ", shard_bits));
  }
  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  if (grace < absl::ZeroDuration()) return UsageError("--shutdown-grace must not be negative");
  options.shutdown_grace = grace;
  options.store.ram.capacity_bytes = *ram;
  options.store.ram.num_shard_bits = shard_bits;
  options.store.ram.eviction = absl::GetFlag(FLAGS_eviction);
  options.store.ram.arena = absl::GetFlag(FLAGS_ram_arena);
  const std::vector<std::string> policies = EvictionPolicyNames();
  if (std::find(policies.begin(), policies.end(), options.store.ram.eviction) == policies.end()) {
    return UsageError(absl::StrCat("--eviction: unknown eviction policy '",
                                   options.store.ram.eviction, "'; known: ",
                                   absl::StrJoin(policies, ", ")));
  }
  options.store.max_block_bytes = *max_block;
  const std::string disk_path = absl::GetFlag(FLAGS_disk_path);
  if (!disk_path.empty() && *disk > 0) {
    DiskTierOptions d;
    d.path = disk_path;
    d.capacity_bytes = *disk;
    d.eviction = options.store.ram.eviction;
    options.store.disk = d;
  }
  return options;
}

}  // namespace
}  // namespace kvcache

int main(int argc, char** argv) {
  kvcache::TuneMallocForLargeBuffers();
  absl::SetProgramUsageMessage(
      "kvcache-server: the KV-cache block service (kvcache.v1), docs/operations.md.\n"
      "usage: kvcache-server [--listen=HOST:PORT] [--ram-bytes=SIZE] [--disk-path=DIR] "
      "[--disk-bytes=SIZE]\n"
      "                      [--max-block-bytes=SIZE] [--eviction=lru|prefix-lfu] "
      "[--ram-shard-bits=N] [--ram-arena]\n"
      "                      [--data-listen=HOST:PORT|auto|off] [--data-advertise=HOST[:PORT]]\n"
      "                      [--metrics-listen=HOST:PORT] [--shutdown-grace=DURATION]\n"
      "                      [--tls-cert=PEM --tls-key=PEM [--tls-client-ca=PEM]] "
      "[--allow-plaintext]\n"
      "Exit status: 0 after a clean shutdown, 2 for a usage error, 1 when the server cannot "
      "start.");
  std::vector<std::string> rest = kvcache::ParseFlags(argc, argv);
  if (rest.size() > 1) {
    return kvcache::Fail(kvcache::UsageError("unexpected argument '" + rest[1] +
                                             "' (flags are --name=value)"));
  }
  absl::StatusOr<kvcache::ServerOptions> options = kvcache::OptionsFromFlags();
  if (!options.ok()) return kvcache::Fail(options.status());

  std::string warning;
  if (absl::Status s = kvcache::CheckPlaintextPolicy("kvcache-server", options->listen,
                                                     options->tls.enabled(),
                                                     options->allow_plaintext, &warning);
      !s.ok()) {
    return kvcache::Fail(s);
  }
  if (!warning.empty()) std::cerr << warning << std::endl;

  kvcache::BlockTerminationSignals();  // Before gRPC starts its threads.
  absl::StatusOr<std::unique_ptr<kvcache::CacheServer>> server =
      kvcache::StartCacheServer(*options);
  if (!server.ok()) return kvcache::Fail(server.status());
  std::cout << (*server)->ConfigSummary() << std::endl;

  const int sig = kvcache::WaitForTerminationSignal();
  std::cout << "kvcache-server: signal " << sig << ", draining for "
            << absl::FormatDuration(options->shutdown_grace)
            << " (health NOT_SERVING, calls still served)" << std::endl;
  (*server)->Shutdown(options->shutdown_grace);
  server->reset();  // Closes the store.
  std::cout << "kvcache-server: stopped cleanly" << std::endl;
  return 0;
}
