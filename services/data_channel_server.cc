#include "services/data_channel_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/block_shape.h"
#include "common/data_channel_wire.h"
#include "common/shared_region.h"
#include "common/socket_io.h"

namespace kvcache {
namespace {

namespace dc = data_channel;

// The IP address of an accepted peer, without its port: the unit of the per-peer cap.
std::string PeerHost(const sockaddr_storage& peer) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (peer.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr, text,
                sizeof(text));
  } else if (peer.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr, text,
                sizeof(text));
  }
  return text;
}

// accept(2) errors that say the process or system is short of a resource: retrying at once
// fails again at once, so the listener backs off.
bool IsResourceShortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == EPERM;
}

// The peer key of same-host connections in the per-peer cap.
constexpr char kLocalPeer[] = "unix";

// Same-host Get: block frames are sent at least this often (in payload bytes copied).
constexpr uint64_t kLocalFlushBytes = 1 << 20;

class DataChannelServerImpl final : public DataChannelServer {
 public:
  DataChannelServerImpl(int listen_fd, std::string address, std::string advertised,
                        int local_fd, std::string local_address, TieredStore* store,
                        ServerMetrics* metrics, const AccessControl* access,
                        TenantBook* tenants, const DataChannelOptions& options,
                        TenantUsage* usage)
      : listen_fd_(listen_fd),
        address_(std::move(address)),
        advertised_(std::move(advertised)),
        local_fd_(local_fd),
        local_address_(std::move(local_address)),
        store_(store),
        metrics_(metrics),
        access_(access),
        tenants_(tenants),
        usage_(usage),
        options_(options) {
    ::pipe2(wake_, O_CLOEXEC);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~DataChannelServerImpl() override { Shutdown(); }

  std::string address() const override { return address_; }
  std::string advertised_address() const override { return advertised_; }
  std::string local_address() const override { return local_address_; }
  DataChannelCounters counters() const override {
    absl::MutexLock lock(&mu_);
    return counters_;
  }

  void Shutdown() override {
    {
      absl::MutexLock lock(&mu_);
      if (shut_down_) return;
      shut_down_ = true;
      for (Connection& c : connections_) ::shutdown(c.fd, SHUT_RDWR);
    }
    (void)!::write(wake_[1], "x", 1);
    acceptor_.join();
    // Connection threads end on their next read or write; each removes itself.
    std::list<Connection> all;
    {
      absl::MutexLock lock(&mu_);
      all.splice(all.end(), connections_);
      all.splice(all.end(), finished_);
    }
    for (Connection& c : all) c.thread.join();
    ::close(listen_fd_);
    if (local_fd_ >= 0) {
      ::close(local_fd_);
      if (local_address_[0] != '@') ::unlink(local_address_.c_str());
    }
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

 private:
  struct Connection {
    int fd;
    std::string peer;
    std::thread thread;
    bool local = false;  // Accepted on the same-host Unix socket.
  };

  void Count(uint64_t DataChannelCounters::*counter, DataChannelEvent event) {
    {
      absl::MutexLock lock(&mu_);
      ++(counters_.*counter);
    }
    metrics_->CountDataChannelEvent(event);
  }

  void AcceptLoop() {
    for (;;) {
      // A negative fd (no same-host socket) is ignored by poll.
      pollfd fds[3] = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}, {local_fd_, POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0) continue;
      if (fds[0].revents != 0) return;
      const bool local = local_fd_ >= 0 && fds[2].revents != 0 && fds[1].revents == 0;
      sockaddr_storage peer{};
      socklen_t peer_len = sizeof(peer);
      const int fd = ::accept4(local ? local_fd_ : listen_fd_,
                               reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC);
      const int accept_errno = errno;
      ReapFinished();
      if (fd < 0) {
        if (IsResourceShortage(accept_errno)) {
          // The pending connection stays queued and poll says readable again at once: wait
          // (waking early for Shutdown) instead of spinning a core.
          Count(&DataChannelCounters::accept_failures, DataChannelEvent::kAcceptFailure);
          pollfd wake{wake_[0], POLLIN, 0};
          const int ms = static_cast<int>(
              std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.accept_backoff)));
          if (::poll(&wake, 1, ms) > 0) return;
        }
        continue;
      }
      if (!local) SetTcpNoDelay(fd);
      std::string host = local ? kLocalPeer : PeerHost(peer);
      absl::MutexLock lock(&mu_);
      if (shut_down_) {
        ::close(fd);
        continue;
      }
      int& from_peer = per_peer_[host];
      const bool over_total = static_cast<int>(connections_.size()) >= options_.max_connections;
      const bool over_peer = from_peer >= options_.max_connections_per_peer;
      if (over_total || over_peer) {
        if (from_peer == 0) per_peer_.erase(host);
        ::close(fd);
        ++(over_total ? counters_.refused_total_cap : counters_.refused_peer_cap);
        metrics_->CountDataChannelEvent(over_total ? DataChannelEvent::kRefusedTotalCap
                                                   : DataChannelEvent::kRefusedPeerCap);
        continue;
      }
      ++from_peer;
      connections_.push_back(Connection{fd, std::move(host), std::thread(), local});
      auto it = std::prev(connections_.end());
      try {
        it->thread = std::thread([this, it] { Serve(it); });
      } catch (const std::system_error&) {  // No thread to be had: refuse this one.
        ReleasePeerLocked(it->peer);
        ::close(fd);
        connections_.erase(it);
        ++counters_.connection_errors;
        metrics_->CountDataChannelEvent(DataChannelEvent::kConnectionError);
      }
    }
  }

  void ReleasePeerLocked(const std::string& peer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto p = per_peer_.find(peer);
    if (p != per_peer_.end() && --p->second <= 0) per_peer_.erase(p);
  }

  void Serve(std::list<Connection>::iterator self) {
    const int fd = self->fd;
    uint64_t reserved = 0;  // Of local_regions_max_bytes, by this connection's region.
    try {
      Key token;
      std::unique_ptr<SharedRegion> region;  // Same-host connections only.
      absl::Status s = Hello(fd, &token, self->local ? &region : nullptr, &reserved);
      SocketReader in(fd);  // After the hello: a client sends nothing more before its answer.
      // Bounds the wait for a request's first byte: one blocking recv(2) instead of a
      // speculative one, a poll and another.
      if (s.ok()) SetSocketTimeout(fd, options_.idle_timeout);
      while (s.ok()) s = ServeOne(fd, &in, token, region.get());
      if (absl::IsDeadlineExceeded(s)) {
        Count(&DataChannelCounters::deadline_closed, DataChannelEvent::kDeadline);
      }
    } catch (const std::exception&) {
      // Above all std::bad_alloc: it ends this connection, not the process.
      Count(&DataChannelCounters::connection_errors, DataChannelEvent::kConnectionError);
    }
    absl::MutexLock lock(&mu_);  // Closed under the lock: Shutdown never sees a stale fd.
    region_bytes_ -= reserved;
    ::close(fd);
    ReleasePeerLocked(self->peer);
    // Joined by the acceptor; after shutdown began, Shutdown holds the node and joins it.
    if (!shut_down_) finished_.splice(finished_.end(), connections_, self);
  }

  // Joins the threads of connections that have ended.
  void ReapFinished() {
    std::list<Connection> done;
    {
      absl::MutexLock lock(&mu_);
      done.splice(done.end(), finished_);
    }
    for (Connection& c : done) c.thread.join();
  }

  // With `region` (a same-host connection), makes the connection's region and passes it
  // with the reply.
  absl::Status Hello(int fd, Key* token_out, std::unique_ptr<SharedRegion>* region,
                     uint64_t* reserved) {
    const absl::Time deadline = absl::Now() + options_.hello_deadline;
    char hello[dc::kHelloBytes];
    if (absl::Status s = ReadFull(fd, hello, sizeof(hello), deadline); !s.ok()) return s;
    absl::StatusOr<Key> token = dc::DecodeHello(absl::string_view(hello, sizeof(hello)));
    if (!token.ok()) return token.status();  // Closed without an answer.
    if (!access_->ResolveDataToken(*token)) {
      return absl::PermissionDeniedError("unknown or revoked hello token");
    }
    *token_out = *token;
    if (region != nullptr) {
      const uint64_t bytes = RegionBytes();
      bool fits;
      {
        absl::MutexLock lock(&mu_);
        fits = region_bytes_ + bytes <= options_.local_regions_max_bytes;
        if (fits) region_bytes_ += bytes;
      }
      if (!fits) {
        // Closed without an answer: the client falls back to TCP (and counts it).
        Count(&DataChannelCounters::local_region_failures, DataChannelEvent::kLocalRegionFailure);
        return absl::ResourceExhaustedError("same-host regions at their limit");
      }
      *reserved = bytes;
      absl::StatusOr<std::unique_ptr<SharedRegion>> made = SharedRegion::Create(bytes);
      if (!made.ok()) {
        // Closed without an answer: the client falls back to TCP (and counts it).
        Count(&DataChannelCounters::local_region_failures, DataChannelEvent::kLocalRegionFailure);
        return made.status();
      }
      *region = *std::move(made);
      char reply[dc::kLocalHelloReplyBytes];
      reply[0] = 0;
      PutLittleEndian<uint64_t>(reply + 1, (*region)->size());
      SetSocketTimeout(fd, options_.hello_deadline);
      absl::Status sent = SendWithFd(fd, reply, sizeof(reply), (*region)->fd());
      SetSocketTimeout(fd, absl::InfiniteDuration());
      if (sent.ok()) {
        Count(&DataChannelCounters::local_connections, DataChannelEvent::kLocalConnection);
      }
      return sent;
    }
    const char ok = 0;
    return WriteFull(fd, &ok, 1, deadline);
  }

  uint64_t RegionBytes() const {
    if (options_.local_region_bytes > 0) {
      return std::max<uint64_t>(options_.local_region_bytes, store_->options().max_block_bytes);
    }
    return std::max<uint64_t>(16 << 20, store_->options().max_block_bytes);
  }

  void CountLocal(uint64_t DataChannelCounters::*counter, uint64_t n = 1) {
    absl::MutexLock lock(&mu_);
    counters_.*counter += n;
  }

  // Serves one request of the connection that said hello with `token` (with `region`, a
  // same-host connection's), read through `in`. An error return closes the connection.
  absl::Status ServeOne(int fd, SocketReader* in, const Key& token, SharedRegion* region) {
    char op;
    if (absl::Status s = in->Read(&op, 1); !s.ok()) {  // Bounded by the idle timeout.
      return s;
    }
    const absl::Time header_deadline = absl::Now() + options_.header_deadline;
    char ns_bytes[kKeyBytes];
    if (absl::Status s = in->Read(ns_bytes, kKeyBytes, header_deadline); !s.ok()) return s;
    Key ns;
    std::memcpy(ns.bytes.data(), ns_bytes, kKeyBytes);
    if (op == dc::kGet || op == dc::kPut) {
      // Checked on every request, so a reload of --auth-tokens that revokes the caller or
      // changes its role ends its connections' rights at once.
      std::optional<Principal> who = access_->ResolveDataToken(token);
      absl::Status allowed =
          !who ? absl::UnauthenticatedError("data channel token revoked: reopen the channel")
               : AccessControl::Require(*who, op == dc::kGet ? Role::kReader : Role::kWriter,
                                        op == dc::kGet ? "Get" : "Put");
      if (!allowed.ok()) {
        SendError(fd, allowed).IgnoreError();  // The request is not read: closing.
        return allowed;
      }
      const Key stored = StoredNamespace(who->tenant, ns);
      return op == dc::kGet ? ServeGet(fd, in, stored, header_deadline, region)
                            : ServePut(fd, in, *who, ns, stored, header_deadline, region);
    }
    switch (op) {
      default:
        SendError(fd, absl::InvalidArgumentError(absl::StrCat("data channel: unknown op ",
                                                              static_cast<int>(op))))
            .IgnoreError();  // Closing anyway.
        return absl::InvalidArgumentError("unknown op");
    }
  }

  absl::Status ServeGet(int fd, SocketReader* in, const Key& ns, absl::Time header_deadline,
                        SharedRegion* region) {
    const absl::Time start = absl::Now();
    char count_bytes[4];
    if (absl::Status s = in->Read(count_bytes, 4, header_deadline); !s.ok()) return s;
    const uint32_t n = dc::GetU32(count_bytes);
    if (n == 0 || n > dc::kMaxKeysPerGet) {
      absl::Status bad = absl::InvalidArgumentError(
          absl::StrCat("Get names ", n, " keys; 1 to ", dc::kMaxKeysPerGet, " are allowed"));
      SendError(fd, bad).IgnoreError();  // Closing anyway.
      return bad;  // The keys that follow cannot be skipped safely.
    }
    std::vector<Key> keys(n);
    if (absl::Status s = in->Read(keys.data(), n * sizeof(Key), header_deadline); !s.ok()) {
      return s;
    }
    uint64_t cursor = 0;  // Same-host: where the next payload goes in the region.
    uint64_t sent_local = 0;
    // Same-host: block frames not yet sent, and the payload bytes they stand for. Sent
    // together (with the kEnd or kWait that follows, or every kLocalFlushBytes so that the
    // client copies one part while the server fills the next): one send(2) per Get of a
    // block or a few.
    std::string pending;
    uint64_t pending_bytes = 0;
    for (const Key& key : keys) {
      absl::StatusOr<BlockPtr> block = store_->Get(BlockId{ns, key});
      if (!block.ok()) break;  // The run ends at the first block that is gone.
      if (region != nullptr) {
        // The block is held (its BlockPtr) while its bytes are copied: eviction cannot free
        // or recycle them meanwhile. The copy is the client's until it acknowledges a kWait
        // or sends its next request.
        const size_t size = (*block)->payload.size();
        if (size > region->size()) break;  // Stored under a larger limit: ends the run.
        if (!region->Contains(cursor, size)) {
          if (absl::Status s = AwaitAck(fd, in, &pending); !s.ok()) return s;
          cursor = 0;
          pending_bytes = 0;
        }
        std::memcpy(region->data() + cursor, (*block)->payload.data(), size);
        char head[1 + dc::kBlockHeaderBytes + dc::kOffsetBytes];
        head[0] = dc::kBlock;
        const BlockMeta& m = (*block)->meta;
        dc::EncodeBlockHeader({m.id.key, m.parent, m.checksum, m.shape, size}, head + 1);
        PutLittleEndian<uint64_t>(head + 1 + dc::kBlockHeaderBytes, cursor);
        pending.append(head, sizeof(head));
        pending_bytes += size;
        cursor = dc::NextRegionOffset(cursor + size);
        ++sent_local;
        if (pending_bytes >= kLocalFlushBytes) {
          absl::Status s = WriteFull(fd, pending.data(), pending.size(),
                                     absl::Now() + options_.payload_deadline);
          if (!s.ok()) return s;
          pending.clear();
          pending_bytes = 0;
        }
        continue;
      }
      char head[1 + dc::kBlockHeaderBytes];
      head[0] = dc::kBlock;
      const BlockMeta& m = (*block)->meta;
      dc::EncodeBlockHeader({m.id.key, m.parent, m.checksum, m.shape, (*block)->payload.size()},
                            head + 1);
      // Straight from the stored bytes to the socket.
      iovec iov[2] = {{head, sizeof(head)},
                      {const_cast<char*>((*block)->payload.data()), (*block)->payload.size()}};
      if (absl::Status s = WriteFull(fd, iov, 2, absl::Now() + options_.payload_deadline);
          !s.ok()) {
        return s;
      }
    }
    pending.push_back(static_cast<char>(dc::kEnd));
    absl::Status s = WriteFull(fd, pending.data(), pending.size(),
                               absl::Now() + options_.payload_deadline);
    metrics_->ObserveRpc(Rpc::kGet, absl::Now() - start, s.ok());
    if (sent_local > 0) CountLocal(&DataChannelCounters::local_blocks_sent, sent_local);
    return s;
  }

  // Same-host Get: the region is full; sends the `pending` frames and a kWait, and waits
  // until the client has copied out what was sent.
  absl::Status AwaitAck(int fd, SocketReader* in, std::string* pending) {
    CountLocal(&DataChannelCounters::local_waits);
    const absl::Time deadline = absl::Now() + options_.payload_deadline;
    pending->push_back(static_cast<char>(dc::kWait));
    absl::Status sent = WriteFull(fd, pending->data(), pending->size(), deadline);
    pending->clear();
    if (!sent.ok()) return sent;
    char ack = 0;
    if (absl::Status s = in->Read(&ack, 1, deadline); !s.ok()) return s;
    if (ack != dc::kAck) return absl::InvalidArgumentError("data channel: expected an ack");
    return absl::OkStatus();
  }

  // `ns` as the caller sent it, `stored` as the store keeps it.
  absl::Status ServePut(int fd, SocketReader* in, const Principal& who, const Key& ns,
                        const Key& stored, absl::Time header_deadline, SharedRegion* region) {
    const absl::Time start = absl::Now();
    char head[dc::kBlockHeaderBytes + dc::kOffsetBytes];  // The offset: same-host only.
    const size_t head_bytes = dc::kBlockHeaderBytes + (region != nullptr ? dc::kOffsetBytes : 0);
    if (absl::Status s = in->Read(head, head_bytes, header_deadline); !s.ok()) return s;
    absl::StatusOr<dc::BlockHeader> header =
        dc::DecodeBlockHeader(absl::string_view(head, dc::kBlockHeaderBytes));
    const uint64_t offset =
        region != nullptr ? GetLittleEndian<uint64_t>(head + dc::kBlockHeaderBytes) : 0;
    if (header.ok()) {
      // Both before the payload is allocated or read.
      absl::Status size = CheckBlockSize(header->key, header->payload_bytes,
                                         store_->options().max_block_bytes);
      if (size.ok()) size = CheckPayloadMatchesShape(header->key, header->shape,
                                                     header->payload_bytes);
      if (size.ok() && usage_ != nullptr) {
        size = usage_->CheckFits(who.tenant, header->payload_bytes);
      }
      // Never trusts the client's offset: the payload must lie inside the region.
      if (size.ok() && region != nullptr && !region->Contains(offset, header->payload_bytes)) {
        Count(&DataChannelCounters::local_bad_offsets, DataChannelEvent::kLocalBadOffset);
        size = absl::InvalidArgumentError(
            absl::StrCat("data channel: payload of ", header->payload_bytes, " bytes at offset ",
                         offset, " is outside the ", region->size(), "-byte region"));
      }
      if (!size.ok()) header = size;
    }
    if (!header.ok()) {
      SendError(fd, header.status()).IgnoreError();  // Closing anyway.
      return header.status();  // Its payload is not read: the connection cannot go on.
    }
    const dc::BlockHeader& h = *header;
    // Received straight into the RAM tier's arena when it has one (warm memory, recycled).
    std::shared_ptr<Block> block = store_->NewBlock(h.payload_bytes);
    block->meta = BlockMeta{BlockId{stored, h.key}, h.parent, h.checksum, h.shape};
    const absl::Time payload_deadline = absl::Now() + options_.payload_deadline;
    if (region != nullptr) {
      // One copy out of shared memory. The client could still be writing there: the store's
      // Put checks the checksum on this copy, so only bytes that match it are kept.
      std::memcpy(block->payload.data(), region->data() + offset, h.payload_bytes);
      CountLocal(&DataChannelCounters::local_blocks_taken);
    } else if (absl::Status s =
                   in->Read(block->payload.data(), h.payload_bytes, payload_deadline);
               !s.ok()) {
      return s;
    }
    absl::StatusOr<PutOutcome> outcome = store_->Put(std::move(block));
    metrics_->ObserveRpc(Rpc::kPut, absl::Now() - start, outcome.ok());
    if (!outcome.ok()) {
      absl::Status sent = SendError(fd, outcome.status(), payload_deadline);
      // Over TCP the connection goes on. Same-host clients send several Puts at once: closing
      // drops those behind the failed one, so a Put stops at its first bad block there too.
      if (region != nullptr && sent.ok()) return outcome.status();
      return sent;
    }
    if (*outcome == PutOutcome::kAlreadyPresent) {
      // Other bytes under a stored key: kept, and recorded (the reply says already present).
      std::optional<BlockInfo> kept = store_->Inspect(BlockId{stored, h.key});
      if (kept && kept->meta.checksum != h.checksum) {
        tenants_->RecordConflict(ConflictRecord{who.tenant, who.name, ns, h.key,
                                                kept->meta.checksum, h.checksum, absl::Now()});
      }
    }
    // A tenant over its quota makes room in its own share, here: it pays for its writes.
    if (usage_ != nullptr) usage_->Trim(who.tenant);
    const char reply[2] = {dc::kStored, static_cast<char>(OutcomeByte(*outcome))};
    return WriteFull(fd, reply, 2, payload_deadline);
  }

  static dc::PutOutcomeByte OutcomeByte(PutOutcome outcome) {
    switch (outcome) {
      case PutOutcome::kStored: return dc::kOutcomeStored;
      case PutOutcome::kAlreadyPresent: return dc::kOutcomeAlreadyPresent;
      case PutOutcome::kNotAdmitted: break;
    }
    return dc::kOutcomeNotAdmitted;
  }

  // Sends an error reply; returns the write's status.
  absl::Status SendError(int fd, const absl::Status& error) {
    return SendError(fd, error, absl::Now() + options_.header_deadline);
  }
  static absl::Status SendError(int fd, const absl::Status& error, absl::Time deadline) {
    const std::string frame = dc::EncodeErrorReply(error);
    return WriteFull(fd, frame.data(), frame.size(), deadline);
  }

  const int listen_fd_;
  const std::string address_;
  const std::string advertised_;
  const int local_fd_;  // -1: no same-host path.
  const std::string local_address_;
  TieredStore* const store_;
  ServerMetrics* const metrics_;
  const AccessControl* const access_;
  TenantBook* const tenants_;
  TenantUsage* const usage_;  // Null when auth is off.
  const DataChannelOptions options_;
  int wake_[2] = {-1, -1};
  std::thread acceptor_;

  mutable absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, int> per_peer_ ABSL_GUARDED_BY(mu_);  // Open, by peer host.
  uint64_t region_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // Of the same-host regions open.
  DataChannelCounters counters_ ABSL_GUARDED_BY(mu_);
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);  // Being served.
  std::list<Connection> finished_ ABSL_GUARDED_BY(mu_);     // Ended, not yet joined.
};

}  // namespace

absl::StatusOr<std::unique_ptr<DataChannelServer>> StartDataChannelServer(
    const std::string& listen, TieredStore* store, ServerMetrics* metrics,
    const AccessControl* access, TenantBook* tenants, const std::string& advertise,
    const DataChannelOptions& options, TenantUsage* usage) {
  if (options.max_connections < 1 || options.max_connections_per_peer < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data channel connection limits must be at least 1 (got ", options.max_connections,
        " in total, ", options.max_connections_per_peer, " per peer)"));
  }
  absl::StatusOr<std::pair<int, std::string>> listener = ListenTcp(listen);
  if (!listener.ok()) return listener.status();
  std::string advertised = listener->second;
  if (!advertise.empty()) {
    std::string host, port;
    const bool bracketed_v6 = !advertise.empty() && advertise.front() == '[';
    const bool has_port = bracketed_v6 ? advertise.find("]:") != std::string::npos
                                       : std::count(advertise.begin(), advertise.end(), ':') == 1;
    if (has_port) {
      advertised = advertise;
    } else {
      SplitHostPort(listener->second, &host, &port);
      const bool v6 = !bracketed_v6 && advertise.find(':') != std::string::npos;
      advertised = absl::StrCat(v6 ? "[" : "", advertise, v6 ? "]" : "", ":", port);
    }
  }
  int local_fd = -1;
  std::string local_address;
  if (!options.local_listen.empty() && options.local_listen != "off") {
    local_address = options.local_listen;
    if (local_address == "auto") {
      std::random_device random;
      local_address = absl::StrCat("@kvcache-dc-", absl::Hex(random(), absl::kZeroPad8),
                                   absl::Hex(random(), absl::kZeroPad8));
    }
    absl::StatusOr<int> local = ListenUnix(local_address);
    if (!local.ok()) {
      ::close(listener->first);
      return local.status();
    }
    local_fd = *local;
  }
  return std::make_unique<DataChannelServerImpl>(
      listener->first, listener->second, std::move(advertised), local_fd,
      std::move(local_address), store, metrics, access, tenants, options, usage);
}

}  // namespace kvcache
