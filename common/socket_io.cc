#include "common/socket_io.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kvcache {
namespace {

absl::Status IoError(const char* what) {
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    return absl::DeadlineExceededError(absl::StrCat("data channel: ", what, " timed out"));
  }
  return absl::UnavailableError(absl::StrCat("data channel: ", what, ": ", std::strerror(errno)));
}

// Waits until `fd` is ready for `events` or `deadline` passes. OK when ready (or in error:
// the next recv/send reports it).
absl::Status WaitReady(int fd, short events, absl::Time deadline, const char* what) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("data channel: ", what, " deadline passed"));
    }
    // Round up, so the wait never ends a hair before the deadline and spins.
    const int64_t ms = std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60000);
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(ms));
    if (rc > 0) return absl::OkStatus();
    if (rc < 0 && errno != EINTR) return IoError(what);
  }
}

using AddrInfo = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

// Resolves "host:port" for a stream socket (`passive`: to listen; an empty host is any).
absl::StatusOr<AddrInfo> Resolve(const std::string& address, bool passive) {
  std::string host, port;
  if (!SplitHostPort(address, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not host:port"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const char* node = passive && host.empty() ? nullptr : host.c_str();
  if (int rc = ::getaddrinfo(node, port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", address, "': ", gai_strerror(rc)));
  }
  return AddrInfo(found, &::freeaddrinfo);
}

}  // namespace

bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return !port->empty();
}

std::string ReachableAddress(const std::string& advertised, const std::string& dialled) {
  std::string host, port;
  if (!SplitHostPort(advertised, &host, &port)) return advertised;
  if (!host.empty() && host != "0.0.0.0" && host != "::") return advertised;
  std::string target = dialled;
  // gRPC target schemes whose rest is host:port.
  for (const char* scheme : {"dns:///", "ipv4:", "ipv6:"}) {
    if (target.rfind(scheme, 0) == 0) target = target.substr(std::string(scheme).size());
  }
  std::string dialled_host, dialled_port;
  if (target.find('/') != std::string::npos || !SplitHostPort(target, &dialled_host, &dialled_port) ||
      dialled_host.empty()) {
    return advertised;
  }
  const bool v6 = dialled_host.find(':') != std::string::npos;
  return absl::StrCat(v6 ? "[" : "", dialled_host, v6 ? "]" : "", ":", port);
}

absl::Status SplitHostPort(const std::string& address, std::string* host, uint16_t* port) {
  std::string port_text;
  uint32_t p = 0;
  if (!SplitHostPort(address, host, &port_text) || !absl::SimpleAtoi(port_text, &p) ||
      p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "' is not host:port (e.g. 127.0.0.1:6379)"));
  }
  *port = static_cast<uint16_t>(p);
  return absl::OkStatus();
}

void SetTcpNoDelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::Status ReadFull(int fd, void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = ::recv(fd, p, n, MSG_WAITALL);
    if (got == 0) return absl::UnavailableError("data channel: connection closed");
    if (got < 0) {
      if (errno == EINTR) continue;
      return IoError("read");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

namespace {

// Drops `sent` written bytes from the front of the iovec array.
void ConsumeIov(size_t sent, struct iovec** iov, int* iovcnt) {
  while (*iovcnt > 0 && sent >= (*iov)->iov_len) {
    sent -= (*iov)->iov_len;
    ++*iov;
    --*iovcnt;
  }
  if (*iovcnt > 0) {
    (*iov)->iov_base = static_cast<char*>((*iov)->iov_base) + sent;
    (*iov)->iov_len -= sent;
  }
}

}  // namespace

absl::Status WriteFull(int fd, struct iovec* iov, int iovcnt) {
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return IoError("write");
    }
    ConsumeIov(static_cast<size_t>(sent), &iov, &iovcnt);
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, const void* buf, size_t n) {
  iovec iov{const_cast<void*>(buf), n};
  return WriteFull(fd, &iov, 1);
}

absl::Status ReadFull(int fd, void* buf, size_t n, absl::Time deadline) {
  char* p = static_cast<char*>(buf);
  // Bytes already there are taken at once; poll(2) (which checks the deadline) only when
  // none are: one syscall instead of two for the usual request that arrives whole.
  while (n > 0) {
    const ssize_t got = ::recv(fd, p, n, MSG_DONTWAIT);
    if (got == 0) return absl::UnavailableError("data channel: connection closed");
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (absl::Status s = WaitReady(fd, POLLIN, deadline, "read"); !s.ok()) return s;
        continue;
      }
      if (errno == EINTR) continue;
      return IoError("read");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

absl::Status SocketReader::Read(void* dst, size_t n, const absl::Time* deadline) {
  char* out = static_cast<char*>(dst);
  const size_t take = std::min(n, end_ - pos_);
  std::memcpy(out, buffer_ + pos_, take);
  pos_ += take;
  out += take;
  n -= take;
  if (n == 0) return absl::OkStatus();
  pos_ = end_ = 0;  // Used up.
  if (n >= sizeof(buffer_)) {  // A payload: no extra copy.
    return deadline != nullptr ? ReadFull(fd_, out, n, *deadline) : ReadFull(fd_, out, n);
  }
  while (n > 0) {
    const ssize_t got = ::recv(fd_, buffer_, sizeof(buffer_), deadline ? MSG_DONTWAIT : 0);
    if (got == 0) return absl::UnavailableError("data channel: connection closed");
    if (got < 0) {
      if (errno == EINTR) continue;
      if (deadline != nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (absl::Status s = WaitReady(fd_, POLLIN, *deadline, "read"); !s.ok()) return s;
        continue;
      }
      return IoError("read");
    }
    const size_t part = std::min(static_cast<size_t>(got), n);
    std::memcpy(out, buffer_, part);
    out += part;
    n -= part;
    pos_ = part;
    end_ = static_cast<size_t>(got);
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, struct iovec* iov, int iovcnt, absl::Time deadline) {
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // Full: wait for room (or the deadline).
        if (absl::Status s = WaitReady(fd, POLLOUT, deadline, "write"); !s.ok()) return s;
        continue;
      }
      if (errno == EINTR) continue;
      return IoError("write");
    }
    ConsumeIov(static_cast<size_t>(sent), &iov, &iovcnt);
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, const void* buf, size_t n, absl::Time deadline) {
  iovec iov{const_cast<void*>(buf), n};
  return WriteFull(fd, &iov, 1, deadline);
}

void SetSocketTimeout(int fd, absl::Duration timeout) {
  timeval tv{};
  if (timeout != absl::InfiniteDuration()) {
    tv = absl::ToTimeval(std::max(timeout, absl::Milliseconds(1)));
  }
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout) {
  absl::StatusOr<AddrInfo> found = Resolve(address, /*passive=*/false);
  if (!found.ok()) return found.status();
  absl::Status last = absl::UnavailableError("data channel: no address for " + address);
  for (addrinfo* a = found->get(); a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    SetSocketTimeout(fd, timeout);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      SetTcpNoDelay(fd);
      return fd;
    }
    last = IoError("connect");
    ::close(fd);
  }
  return last;
}

absl::StatusOr<std::pair<int, std::string>> ListenTcp(const std::string& address) {
  absl::StatusOr<AddrInfo> found = Resolve(address, /*passive=*/true);
  if (!found.ok()) return found.status();
  const addrinfo* a = found->get();
  const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on '", address,
                                               "': ", std::strerror(errno)));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("cannot listen on '", address, "': ", std::strerror(errno)));
    ::close(fd);
    return s;
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = bound.ss_family == AF_INET6
                             ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                             : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::string host, port;
  SplitHostPort(address, &host, &port);
  const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::make_pair(fd, absl::StrCat(shown_host, ":", bound_port));
}

absl::Status CheckCanListen(const std::string& address) {
  absl::StatusOr<std::pair<int, std::string>> probe = ListenTcp(address);
  if (!probe.ok()) return probe.status();
  ::close(probe->first);
  return absl::OkStatus();
}

}  // namespace kvcache
