#include "services/cache_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include <algorithm>
#include <exception>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/strings/numbers.h"
#include "cachestore/arena.h"
#include "common/byte_size.h"
#include "common/cli.h"
#include "common/io_executor.h"
#include "common/socket_io.h"
#include "common/tls.h"
#include "common/version.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#include "services/access.h"
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

// kvcache_io_tasks{state} and kvcache_io_threads, read at scrape time: the I/O threads'
// load. A disk that does not answer shows as running == threads and a queue that grows,
// while health stays SERVING.
class IoCollector final : public prometheus::Collectable {
 public:
  explicit IoCollector(const IoExecutor* io) : io_(io) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily tasks{
        "kvcache_io_tasks",
        "Store work on the I/O threads (--io-threads): waiting for a thread, or running.",
        prometheus::MetricType::Gauge,
        {}};
    for (const auto& [state, n] : {std::pair<const char*, size_t>{"queued", io_->queued()},
                                   std::pair<const char*, size_t>{"running", io_->running()}}) {
      prometheus::ClientMetric m;
      m.label.push_back(prometheus::ClientMetric::Label{"state", state});
      m.gauge.value = static_cast<double>(n);
      tasks.metric.push_back(std::move(m));
    }
    prometheus::MetricFamily threads{"kvcache_io_threads", "The I/O threads (--io-threads).",
                                     prometheus::MetricType::Gauge, {}};
    prometheus::ClientMetric m;
    m.gauge.value = io_->threads();
    threads.metric.push_back(std::move(m));
    return {std::move(tasks), std::move(threads)};
  }

 private:
  const IoExecutor* const io_;
};

class CacheServerImpl final : public CacheServer {
 public:
  CacheServerImpl(const ServerOptions& options, std::unique_ptr<EventLog> events,
                  std::unique_ptr<TenantUsage> usage, std::unique_ptr<TieredStore> store,
                  std::unique_ptr<AccessControl> access)
      : options_(options),
        events_(std::move(events)),
        usage_(std::move(usage)),
        store_(std::move(store)),
        metrics_(store_.get(), usage_.get()),
        access_(std::move(access)),
        limiter_(options.limits, *metrics_.registry()),
        io_(std::make_unique<IoExecutor>(std::clamp(options.io_threads, 1, 256),
                                         "kvcache-io")),
        io_collector_(std::make_shared<IoCollector>(io_.get())) {
    if (usage_) usage_->Start(store_.get(), access_.get());
  }

  ~CacheServerImpl() override {
    Shutdown(absl::ZeroDuration());
    exposer_.reset();
    admin_server_.reset();
    server_.reset();
    io_.reset();  // Every call is done: the tasks left have reached their Finish.
    data_.reset();
    if (usage_) usage_->Stop();  // Its trimmer calls the store.
    store_.reset();  // Closes RocksDB after the last call is gone.
  }

  absl::Status Start() {
    // A used or foreign address gets a plain reason before gRPC logs its own lines.
    if (absl::Status s = CheckCanListen(options_.listen); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--listen: ", s.message()));
    }
    if (absl::Status s = CheckCanListen(options_.admin_listen); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--admin-listen: ", s.message()));
    }
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(options_.tls);
    if (!credentials.ok()) return credentials.status();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();

    if (!options_.data_listen.empty()) {
      absl::StatusOr<std::unique_ptr<DataChannelServer>> data =
          StartDataChannelServer(options_.data_listen, store_.get(), &metrics_, access_.get(),
                                 &tenants_, options_.data_advertise, options_.data_channel,
                                 usage_.get());
      if (!data.ok()) {
        return absl::Status(data.status().code(),
                            absl::StrCat("--data-listen: ", data.status().message()));
      }
      data_ = *std::move(data);
    }
    const ServiceDeps deps{store_.get(), &metrics_, access_.get(), &tenants_,
                           data_.get(),  &limiter_, events_.get(),  usage_.get(),
                           io_.get()};
    cache_service_ = NewCacheService(deps);
    admin_service_ = NewAdminService(deps, [this] { return Config(); });

    const CallLimits& limits = options_.limits;
    const int max_message = static_cast<int>(std::min<uint64_t>(
        limits.max_message_bytes != 0 ? limits.max_message_bytes
                                      : options_.store.max_block_bytes + kMessageOverheadBytes,
        std::numeric_limits<int>::max()));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options_.listen, *credentials, &port);
    // gRPC sets SO_REUSEPORT by default, so a second server on a used port would start and
    // take half the connections; a used port must be an error instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(max_message);
    builder.SetMaxSendMessageSize(max_message);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams);
    if (limits.max_connection_idle > absl::ZeroDuration()) {
      builder.AddChannelArgument(
          GRPC_ARG_MAX_CONNECTION_IDLE_MS,
          static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(limits.max_connection_idle),
                                             std::numeric_limits<int>::max())));
    }
    if (limits.grpc_memory_bytes != 0) {
      grpc::ResourceQuota quota("kvcache-server");
      quota.Resize(limits.grpc_memory_bytes);
      builder.SetResourceQuota(quota);
    }
    builder.RegisterService(cache_service_.get());
    // On loopback the admin service is no more exposed here than on its own listener.
    if (IsLoopbackAddress(options_.listen)) builder.RegisterService(admin_service_.get());

    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on '", options_.listen,
          "' (--listen): the address is in use or not valid for this machine"));
    }

    grpc::ServerBuilder admin_builder;
    int admin_port = 0;
    admin_builder.AddListeningPort(options_.admin_listen, *credentials, &admin_port);
    admin_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    admin_builder.RegisterService(admin_service_.get());
    admin_server_ = admin_builder.BuildAndStart();
    if (admin_server_ == nullptr || admin_port == 0) {
      server_->Shutdown();
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on '", options_.admin_listen,
          "' (--admin-listen): the address is in use or not valid for this machine"));
    }
    {
      absl::MutexLock lock(&address_mu_);
      address_ = absl::StrCat(HostOf(options_.listen), ":", port);
      admin_address_ = absl::StrCat(HostOf(options_.admin_listen), ":", admin_port);
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
      exposer_->RegisterCollectable(io_collector_);
      std::vector<int> ports = exposer_->GetListeningPorts();
      absl::MutexLock lock(&address_mu_);
      metrics_address_ = absl::StrCat(HostOf(options_.metrics_listen), ":",
                                      ports.empty() ? 0 : ports.front());
    }
    server_->GetHealthCheckService()->SetServingStatus(true);
    admin_server_->GetHealthCheckService()->SetServingStatus(true);
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
  std::string admin_address() const override {
    absl::MutexLock lock(&address_mu_);
    return admin_address_;
  }

  absl::Status ReloadAccess() override {
    absl::Status s = access_->Reload();
    if (s.ok() && usage_) usage_->Refresh();  // New quotas apply at once.
    return s;
  }

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
    config.set_admin_listen(admin_address());
    config.set_auth(access_->enabled() ? access_->path() : "off");
    config.set_io_threads(static_cast<uint32_t>(io_->threads()));
    config.set_ram_arena(options_.store.ram.arena);
    config.set_ram_huge_pages(store_->arena() != nullptr && store_->arena()->Stats().huge_pages);
    config.set_demotion_queue_bytes(options_.store.disk ? options_.store.demotion_queue_bytes : 0);
    return config;
  }

  std::string ConfigSummary() const override {
    const TieredStoreOptions& s = options_.store;
    const std::string metrics = metrics_address();
    return absl::StrCat(
        "kvcache-server ", kKvcacheVersion, " listening on ", address(), " | ram ",
        FormatBytes(s.ram.capacity_bytes),
        store_->arena() == nullptr
            ? ""
            : (store_->arena()->Stats().huge_pages ? " (arena, huge pages)" : " (arena)"),
        " | disk ",
        s.disk ? absl::StrCat(FormatBytes(s.disk->capacity_bytes), " at ", s.disk->path)
               : std::string("off"),
        " | max block ", FormatBytes(s.max_block_bytes), " | eviction ", s.ram.eviction,
        " | io threads ", io_->threads(),
        " | tls ",
        options_.tls.enabled() ? (options_.tls.client_ca_file.empty() ? "on" : "on, mutual")
                               : "off",
        " | auth ",
        access_->enabled() ? absl::StrCat(access_->Tenants().size(), " tenants from ",
                                          access_->path())
                           : std::string("off (anonymous)"),
        " | admin ", admin_address(), " | data channel ", data_ ? data_->address() : "off",
        data_ && data_->advertised_address() != data_->address()
            ? absl::StrCat(" (advertised as ", data_->advertised_address(), ")")
            : "",
        data_ && !data_->local_address().empty()
            ? absl::StrCat(" + same-host ", data_->local_address())
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
    admin_server_->GetHealthCheckService()->SetServingStatus(false);
    absl::SleepFor(grace);
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
    admin_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    server_->Wait();
    admin_server_->Wait();
    if (data_) data_->Shutdown();
  }

  TieredStore* store() override { return store_.get(); }

 private:
  const ServerOptions options_;
  std::unique_ptr<EventLog> events_;  // The store's listener: outlives it. Null when off.
  // Listens to the store before events_ (outlives the store too). Null when auth is off.
  std::unique_ptr<TenantUsage> usage_;
  std::unique_ptr<TieredStore> store_;
  ServerMetrics metrics_;
  const std::unique_ptr<AccessControl> access_;
  TenantBook tenants_;
  CallLimiter limiter_;  // Outlives the services (declared before them).
  std::unique_ptr<IoExecutor> io_;  // The services' I/O threads; reset once they are done.
  std::shared_ptr<IoCollector> io_collector_;  // Scraped by exposer_, reset before io_.
  std::unique_ptr<DataChannelServer> data_;
  std::unique_ptr<grpc::Service> cache_service_;
  std::unique_ptr<grpc::Service> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> admin_server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  mutable absl::Mutex address_mu_;  // The addresses are known only once listening.
  std::string address_ ABSL_GUARDED_BY(address_mu_);
  std::string metrics_address_ ABSL_GUARDED_BY(address_mu_);
  std::string admin_address_ ABSL_GUARDED_BY(address_mu_);
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace

std::string AdminListenOf(const ServerOptions& options) {
  if (!options.admin_listen.empty()) return options.admin_listen;
  std::string host, port;
  int number = 0;
  if (SplitHostPort(options.listen, &host, &port) && absl::SimpleAtoi(port, &number) &&
      number > 0 && number + 2 <= 65535) {
    return absl::StrCat("127.0.0.1:", number + 2);
  }
  return "127.0.0.1:0";
}

absl::Status CheckServerPolicies(const ServerOptions& options,
                                 std::vector<std::string>* warnings) {
  warnings->clear();
  std::string warning;
  if (absl::Status s = CheckPlaintextPolicy("kvcache-server", options.listen,
                                            options.tls.enabled(), options.allow_plaintext,
                                            &warning);
      !s.ok()) {
    return s;
  }
  if (!warning.empty()) warnings->push_back(warning);
  const std::string admin = AdminListenOf(options);
  if (!IsLoopbackAddress(admin)) {
    if (absl::Status s = CheckPlaintextPolicy("kvcache-server --admin-listen", admin,
                                              options.tls.enabled(), options.allow_plaintext,
                                              &warning);
        !s.ok()) {
      return UsageError(absl::StrCat("--admin-listen: ", s.message()));
    }
    if (!warning.empty()) warnings->push_back(warning);
  }
  if (!options.auth_tokens_file.empty()) return absl::OkStatus();
  for (const std::string& address : {admin, options.listen}) {
    if (absl::Status s = CheckAnonymousPolicy("kvcache-server", address,
                                              "read, overwrite and flush every block",
                                              options.allow_anonymous, &warning);
        !s.ok()) {
      return s;
    }
  }
  warnings->push_back(warning);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CacheServer>> StartCacheServer(const ServerOptions& given) {
  ServerOptions options = given;
  if (options.listen.empty()) {
    return absl::InvalidArgumentError("--listen is empty; give host:port, e.g. 127.0.0.1:50051");
  }
  options.admin_listen = AdminListenOf(options);
  std::vector<std::string> warnings;  // server_main prints them; embedders get the decision.
  if (absl::Status s = CheckServerPolicies(options, &warnings); !s.ok()) return s;
  std::unique_ptr<AccessControl> access = std::make_unique<AccessControl>();
  if (!options.auth_tokens_file.empty()) {
    absl::StatusOr<std::unique_ptr<AccessControl>> loaded =
        AccessControl::Load(options.auth_tokens_file);
    if (!loaded.ok()) return loaded.status();
    access = *std::move(loaded);
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
  std::unique_ptr<TenantUsage> usage;
  if (access->enabled()) {
    usage = std::make_unique<TenantUsage>(events.get());
    store_options.listener = usage.get();
  }
  absl::StatusOr<std::unique_ptr<TieredStore>> store = NewTieredStore(store_options);
  if (!store.ok()) return store.status();
  auto server = std::make_unique<CacheServerImpl>(options, std::move(events), std::move(usage),
                                                  *std::move(store), std::move(access));
  if (absl::Status s = server->Start(); !s.ok()) return s;
  return std::unique_ptr<CacheServer>(std::move(server));
}

}  // namespace kvcache
