// kvcache-server: parses flags, starts the server, waits for SIGTERM/SIGINT, drains.

#include <cstdio>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/byte_size.h"
#include "common/cli.h"
#include "common/malloc_tuning.h"
#include "services/cache_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "gRPC address, host:port (port 0: any free)");
ABSL_FLAG(std::string, ram_bytes, "512MiB", "RAM tier capacity (e.g. 4MiB, 2GiB)");
ABSL_FLAG(std::string, disk_path, "./kvcache-data",
          "RocksDB directory of the disk tier; empty runs RAM only");
ABSL_FLAG(std::string, disk_bytes, "8GiB", "disk tier capacity");
ABSL_FLAG(std::string, max_block_bytes, "16MiB", "largest block payload accepted");
ABSL_FLAG(std::string, eviction, "lru",
          "eviction policy of both tiers: lru or prefix-lfu (docs/eviction.md)");
ABSL_FLAG(int, ram_shard_bits, -1, "log2 of RAM tier shards; -1 picks (64 MiB+ per shard)");
ABSL_FLAG(std::string, data_listen, "auto",
          "bulk data channel TCP address, host:port; auto: --listen's host, any free port; "
          "off: none (clients use gRPC Get/Put)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics address, host:port; empty for none");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "how long in-flight calls may run on after SIGTERM");

namespace {

int Fail(const absl::Status& status) {
  std::cerr << "kvcache-server: " << status.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  kvcache::TuneMallocForLargeBuffers();
  absl::SetProgramUsageMessage(
      "kvcache-server: the KV-cache block service (kvcache.v1).\n"
      "  kvcache-server [--listen=127.0.0.1:50051] [--ram-bytes=512MiB] "
      "[--disk-path=./kvcache-data] [--disk-bytes=8GiB] ...");
  std::vector<std::string> rest = kvcache::ParseFlags(argc, argv);
  if (rest.size() > 1) {
    return Fail(absl::InvalidArgumentError("unexpected argument '" + rest[1] +
                                           "' (flags are --name=value)"));
  }
  kvcache::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  const std::string data_listen = absl::GetFlag(FLAGS_data_listen);
  if (data_listen == "auto") {
    options.data_listen = options.listen.substr(0, options.listen.rfind(':')) + ":0";
  } else if (data_listen != "off" && !data_listen.empty()) {
    options.data_listen = data_listen;
  }
  auto size = [](const std::string& text, const char* flag) {
    return kvcache::ParseByteSize(text, flag);
  };
  absl::StatusOr<uint64_t> ram = size(absl::GetFlag(FLAGS_ram_bytes), "--ram-bytes");
  absl::StatusOr<uint64_t> disk = size(absl::GetFlag(FLAGS_disk_bytes), "--disk-bytes");
  absl::StatusOr<uint64_t> max_block =
      size(absl::GetFlag(FLAGS_max_block_bytes), "--max-block-bytes");
  for (const absl::Status& s : {ram.status(), disk.status(), max_block.status()}) {
    if (!s.ok()) return Fail(s);
  }
  options.store.ram.capacity_bytes = *ram;
  options.store.ram.num_shard_bits = absl::GetFlag(FLAGS_ram_shard_bits);
  options.store.ram.eviction = absl::GetFlag(FLAGS_eviction);
  options.store.max_block_bytes = *max_block;
  const std::string disk_path = absl::GetFlag(FLAGS_disk_path);
  if (!disk_path.empty() && *disk > 0) {
    kvcache::DiskTierOptions d;
    d.path = disk_path;
    d.capacity_bytes = *disk;
    d.eviction = options.store.ram.eviction;
    options.store.disk = d;
  }

  kvcache::BlockShutdownSignals();  // Before gRPC starts its threads.
  absl::StatusOr<std::unique_ptr<kvcache::CacheServer>> server =
      kvcache::StartCacheServer(options);
  if (!server.ok()) return Fail(server.status());
  std::cout << (*server)->ConfigSummary() << std::endl;

  const int sig = kvcache::WaitForShutdownSignal();
  std::cout << "kvcache-server: signal " << sig << ", draining in-flight calls" << std::endl;
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  server->reset();  // Closes the store.
  std::cout << "kvcache-server: stopped cleanly" << std::endl;
  return 0;
}
