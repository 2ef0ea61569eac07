// Fuzzes the data-channel server (services/data_channel_server.h) the way a peer reaches it:
// over a loopback TCP connection to a real server on 127.0.0.1:0 with a RAM-only store.
// Input: a mode byte, then the bytes the peer sends. Even modes send the server's own hello
// first (so the fuzzer reaches GET and PUT), odd modes send the bytes alone (the hello
// itself). The connection's write side is then shut: whatever was sent, the server must
// answer and close within kCloseDeadline (a hang is a crash), and stay up for the next input.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cachestore/block_store.h"
#include "common/data_channel_wire.h"
#include "common/socket_io.h"
#include "services/data_channel_server.h"
#include "services/metrics.h"

namespace kvcache {
namespace {

constexpr int kCloseDeadlineMs = 20000;

struct Fixture {
  std::unique_ptr<TieredStore> store;
  std::unique_ptr<ServerMetrics> metrics;
  AccessControl access;  // Auth off: the anonymous admin.
  TenantBook tenants;
  Key token;
  std::unique_ptr<DataChannelServer> server;
};

Fixture& Server() {
  static Fixture* const f = [] {
    auto* f = new Fixture;
    TieredStoreOptions options;
    options.ram.capacity_bytes = 64 << 20;
    options.max_block_bytes = 1 << 20;
    f->store = *NewTieredStore(options);
    f->metrics = std::make_unique<ServerMetrics>(f->store.get());
    absl::StatusOr<std::unique_ptr<DataChannelServer>> server =
        StartDataChannelServer("127.0.0.1:0", f->store.get(), f->metrics.get(), &f->access,
                               &f->tenants, "");
    if (!server.ok()) {
      std::fprintf(stderr, "data channel server: %s\n", server.status().ToString().c_str());
      std::abort();
    }
    f->server = *std::move(server);
    f->token = *f->access.IssueDataToken(Principal{"", Role::kAdmin, "fuzz", ""});
    return f;
  }();
  return *f;
}

// Sends `out`, shuts the write side, reads until the server closes. Both directions at once:
// a server blocked writing replies must not deadlock a fuzzer blocked writing requests.
void Exchange(int fd, const std::string& out) {
  size_t sent = 0;
  bool write_open = true;
  char buf[65536];
  for (;;) {
    if (write_open && sent == out.size()) {
      ::shutdown(fd, SHUT_WR);
      write_open = false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    const int ready = ::poll(&p, 1, kCloseDeadlineMs);
    if (ready == 0) {
      std::fprintf(stderr, "the data-channel server neither answered nor closed\n");
      std::abort();
    }
    if (ready < 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) return;  // Closed by the server.
      if (n < 0 && errno != EAGAIN && errno != EINTR) return;  // Reset: closed too.
    }
    if (write_open && (p.revents & POLLOUT)) {
      const ssize_t n =
          ::send(fd, out.data() + sent, out.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        write_open = false;  // The server closed on us; read what it said.
        ::shutdown(fd, SHUT_WR);
      }
    }
  }
}

}  // namespace
}  // namespace kvcache

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dc = kvcache::data_channel;
  if (size == 0) return 0;
  kvcache::Fixture& f = kvcache::Server();
  f.store->Clear();  // Each input starts from an empty store: reproducible.
  std::string out;
  if (data[0] % 2 == 0) {
    out.resize(dc::kHelloBytes);
    dc::EncodeHello(f.token, out.data());
  }
  out.append(reinterpret_cast<const char*>(data) + 1, size - 1);

  absl::StatusOr<int> fd = kvcache::ConnectTcp(f.server->address(), absl::Seconds(10));
  if (!fd.ok()) {
    std::fprintf(stderr, "connect: %s\n", fd.status().ToString().c_str());
    std::abort();
  }
  kvcache::Exchange(*fd, out);
  ::close(*fd);
  return 0;
}
