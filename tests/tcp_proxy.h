// A TCP proxy on loopback that tests can cut off, as a network partition would: what a node
// looks like to its clients when the network between them drops every packet.
//
// Forwards each connection accepted on 127.0.0.1:<port()> to `target`. Cut() stops moving
// bytes both ways, silently (no reset, no close: peers see a frozen connection until their
// own deadlines) and holds new connections unanswered; Heal() drops the held connections (as
// their kernels would after the partition's timeouts) and forwards again. CloseNext(n) closes
// the next n connections as soon as they are accepted: a connect that fails, once.
//
// Thread safety: Cut and Heal may be called from any thread. One thread per connection and
// one accepting; the destructor stops them all.

#ifndef KVCACHE_TESTS_TCP_PROXY_H_
#define KVCACHE_TESTS_TCP_PROXY_H_

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/socket_io.h"

namespace kvcache {
namespace testing {

class TcpProxy {
 public:
  explicit TcpProxy(std::string target) : target_(std::move(target)) {
    auto listening = ListenTcp("127.0.0.1:0");
    if (!listening.ok()) return;
    listen_fd_ = listening->first;
    address_ = listening->second;
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~TcpProxy() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : pipes_) t.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // "127.0.0.1:PORT", what clients dial instead of the target. Empty if it could not listen.
  const std::string& address() const { return address_; }

  void Cut() { cut_ = true; }
  void CloseNext(int n) { close_next_ = n; }
  void Heal() {
    ++generation_;  // Connections of the cut generation close themselves.
    cut_ = false;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      if (close_next_ > 0) {
        --close_next_;
        close(client);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      pipes_.emplace_back([this, client] { Pipe(client); });
    }
  }

  // Moves bytes between `client` and a fresh connection to the target until either side
  // closes, the proxy stops, or a Heal ends the generation this connection was cut in.
  void Pipe(int client) {
    const uint64_t born = generation_;
    int server = -1;
    bool held = false;  // Lived through a cut.
    char buf[64 << 10];
    while (!stop_) {
      if (cut_) held = true;
      if (held && generation_ != born) break;
      if (cut_) {
        absl::SleepFor(absl::Milliseconds(20));
        continue;
      }
      if (server < 0) {
        auto connected = ConnectTcp(target_, absl::Seconds(2));
        if (!connected.ok()) break;
        server = *connected;
      }
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (poll(p, 2, 20) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = read(p[i].fd, buf, sizeof(buf));
        closed = n <= 0 || !WriteFull(p[1 - i].fd, buf, static_cast<size_t>(n)).ok();
      }
      if (closed) break;
    }
    close(client);
    if (server >= 0) close(server);
  }

  const std::string target_;
  int listen_fd_ = -1;
  std::string address_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> cut_{false};
  std::atomic<int> close_next_{0};
  std::atomic<uint64_t> generation_{0};
  std::mutex mu_;
  std::vector<std::thread> pipes_;  // Guarded by mu_.
  std::thread acceptor_;
};

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_TCP_PROXY_H_
