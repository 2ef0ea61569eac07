#include "common/shared_region.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/socket_io.h"

namespace kvcache {
namespace {

constexpr uint64_t kPage = 4096;
constexpr int kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;

std::string Errno(const char* what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

std::string FirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path, socklen_t* len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path '", path, "' must be 1 to ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';  // Abstract: no trailing NUL, the length says where it ends.
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    *len = static_cast<socklen_t>(sizeof(addr));
  }
  return addr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SharedRegion>> SharedRegion::Create(uint64_t bytes) {
  bytes = (bytes + kPage - 1) / kPage * kPage;
  if (bytes == 0 || bytes > kMaxSharedRegionBytes) {
    return absl::InvalidArgumentError(absl::StrCat("shared region of ", bytes, " bytes"));
  }
  const int fd = ::memfd_create("kvcache-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return absl::ResourceExhaustedError(Errno("memfd_create"));
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    const std::string why = Errno("ftruncate/seal of a memfd");
    ::close(fd);
    return absl::ResourceExhaustedError(why);
  }
  // MAP_POPULATE faults every page in now, off the request path.
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    const std::string why = Errno("mmap of a memfd");
    ::close(fd);
    return absl::ResourceExhaustedError(why);
  }
  return std::unique_ptr<SharedRegion>(new SharedRegion(fd, static_cast<char*>(p), bytes));
}

absl::StatusOr<std::unique_ptr<SharedRegion>> SharedRegion::Map(int fd, uint64_t bytes) {
  auto refuse = [fd](std::string why) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("shared region refused: ", why));
  };
  if (bytes == 0 || bytes > kMaxSharedRegionBytes) {
    return refuse(absl::StrCat(bytes, " bytes announced"));
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & kRequiredSeals) != kRequiredSeals) {
    return refuse("not a memfd sealed against shrinking and growing");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != bytes) {
    return refuse(absl::StrCat("its size is ", st.st_size, ", ", bytes, " announced"));
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    const std::string why = Errno("mmap of the shared region");
    ::close(fd);
    return absl::UnavailableError(why);
  }
  return std::unique_ptr<SharedRegion>(new SharedRegion(fd, static_cast<char*>(p), bytes));
}

SharedRegion::~SharedRegion() {
  ::munmap(data_, size_);
  ::close(fd_);
}

const std::string& LocalHostId() {
  static const std::string* id = [] {
    std::string machine = FirstLine("/etc/machine-id");
    if (machine.empty()) machine = FirstLine("/var/lib/dbus/machine-id");
    const std::string boot = FirstLine("/proc/sys/kernel/random/boot_id");
    return new std::string(machine.empty() && boot.empty() ? ""
                                                            : absl::StrCat(machine, ":", boot));
  }();
  return *id;
}

absl::StatusOr<int> ListenUnix(const std::string& path) {
  socklen_t len = 0;
  absl::StatusOr<sockaddr_un> addr = UnixAddress(path, &len);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(Errno("socket(AF_UNIX)"));
  if (path[0] != '@') ::unlink(path.c_str());  // A stale socket of an earlier run.
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), len) != 0 || ::listen(fd, 128) != 0) {
    const std::string why = Errno("bind/listen");
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("unix socket ", path, ": ", why));
  }
  return fd;
}

absl::StatusOr<int> ConnectUnix(const std::string& path, absl::Duration timeout) {
  socklen_t len = 0;
  absl::StatusOr<sockaddr_un> addr = UnixAddress(path, &len);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(Errno("socket(AF_UNIX)"));
  // A Unix connect waits only while the listener's backlog is full, for at most the send
  // timeout (SO_SNDTIMEO bounds it on AF_UNIX).
  SetSocketTimeout(fd, timeout);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), len) != 0) {
    const std::string why = Errno("connect");
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("unix socket ", path, ": ", why));
  }
  return fd;
}

absl::Status SendWithFd(int fd, const void* buf, size_t n, int fd_to_pass) {
  iovec iov{const_cast<void*>(buf), n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
  ssize_t sent;
  do {
    sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return absl::UnavailableError(Errno("sendmsg"));
  // The descriptor went with the first byte; the rest, if cut short, goes plainly.
  if (static_cast<size_t>(sent) < n) {
    const char* rest = static_cast<const char*>(buf) + sent;
    size_t left = n - static_cast<size_t>(sent);
    while (left > 0) {
      const ssize_t w = ::send(fd, rest, left, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return absl::UnavailableError(Errno("send"));
      rest += w;
      left -= static_cast<size_t>(w);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ReceiveWithFd(int fd, void* buf, size_t n) {
  int received_fd = -1;
  size_t got = 0;
  while (got < n) {
    iovec iov{static_cast<char*>(buf) + got, n - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t r = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const bool timed_out = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      const std::string why = r == 0 ? "connection closed" : Errno("recvmsg");
      if (received_fd >= 0) ::close(received_fd);
      if (timed_out) return absl::DeadlineExceededError("unix socket: receive timed out");
      return absl::UnavailableError(absl::StrCat("unix socket: ", why));
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int passed;
        std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (received_fd < 0) {
          received_fd = passed;
        } else {
          ::close(passed);  // Only one is expected.
        }
      }
    }
    got += static_cast<size_t>(r);
  }
  return received_fd;
}

}  // namespace kvcache
