#include "services/cache_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/byte_size.h"
#include "common/socket_io.h"
#include "common/tls.h"
#include "common/version.h"
#include "prometheus/exposer.h"
#include "services/data_channel_server.h"
#include "services/events.h"
#include "services/metrics.h"
#include "services/services.h"

namespace kvcache {
namespace {

// Room for framing and metadata on top of the largest payload, and for a Lookup or Get
// naming the most keys allowed (65536 x 34 bytes).
constexpr int kMessageOverheadBytes = 4 << 20;

std::string HostOf(absl::string_view address) {
  const size_t colon = address.rfind(':');
  return std::string(colon == absl::string_view::npos ? address : address.substr(0, colon));
}

class CacheServerImpl final : public CacheServer {
 public:
  CacheServerImpl(const ServerOptions& options, std::unique_ptr<EventLog> events,
                  std::unique_ptr<TieredStore> store)
      : options_(options),
        events_(std::move(events)),
        store_(std::move(store)),
        metrics_(store_.get()) {}

  ~CacheServerImpl() override {
    Shutdown(absl::ZeroDuration());
    exposer_.reset();
    server_.reset();
    data_.reset();
    store_.reset();  // Closes RocksDB after the last call is gone.
  }

  absl::Status Start() {
    // A used or foreign address gets a plain reason before gRPC logs its own lines.
    if (absl::Status s = CheckCanListen(options_.listen); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--listen: ", s.message()));
    }
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(options_.tls);
    if (!credentials.ok()) return credentials.status();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();

    if (!options_.data_listen.empty()) {
      absl::StatusOr<std::unique_ptr<DataChannelServer>> data =
          StartDataChannelServer(options_.data_listen, store_.get(), &metrics_,
                                 options_.data_advertise, options_.data_channel);
      if (!data.ok()) {
        return absl::Status(data.status().code(),
                            absl::StrCat("--data-listen: ", data.status().message()));
      }
      data_ = *std::move(data);
    }
    cache_service_ = NewCacheService(store_.get(), &metrics_, data_.get(), events_.get());

    const int max_message =
        static_cast<int>(std::min<uint64_t>(options_.store.max_block_bytes + kMessageOverheadBytes,
                                            std::numeric_limits<int>::max()));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options_.listen, *credentials, &port);
    // gRPC sets SO_REUSEPORT by default, so a second server on a used port would start and
    // take half the connections; a used port must be an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(max_message);
    builder.SetMaxSendMessageSize(max_message);
    builder.RegisterService(cache_service_.get());

    admin_service_ = NewAdminService(store_.get(), &metrics_, [this] { return Config(); });
    builder.RegisterService(admin_service_.get());

    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on '", options_.listen,
          "' (--listen): the address is in use or not valid for this machine"));
    }
    {
      absl::MutexLock lock(&address_mu_);
      address_ = absl::StrCat(HostOf(options_.listen), ":", port);
    }

    if (!options_.metrics_listen.empty()) {
      try {
        exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
      } catch (const std::exception& e) {
        server_->Shutdown();
        return absl::UnavailableError(absl::StrCat("cannot serve metrics on '",
                                                   options_.metrics_listen,
                                                   "' (--metrics-listen): ", e.what()));
      }
      exposer_->RegisterCollectable(metrics_.registry());
      exposer_->RegisterCollectable(metrics_.store_collector());
      std::vector<int> ports = exposer_->GetListeningPorts();
      absl::MutexLock lock(&address_mu_);
      metrics_address_ = absl::StrCat(HostOf(options_.metrics_listen), ":",
                                      ports.empty() ? 0 : ports.front());
    }
    server_->GetHealthCheckService()->SetServingStatus(true);
    return absl::OkStatus();
  }

  std::string address() const override {
    absl::MutexLock lock(&address_mu_);
    return address_;
  }
  std::string metrics_address() const override {
    absl::MutexLock lock(&address_mu_);
    return metrics_address_;
  }
  std::string data_address() const override { return data_ ? data_->address() : ""; }

  // The effective configuration, for AdminService.GetConfig.
  v1::GetConfigResponse Config() const {
    v1::GetConfigResponse config;
    config.set_listen(address());
    config.set_metrics_listen(metrics_address());
    config.set_ram_bytes(options_.store.ram.capacity_bytes);
    config.set_disk_path(options_.store.disk ? options_.store.disk->path : "");
    config.set_disk_bytes(options_.store.disk ? options_.store.disk->capacity_bytes : 0);
    config.set_max_block_bytes(options_.store.max_block_bytes);
    config.set_eviction(options_.store.ram.eviction);
    config.set_version(kKvcacheVersion);
    config.set_data_listen(data_address());
    config.set_data_advertise(data_ ? data_->advertised_address() : "");
    config.set_ram_shards(static_cast<uint32_t>(RamTierShards(options_.store.ram)));
    config.set_shutdown_grace_ms(absl::ToInt64Milliseconds(options_.shutdown_grace));
    return config;
  }

  std::string ConfigSummary() const override {
    const TieredStoreOptions& s = options_.store;
    const std::string metrics = metrics_address();
    return absl::StrCat(
        "kvcache-server ", kKvcacheVersion, " listening on ", address(), " | ram ",
        FormatBytes(s.ram.capacity_bytes), " | disk ",
        s.disk ? absl::StrCat(FormatBytes(s.disk->capacity_bytes), " at ", s.disk->path)
               : std::string("off"),
        " | max block ", FormatBytes(s.max_block_bytes), " | eviction ", s.ram.eviction,
        " | tls ",
        options_.tls.enabled() ? (options_.tls.client_ca_file.empty() ? "on" : "on, mutual")
                               : "off",
        " | data channel ", data_ ? data_->address() : "off",
        data_ && data_->advertised_address() != data_->address()
            ? absl::StrCat(" (advertised as ", data_->advertised_address(), ")")
            : "",
        " | metrics ",
        metrics.empty() ? "off" : "http://" + metrics + "/metrics");
  }

  void Shutdown(absl::Duration grace) override {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_ || server_ == nullptr) return;
    shut_down_ = true;
    // Drain: health says NOT_SERVING while everything still answers, for the whole grace
    // period (a closed port would read as a crash to a load balancer, not as a drain).
    server_->GetHealthCheckService()->SetServingStatus(false);
    absl::SleepFor(grace);
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
    if (data_) data_->Shutdown();
  }

  TieredStore* store() override { return store_.get(); }

 private:
  const ServerOptions options_;
  std::unique_ptr<EventLog> events_;  // The store's listener: outlives it. Null when off.
  std::unique_ptr<TieredStore> store_;
  ServerMetrics metrics_;
  std::unique_ptr<DataChannelServer> data_;
  std::unique_ptr<grpc::Service> cache_service_;
  std::unique_ptr<grpc::Service> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  mutable absl::Mutex address_mu_;  // The addresses are known only once listening.
  std::string address_ ABSL_GUARDED_BY(address_mu_);
  std::string metrics_address_ ABSL_GUARDED_BY(address_mu_);
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CacheServer>> StartCacheServer(const ServerOptions& options) {
  if (options.listen.empty()) {
    return absl::InvalidArgumentError("--listen is empty; give host:port, e.g. 127.0.0.1:50051");
  }
  std::string warning;  // server_main prints it; embedders get the same decision.
  if (absl::Status s = CheckPlaintextPolicy("kvcache-server", options.listen,
                                            options.tls.enabled(), options.allow_plaintext,
                                            &warning);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckTlsServerOptions(options.tls); !s.ok()) return s;
  if (options.tls.enabled() && !options.data_listen.empty()) {
    return absl::InvalidArgumentError(
        "--data-listen: the data channel is plain TCP and is not offered with TLS; use "
        "--data-listen=off (clients then use gRPC Get and Put)");
  }
  std::unique_ptr<EventLog> events;
  TieredStoreOptions store_options = options.store;
  if (options.events_ring > 0) {
    events = std::make_unique<EventLog>(options.events_ring);
    store_options.listener = events.get();
  }
  absl::StatusOr<std::unique_ptr<TieredStore>> store = NewTieredStore(store_options);
  if (!store.ok()) return store.status();
  auto server =
      std::make_unique<CacheServerImpl>(options, std::move(events), *std::move(store));
  if (absl::Status s = server->Start(); !s.ok()) return s;
  return std::unique_ptr<CacheServer>(std::move(server));
}

}  // namespace kvcache
