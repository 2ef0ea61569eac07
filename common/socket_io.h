// Blocking socket I/O helpers for the data channel: whole reads and writes, with a
// deadline applied as socket timeouts. Thread safety: per socket, one reader and one writer.

#ifndef KVCACHE_COMMON_SOCKET_IO_H_
#define KVCACHE_COMMON_SOCKET_IO_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvcache {

// Reads exactly `n` bytes. UNAVAILABLE on EOF or error, DEADLINE_EXCEEDED on a timeout.
absl::Status ReadFull(int fd, void* buf, size_t n);
// Writes all of `iov` (modified). UNAVAILABLE on error, DEADLINE_EXCEEDED on a timeout.
absl::Status WriteFull(int fd, struct iovec* iov, int iovcnt);
absl::Status WriteFull(int fd, const void* buf, size_t n);

// As above, but the whole transfer must end by `deadline`, however the bytes trickle in or out
// (socket timeouts restart on every partial transfer: a peer sending a byte just under the
// timeout would hold the connection forever). DEADLINE_EXCEEDED once `deadline` passes;
// UNAVAILABLE on EOF, error, or a shutdown(2) of the socket from another thread.
absl::Status ReadFull(int fd, void* buf, size_t n, absl::Time deadline);
absl::Status WriteFull(int fd, struct iovec* iov, int iovcnt, absl::Time deadline);
absl::Status WriteFull(int fd, const void* buf, size_t n, absl::Time deadline);

// Reads a stream socket through a small buffer, so that a message's small frames (an op
// byte, a namespace, a header) cost one recv(2) between them instead of one each. A read of
// at least a buffer's size (a payload) goes straight into the caller's memory once the
// buffered bytes are used. Errors as ReadFull's. Thread safety: one reader per socket.
class SocketReader {
 public:
  explicit SocketReader(int fd) : fd_(fd) {}
  SocketReader(const SocketReader&) = delete;
  SocketReader& operator=(const SocketReader&) = delete;

  // Blocking receives; the socket's own timeout (SO_RCVTIMEO) bounds each one.
  absl::Status Read(void* dst, size_t n) { return Read(dst, n, nullptr); }
  // The whole read must end by `deadline` (poll(2) only when nothing is there yet).
  absl::Status Read(void* dst, size_t n, absl::Time deadline) { return Read(dst, n, &deadline); }

 private:
  absl::Status Read(void* dst, size_t n, const absl::Time* deadline);

  const int fd_;
  char buffer_[4096];
  size_t pos_ = 0;  // buffer_[pos_, end_) is received, not yet read.
  size_t end_ = 0;
};

// Splits "host:port" into its host (a bracketed IPv6 host loses its brackets; may be empty)
// and its numeric port. INVALID_ARGUMENT when there is no colon or the port is not a
// number in [0, 65535].
absl::Status SplitHostPort(const std::string& address, std::string* host, uint16_t* port);

// Turns on TCP_NODELAY (ConnectTcp does it for the sockets it makes; this is for accepted ones).
void SetTcpNoDelay(int fd);

// Sets SO_RCVTIMEO and SO_SNDTIMEO (InfiniteDuration: none).
void SetSocketTimeout(int fd, absl::Duration timeout);

// Splits "host:port" or "[v6]:port" into the host (without brackets) and the port text;
// false when there is no ':' or the port is empty.
bool SplitHostPort(const std::string& address, std::string* host, std::string* port);

// The address a client should connect to for a server-advertised `advertised` "host:port":
// itself, unless its host is unspecified (empty, 0.0.0.0 or ::, as when the server listens
// on every interface), in which case the host the client dialled (`dialled`, the gRPC
// target: "host:port", "dns:///host:port", "ipv4:host:port") with the advertised port.
std::string ReachableAddress(const std::string& advertised, const std::string& dialled);

// Connects a TCP socket to "host:port" (IPv4 or IPv6 literal, or a name), with TCP_NODELAY.
absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout);

// Listens on "host:port" (port 0: any). Returns the socket and the bound "host:port".
absl::StatusOr<std::pair<int, std::string>> ListenTcp(const std::string& address);

// Binds "host:port" once and lets it go: UNAVAILABLE, with the reason ("Address already in
// use"), where a server could not listen. For a plain message before gRPC logs its own.
absl::Status CheckCanListen(const std::string& address);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_SOCKET_IO_H_
