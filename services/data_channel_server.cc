#include "services/data_channel_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <list>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/data_channel_wire.h"
#include "common/socket_io.h"

namespace kvcache {
namespace {

namespace dc = data_channel;

// An idle connection is closed after this long (a client reconnects on its next call).
constexpr absl::Duration kIdleTimeout = absl::Minutes(5);
// Once a request has started, its parts must keep arriving at least this often.
constexpr absl::Duration kIoTimeout = absl::Seconds(30);

Key RandomToken() {
  Key token;
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(reinterpret_cast<char*>(token.bytes.data()), kKeyBytes);
  return token;
}

class DataChannelServerImpl final : public DataChannelServer {
 public:
  DataChannelServerImpl(int listen_fd, std::string address, std::string advertised,
                        TieredStore* store, ServerMetrics* metrics)
      : listen_fd_(listen_fd),
        address_(std::move(address)),
        advertised_(std::move(advertised)),
        token_(RandomToken()),
        store_(store),
        metrics_(metrics) {
    ::pipe2(wake_, O_CLOEXEC);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~DataChannelServerImpl() override { Shutdown(); }

  std::string address() const override { return address_; }
  std::string advertised_address() const override { return advertised_; }
  const Key& token() const override { return token_; }

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
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

 private:
  struct Connection {
    int fd;
    std::thread thread;
  };

  void AcceptLoop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents != 0) return;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      ReapFinished();
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      absl::MutexLock lock(&mu_);
      if (shut_down_ || static_cast<int>(connections_.size()) >= kMaxDataConnections) {
        ::close(fd);
        continue;
      }
      connections_.push_back(Connection{fd, std::thread()});
      auto it = std::prev(connections_.end());
      it->thread = std::thread([this, it] { Serve(it); });
    }
  }

  void Serve(std::list<Connection>::iterator self) {
    const int fd = self->fd;
    if (Hello(fd).ok()) {
      while (ServeOne(fd).ok()) {
      }
    }
    absl::MutexLock lock(&mu_);  // Closed under the lock: Shutdown never sees a stale fd.
    ::close(fd);
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

  absl::Status Hello(int fd) {
    SetSocketTimeout(fd, kIoTimeout);
    char hello[dc::kHelloBytes];
    if (absl::Status s = ReadFull(fd, hello, sizeof(hello)); !s.ok()) return s;
    absl::StatusOr<Key> token = dc::DecodeHello(absl::string_view(hello, sizeof(hello)));
    if (!token.ok()) return token.status();  // Closed without an answer.
    if (*token != token_) return absl::PermissionDeniedError("bad hello token");
    const char ok = 0;
    return WriteFull(fd, &ok, 1);
  }

  // Serves one request. An error return closes the connection.
  absl::Status ServeOne(int fd) {
    SetSocketTimeout(fd, kIdleTimeout);
    char op;
    if (absl::Status s = ReadFull(fd, &op, 1); !s.ok()) return s;
    SetSocketTimeout(fd, kIoTimeout);
    char ns_bytes[kKeyBytes];
    if (absl::Status s = ReadFull(fd, ns_bytes, kKeyBytes); !s.ok()) return s;
    Key ns;
    std::memcpy(ns.bytes.data(), ns_bytes, kKeyBytes);
    switch (op) {
      case dc::kGet: return ServeGet(fd, ns);
      case dc::kPut: return ServePut(fd, ns);
      default:
        SendError(fd, absl::InvalidArgumentError(absl::StrCat("data channel: unknown op ",
                                                              static_cast<int>(op))))
            .IgnoreError();  // Closing anyway.
        return absl::InvalidArgumentError("unknown op");
    }
  }

  absl::Status ServeGet(int fd, const Key& ns) {
    const absl::Time start = absl::Now();
    char count_bytes[4];
    if (absl::Status s = ReadFull(fd, count_bytes, 4); !s.ok()) return s;
    const uint32_t n = dc::GetU32(count_bytes);
    if (n == 0 || n > dc::kMaxKeysPerGet) {
      absl::Status bad = absl::InvalidArgumentError(
          absl::StrCat("Get names ", n, " keys; 1 to ", dc::kMaxKeysPerGet, " are allowed"));
      SendError(fd, bad).IgnoreError();  // Closing anyway.
      return bad;  // The keys that follow cannot be skipped safely.
    }
    std::vector<Key> keys(n);
    if (absl::Status s = ReadFull(fd, keys.data(), n * sizeof(Key)); !s.ok()) return s;
    for (const Key& key : keys) {
      absl::StatusOr<BlockPtr> block = store_->Get(BlockId{ns, key});
      if (!block.ok()) break;  // The run ends at the first block that is gone.
      char head[1 + dc::kBlockHeaderBytes];
      head[0] = dc::kBlock;
      const BlockMeta& m = (*block)->meta;
      dc::EncodeBlockHeader({m.id.key, m.parent, m.checksum, m.shape, (*block)->payload.size()},
                            head + 1);
      // Straight from the stored bytes to the socket.
      iovec iov[2] = {{head, sizeof(head)},
                      {const_cast<char*>((*block)->payload.data()), (*block)->payload.size()}};
      if (absl::Status s = WriteFull(fd, iov, 2); !s.ok()) return s;
    }
    const char end = dc::kEnd;
    absl::Status s = WriteFull(fd, &end, 1);
    metrics_->ObserveRpc(Rpc::kGet, absl::Now() - start, s.ok());
    return s;
  }

  absl::Status ServePut(int fd, const Key& ns) {
    const absl::Time start = absl::Now();
    char head[dc::kBlockHeaderBytes];
    if (absl::Status s = ReadFull(fd, head, sizeof(head)); !s.ok()) return s;
    absl::StatusOr<dc::BlockHeader> header =
        dc::DecodeBlockHeader(absl::string_view(head, sizeof(head)));
    if (header.ok()) {
      absl::Status size = CheckBlockSize(header->key, header->payload_bytes,
                                         store_->options().max_block_bytes);
      if (!size.ok()) header = size;
    }
    if (!header.ok()) {
      SendError(fd, header.status()).IgnoreError();  // Closing anyway.
      return header.status();  // Its payload is not read: the connection cannot go on.
    }
    const dc::BlockHeader& h = *header;
    auto block = std::make_shared<Block>();
    block->meta = BlockMeta{BlockId{ns, h.key}, h.parent, h.checksum, h.shape};
    block->payload.resize(h.payload_bytes);
    if (absl::Status s = ReadFull(fd, block->payload.data(), h.payload_bytes); !s.ok()) return s;
    absl::StatusOr<PutOutcome> outcome = store_->Put(std::move(block));
    metrics_->ObserveRpc(Rpc::kPut, absl::Now() - start, outcome.ok());
    if (!outcome.ok()) return SendError(fd, outcome.status());  // Read whole: go on.
    const char reply[2] = {dc::kStored, static_cast<char>(OutcomeByte(*outcome))};
    return WriteFull(fd, reply, 2);
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
  static absl::Status SendError(int fd, const absl::Status& error) {
    const std::string frame = dc::EncodeErrorReply(error);
    return WriteFull(fd, frame.data(), frame.size());
  }

  const int listen_fd_;
  const std::string address_;
  const std::string advertised_;
  const Key token_;
  TieredStore* const store_;
  ServerMetrics* const metrics_;
  int wake_[2] = {-1, -1};
  std::thread acceptor_;

  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);  // Being served.
  std::list<Connection> finished_ ABSL_GUARDED_BY(mu_);     // Ended, not yet joined.
};

}  // namespace

absl::StatusOr<std::unique_ptr<DataChannelServer>> StartDataChannelServer(
    const std::string& listen, TieredStore* store, ServerMetrics* metrics,
    const std::string& advertise) {
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
  return std::make_unique<DataChannelServerImpl>(listener->first, listener->second,
                                                 std::move(advertised), store, metrics);
}

}  // namespace kvcache
