#include "services/call_limits.h"

#include "absl/strings/str_cat.h"
#include "common/byte_size.h"

namespace kvcache {
namespace {

enum Limit { kKeys, kBlocks, kInflight, kDuration };

}  // namespace

CallLimiter::CallLimiter(const CallLimits& limits, prometheus::Registry& registry)
    : limits_(limits) {
  auto& gauges = prometheus::BuildGauge()
                     .Name("kvcache_inflight_bytes")
                     .Help("Bytes held by Put messages being stored and Get blocks being sent "
                           "(pinned, evicted or not), against --max-inflight-bytes.")
                     .Register(registry);
  inflight_gauge_[static_cast<int>(Op::kGet)] = &gauges.Add({{"rpc", "Get"}});
  inflight_gauge_[static_cast<int>(Op::kPut)] = &gauges.Add({{"rpc", "Put"}});
  auto& refusals = prometheus::BuildCounter()
                       .Name("kvcache_limit_refusals_total")
                       .Help("Calls refused or ended by a limit: keys per request, blocks per "
                             "Put stream, in-flight bytes, call duration.")
                       .Register(registry);
  const char* names[] = {"keys", "blocks", "inflight_bytes", "duration"};
  for (int i = 0; i < 4; ++i) refusals_[i] = &refusals.Add({{"limit", names[i]}});
  if (limits_.max_call_duration > absl::ZeroDuration()) {
    watchdog_ = std::thread([this] { WatchdogLoop(); });
  }
}

CallLimiter::~CallLimiter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (watchdog_.joinable()) watchdog_.join();
}

void CallLimiter::Refused(int limit) { refusals_[limit]->Increment(); }

absl::Status CallLimiter::CheckKeys(int keys) {
  if (keys <= limits_.max_keys_per_request) return absl::OkStatus();
  Refused(kKeys);
  return absl::ResourceExhaustedError(
      absl::StrCat(keys, " keys in one request; this server takes at most ",
                   limits_.max_keys_per_request,
                   " (--max-keys-per-request): split the request"));
}

absl::Status CallLimiter::CheckBlocks(int64_t blocks) {
  if (blocks <= limits_.max_blocks_per_put) return absl::OkStatus();
  Refused(kBlocks);
  return absl::ResourceExhaustedError(absl::StrCat(
      "more than ", limits_.max_blocks_per_put,
      " blocks in one Put stream (--max-blocks-per-put); the blocks before are stored: put "
      "the rest in a new stream"));
}

absl::Status CallLimiter::CheckDuration(absl::Time start) {
  if (limits_.max_call_duration <= absl::ZeroDuration() ||
      absl::Now() - start <= limits_.max_call_duration) {
    return absl::OkStatus();
  }
  Refused(kDuration);
  return absl::DeadlineExceededError(
      absl::StrCat("the call ran longer than ", absl::FormatDuration(limits_.max_call_duration),
                   " (--max-call-duration): use a new call for the rest"));
}

absl::Status CallLimiter::Reserve(Op op, uint64_t bytes) {
  const uint64_t cap = limits_.max_inflight_bytes;
  uint64_t now = inflight_total_.load(std::memory_order_relaxed);
  do {
    // One message is always let through when nothing else is in flight, so a block that
    // fits max_block_bytes cannot be refused forever by a small budget.
    if (cap != 0 && now != 0 && now + bytes > cap) {
      Refused(kInflight);
      return absl::ResourceExhaustedError(absl::StrCat(
          "the server holds ", FormatBytes(now), " of Put and Get data in flight; ",
          FormatBytes(bytes), " more would pass --max-inflight-bytes (", FormatBytes(cap),
          "): retry shortly"));
    }
  } while (!inflight_total_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
  const int i = static_cast<int>(op);
  inflight_gauge_[i]->Set(static_cast<double>(
      inflight_[i].fetch_add(bytes, std::memory_order_relaxed) + bytes));
  return absl::OkStatus();
}

void CallLimiter::Release(Op op, uint64_t bytes) {
  inflight_total_.fetch_sub(bytes, std::memory_order_relaxed);
  const int i = static_cast<int>(op);
  inflight_gauge_[i]->Set(static_cast<double>(
      inflight_[i].fetch_sub(bytes, std::memory_order_relaxed) - bytes));
}

uint64_t CallLimiter::inflight_bytes(Op op) const {
  return inflight_[static_cast<int>(op)].load(std::memory_order_relaxed);
}

void CallLimiter::Watch(grpc::CallbackServerContext* ctx) {
  if (limits_.max_call_duration <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  watched_[ctx] = absl::Now() + limits_.max_call_duration;
}

void CallLimiter::Unwatch(grpc::CallbackServerContext* ctx) {
  absl::MutexLock lock(&mu_);
  watched_.erase(ctx);
  // The watchdog cancels outside mu_: the context must outlive that call (unless the
  // cancellation itself brought us here, on the watchdog's own thread).
  if (std::this_thread::get_id() == watchdog_.get_id()) return;
  while (cancelling_ == ctx) cancelled_.Wait(&mu_);
}

void CallLimiter::WatchdogLoop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(250));
    const absl::Time now = absl::Now();
    std::vector<grpc::CallbackServerContext*> expired;
    for (const auto& [ctx, deadline] : watched_) {
      if (deadline <= now) expired.push_back(ctx);
    }
    for (grpc::CallbackServerContext* ctx : expired) {
      if (watched_.erase(ctx) == 0) continue;  // Done meanwhile.
      cancelling_ = ctx;
      mu_.Unlock();
      ctx->TryCancel();
      Refused(kDuration);
      mu_.Lock();
      cancelling_ = nullptr;
      cancelled_.SignalAll();
    }
  }
}

}  // namespace kvcache
