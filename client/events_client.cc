#include "client/events_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/tls.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "proto/grpc_status.h"

namespace kvcache {

absl::Status SubscribeEvents(
    const std::string& address, const TlsClientOptions& tls,
    const v1::SubscribeEventsRequest& request,
    const std::function<bool(const v1::SubscribeEventsResponse&)>& on_message,
    absl::Duration connect_timeout) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  AddTlsChannelArgs(tls, &args);
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(address, *std::move(credentials), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + connect_timeout))) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", address, " within ",
                     absl::FormatDuration(connect_timeout)));
  }
  std::unique_ptr<v1::CacheService::Stub> stub = v1::CacheService::NewStub(channel);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::SubscribeEventsResponse>> reader =
      stub->SubscribeEvents(&context, request);
  v1::SubscribeEventsResponse message;
  bool stopped = false;
  while (reader->Read(&message)) {
    if (!on_message(message)) {
      stopped = true;
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (stopped) return absl::OkStatus();
  absl::Status s = FromGrpcStatus(status);
  if (s.ok()) return absl::UnavailableError(absl::StrCat(address, " ended the event stream"));
  return absl::Status(s.code(), absl::StrCat(address, ": ", s.message()));
}

std::string BlockSet::EntryKey(absl::string_view ns, absl::string_view key, v1::Tier tier) {
  std::string k;
  k.reserve(ns.size() + key.size() + 1);
  k.append(ns.data(), ns.size());
  k.append(key.data(), key.size());
  k.push_back(static_cast<char>(tier));
  return k;
}

void BlockSet::Apply(const v1::SubscribeEventsResponse& m) {
  if (m.has_snapshot()) {
    const v1::SnapshotPart& part = m.snapshot();
    if (part.first()) {
      blocks_.clear();
      in_snapshot_ = true;
      synced_ = false;
    }
    if (!in_snapshot_) return;  // A part without its first: ignored (never sent).
    for (const v1::BlockStored& b : part.blocks()) {
      blocks_[EntryKey(b.namespace_id(), b.key(), b.tier())] = b;
    }
    if (part.last()) {
      in_snapshot_ = false;
      synced_ = true;
      epoch_ = m.epoch();
      last_sequence_ = part.sequence();
      ++snapshots_;
    }
    return;
  }
  for (const v1::KvEvent& e : m.events()) {
    if (e.sequence() <= last_sequence_ && epoch_ == m.epoch()) continue;  // Seen already.
    switch (e.event_case()) {
      case v1::KvEvent::kStored: {
        const v1::BlockStored& b = e.stored();
        blocks_[EntryKey(b.namespace_id(), b.key(), b.tier())] = b;
        break;
      }
      case v1::KvEvent::kRemoved: {
        const v1::BlockRemoved& r = e.removed();
        blocks_.erase(EntryKey(r.namespace_id(), r.key(), r.tier()));
        break;
      }
      case v1::KvEvent::kCleared: {
        const v1::Tier tier = e.cleared().tier();
        for (auto it = blocks_.begin(); it != blocks_.end();) {
          if (tier == v1::TIER_UNSPECIFIED || it->second.tier() == tier) {
            blocks_.erase(it++);
          } else {
            ++it;
          }
        }
        break;
      }
      case v1::KvEvent::EVENT_NOT_SET:  // A newer kind of event: nothing to apply.
        break;
    }
    last_sequence_ = e.sequence();
    epoch_ = m.epoch();
    synced_ = true;
  }
}

v1::SubscribeEventsRequest BlockSet::ResumeRequest() const {
  v1::SubscribeEventsRequest r;
  r.set_version(1);
  if (synced_ && !in_snapshot_) {
    r.set_from_sequence(last_sequence_ + 1);
    r.set_epoch(epoch_);
  }
  return r;
}

}  // namespace kvcache
