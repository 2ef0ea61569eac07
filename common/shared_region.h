// The same-host data path's building blocks (docs/data-channel.md, "Same-host path"): a
// shared-memory region (a sealed memfd mapped by both processes), this machine's identity,
// and Unix-socket helpers that pass a region's descriptor from the server to the client.
//
// A region is made by the server, one per same-host connection, faulted in once at creation
// (first touch of fresh memory runs at ~0.36 GB/s on this project's VMs, a second at tens of
// GB/s) and then reused request after request. Its size is sealed (F_SEAL_SHRINK |
// F_SEAL_GROW | F_SEAL_SEAL) before the descriptor leaves the server, and the client refuses
// a descriptor without those seals or of another size: neither side can then shrink the
// memory under the other's mapping (which would turn a read into a SIGBUS).
//
// Thread safety: a SharedRegion is immutable once made (its bytes are not: the protocol on
// top says who writes where, and each side checks what it reads).

#ifndef KVCACHE_COMMON_SHARED_REGION_H_
#define KVCACHE_COMMON_SHARED_REGION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvcache {

// Largest region a client maps (a server that announces more is refused).
inline constexpr uint64_t kMaxSharedRegionBytes = uint64_t{1} << 32;

class SharedRegion {
 public:
  // A new sealed memfd of `bytes` (rounded up to a page), mapped read-write and faulted in.
  //   RESOURCE_EXHAUSTED  memfd_create, ftruncate or mmap failed (the message says which).
  static absl::StatusOr<std::unique_ptr<SharedRegion>> Create(uint64_t bytes);
  // Maps a descriptor received from a server (takes ownership of `fd`, closed on failure).
  //   INVALID_ARGUMENT  not sealed against shrinking and growing, or not `bytes` long, or
  //                     `bytes` is 0 or over kMaxSharedRegionBytes.
  //   UNAVAILABLE       mmap failed.
  static absl::StatusOr<std::unique_ptr<SharedRegion>> Map(int fd, uint64_t bytes);

  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  char* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }

  // Whether [offset, offset + length) lies inside the region (overflow-safe).
  bool Contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

 private:
  SharedRegion(int fd, char* data, uint64_t size) : fd_(fd), data_(data), size_(size) {}
  const int fd_;
  char* const data_;
  const uint64_t size_;
};

// This machine and boot: /etc/machine-id (or /var/lib/dbus/machine-id) and
// /proc/sys/kernel/random/boot_id, "machine:boot". Two processes that see the same identity
// run on the same kernel; empty when neither file can be read (then no path is local).
const std::string& LocalHostId();

// Unix stream sockets. `path` starting with '@' names an abstract socket (Linux; no file,
// scoped to the network namespace), anything else a filesystem path (an existing socket
// file there is replaced).
//   INVALID_ARGUMENT  path empty or longer than sun_path; UNAVAILABLE  bind/listen failed.
absl::StatusOr<int> ListenUnix(const std::string& path);
//   UNAVAILABLE  cannot connect.
absl::StatusOr<int> ConnectUnix(const std::string& path, absl::Duration timeout);

// Sends `n` bytes with descriptor `fd_to_pass` attached (SCM_RIGHTS), all in one message.
absl::Status SendWithFd(int fd, const void* buf, size_t n, int fd_to_pass);
// Receives exactly `n` bytes, and the descriptor attached to them (-1 when none came; any
// extra descriptors are closed). UNAVAILABLE on EOF or error, DEADLINE_EXCEEDED on timeout.
absl::StatusOr<int> ReceiveWithFd(int fd, void* buf, size_t n);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_SHARED_REGION_H_
