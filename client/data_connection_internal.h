// One connection of the bulk data channel (common/data_channel_wire.h), client side.
// Internal to the client library: CacheClient negotiates the channel over gRPC and keeps a
// small pool of these. A connection is either TCP (payloads on the socket) or same-host (a
// Unix socket, payloads through a shared-memory region the server passed at the hello:
// docs/data-channel.md, "Same-host path"); Get and Put behave the same on both.
//
// Thread safety: one caller at a time. Once broken() (a transport failure, or an error reply
// after which the server may close) the connection must be dropped.

#ifndef KVCACHE_CLIENT_DATA_CONNECTION_INTERNAL_H_
#define KVCACHE_CLIENT_DATA_CONNECTION_INTERNAL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/cache_client.h"
#include "common/shared_region.h"
#include "common/socket_io.h"

namespace kvcache {

class DataConnection final {
 public:
  //   UNAVAILABLE, DEADLINE_EXCEEDED  cannot connect, or the server refused the hello.
  static absl::StatusOr<std::unique_ptr<DataConnection>> Open(const std::string& address,
                                                              const Key& token,
                                                              absl::Duration timeout);
  // A same-host connection to the server's Unix socket `path`.
  //   UNAVAILABLE  cannot connect, the hello was refused, or the region the server passed
  //                is unusable (unsealed, of another size, not mappable).
  static absl::StatusOr<std::unique_ptr<DataConnection>> OpenLocal(const std::string& path,
                                                                   const Key& token,
                                                                   absl::Duration timeout);
  ~DataConnection();
  DataConnection(const DataConnection&) = delete;
  DataConnection& operator=(const DataConnection&) = delete;

  // The leading blocks of `keys` the server holds, appended to `out` (payloads received into
  // buffers of `payload_pool` when not null). A block that arrives
  // corrupt (checksum) or out of order ends the run and breaks the connection.
  absl::Status Get(const Key& ns, absl::Span<const Key> keys, absl::Duration timeout,
                   std::vector<CacheBlock>* out, BufferPool* payload_pool = nullptr);

  // Stores blocks[*done..] in order (checksums computed here), adding to `result` and
  // advancing `*done` past each block the server answered for; stops at the first error.
  // Over TCP one block per round trip; same-host, as many blocks as the region holds per
  // round trip (the server closes the connection after an error, so nothing after a failed
  // block is stored).
  absl::Status Put(const Key& ns, absl::Span<const CacheBlock> blocks, absl::Duration timeout,
                   CachePutResult* result, size_t* done);

  bool broken() const { return broken_; }
  bool local() const { return region_ != nullptr; }

 private:
  explicit DataConnection(int fd) : fd_(fd), reader_(fd) {}
  // The payload of a same-host Get block, after its header: copied out of the region.
  // `checksum`: of the copy.
  absl::Status ReadLocalPayload(uint64_t payload_bytes, CacheBlock* block,
                                BufferPool* payload_pool, uint64_t* checksum);
  // Marks the connection broken when `s` is a transport failure.
  absl::Status Transport(absl::Status s);
  // Reads the body of a kError reply into a status.
  absl::Status ReadError();
  // Reads one Put's answer into `result` (a kError into the status returned).
  absl::Status ReadPutReply(CachePutResult* result);
  // Reads exactly `n` bytes through reader_: a reply's frames (kind, header, offset) cost
  // one recv(2). UNAVAILABLE on EOF or error, DEADLINE_EXCEEDED on a timeout (the socket's).
  absl::Status Read(void* dst, size_t n) { return reader_.Read(dst, n); }
  // Sets the socket timeouts (a syscall each) only when `timeout` changes.
  void SetTimeout(absl::Duration timeout);

  const int fd_;
  bool broken_ = false;
  std::unique_ptr<SharedRegion> region_;  // Same-host connections only.
  absl::Duration timeout_ = absl::InfiniteDuration();  // The socket's, as last set.
  SocketReader reader_;
};

}  // namespace kvcache

#endif  // KVCACHE_CLIENT_DATA_CONNECTION_INTERNAL_H_
