#include "client/data_connection_internal.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/checksum.h"
#include "common/data_channel_wire.h"
#include "common/little_endian.h"
#include "common/resize_uninitialized.h"
#include "common/socket_io.h"

namespace kvcache {

namespace dc = data_channel;

absl::StatusOr<std::unique_ptr<DataConnection>> DataConnection::Open(const std::string& address,
                                                                     const Key& token,
                                                                     absl::Duration timeout) {
  absl::StatusOr<int> fd = ConnectTcp(address, timeout);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<DataConnection> conn(new DataConnection(*fd));
  char hello[dc::kHelloBytes];
  dc::EncodeHello(token, hello);
  char accepted = 1;
  absl::Status s = WriteFull(*fd, hello, sizeof(hello));
  if (s.ok()) s = ReadFull(*fd, &accepted, 1);
  if (!s.ok() || accepted != 0) {
    return absl::UnavailableError(absl::StrCat("data channel ", address, ": hello refused"));
  }
  return conn;
}

absl::StatusOr<std::unique_ptr<DataConnection>> DataConnection::OpenLocal(
    const std::string& path, const Key& token, absl::Duration timeout) {
  absl::StatusOr<int> fd = ConnectUnix(path, timeout);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<DataConnection> conn(new DataConnection(*fd));
  conn->SetTimeout(timeout);
  char hello[dc::kHelloBytes];
  dc::EncodeHello(token, hello);
  char reply[dc::kLocalHelloReplyBytes];
  absl::Status s = WriteFull(*fd, hello, sizeof(hello));
  absl::StatusOr<int> region_fd = -1;
  if (s.ok()) {
    region_fd = ReceiveWithFd(*fd, reply, sizeof(reply));
    s = region_fd.status();
  }
  if (!s.ok() || reply[0] != 0 || *region_fd < 0) {
    if (s.ok() && *region_fd >= 0) ::close(*region_fd);
    return absl::UnavailableError(absl::StrCat("data channel ", path, ": hello refused",
                                               s.ok() ? "" : ": ", s.message()));
  }
  absl::StatusOr<std::unique_ptr<SharedRegion>> region =
      SharedRegion::Map(*region_fd, GetLittleEndian<uint64_t>(reply + 1));
  if (!region.ok()) {
    return absl::UnavailableError(absl::StrCat("data channel ", path, ": ",
                                               region.status().message()));
  }
  conn->region_ = *std::move(region);
  return conn;
}

DataConnection::~DataConnection() { ::close(fd_); }

absl::Status DataConnection::ReadLocalPayload(uint64_t payload_bytes, CacheBlock* block,
                                              BufferPool* payload_pool, uint64_t* checksum) {
  char raw[dc::kOffsetBytes];
  if (absl::Status s = Transport(Read(raw, sizeof(raw))); !s.ok()) return s;
  const uint64_t offset = GetLittleEndian<uint64_t>(raw);
  // Never trusts the server's offset: outside the region is a broken connection, not a read.
  if (!region_->Contains(offset, payload_bytes)) {
    return Transport(absl::InternalError(absl::StrCat(
        "data channel: block of ", payload_bytes, " bytes at offset ", offset,
        " is outside the ", region_->size(), "-byte shared region")));
  }
  if (payload_pool != nullptr) {
    block->payload = payload_pool->Take(payload_bytes);
  } else {
    ResizeUninitialized(&block->payload, payload_bytes);
  }
  // Checked on the copy: the region is shared, only the copy is ours.
  *checksum = CopyWithChecksum(block->payload.data(), region_->data() + offset, payload_bytes);
  return absl::OkStatus();
}

void DataConnection::SetTimeout(absl::Duration timeout) {
  if (timeout == timeout_) return;
  SetSocketTimeout(fd_, timeout);
  timeout_ = timeout;
}

absl::Status DataConnection::Transport(absl::Status s) {
  if (!s.ok()) broken_ = true;
  return s;
}

absl::Status DataConnection::ReadError() {
  char raw[dc::kErrorHeadBytes];
  if (absl::Status s = Transport(Read(raw, sizeof(raw))); !s.ok()) return s;
  absl::StatusOr<dc::ErrorHead> head = dc::DecodeErrorHead(absl::string_view(raw, sizeof(raw)));
  if (!head.ok()) return Transport(absl::InternalError(head.status().message()));
  std::string message(head->message_bytes, '\0');
  if (absl::Status s = Transport(Read(message.data(), message.size())); !s.ok()) {
    return s;
  }
  // The server may close after an error it could not read past: start afresh next time.
  broken_ = true;
  return absl::Status(head->code, message);
}

absl::Status DataConnection::Get(const Key& ns, absl::Span<const Key> keys,
                                 absl::Duration timeout, std::vector<CacheBlock>* out,
                                 BufferPool* payload_pool) {
  if (keys.empty()) return absl::OkStatus();
  if (keys.size() > dc::kMaxKeysPerGet) {
    return absl::InvalidArgumentError(
        absl::StrCat("Get names ", keys.size(), " keys; at most ", dc::kMaxKeysPerGet));
  }
  SetTimeout(timeout);
  std::string request(1 + kKeyBytes + 4, '\0');
  request[0] = dc::kGet;
  std::memcpy(request.data() + 1, ns.bytes.data(), kKeyBytes);
  dc::PutU32(request.data() + 1 + kKeyBytes, static_cast<uint32_t>(keys.size()));
  iovec iov[2] = {{request.data(), request.size()},
                  {const_cast<Key*>(keys.data()), keys.size() * sizeof(Key)}};
  static_assert(sizeof(Key) == kKeyBytes);
  if (absl::Status s = Transport(WriteFull(fd_, iov, 2)); !s.ok()) return s;
  bool waited_since_block = false;
  for (size_t i = 0;; ++i) {
    char kind;
    if (absl::Status s = Transport(Read(&kind, 1)); !s.ok()) return s;
    if (kind == dc::kEnd) return absl::OkStatus();
    if (kind == dc::kError) return ReadError();
    if (kind == dc::kWait && local() && !waited_since_block) {
      // The region is full of blocks already copied out: let the server reuse it. (At most
      // one wait per block: a server that only ever waits breaks the connection.)
      waited_since_block = true;
      const char ack = dc::kAck;
      if (absl::Status s = Transport(WriteFull(fd_, &ack, 1)); !s.ok()) return s;
      --i;  // Not a block.
      continue;
    }
    if (kind != dc::kBlock || i >= keys.size()) {
      return Transport(absl::InternalError("data channel: unexpected reply"));
    }
    char head[dc::kBlockHeaderBytes];
    if (absl::Status s = Transport(Read(head, sizeof(head))); !s.ok()) return s;
    absl::StatusOr<dc::BlockHeader> header =
        dc::DecodeBlockHeader(absl::string_view(head, sizeof(head)));
    if (!header.ok()) return Transport(absl::InternalError(header.status().message()));
    const dc::BlockHeader& h = *header;
    if (h.key != keys[i] || h.payload_bytes > (uint64_t{1} << 36)) {
      return Transport(absl::InternalError("data channel: block out of order"));
    }
    CacheBlock block;
    block.key = h.key;
    block.parent = h.parent;
    block.checksum = h.checksum;
    block.shape = h.shape;
    uint64_t checksum = 0;
    if (local()) {
      if (absl::Status s = ReadLocalPayload(h.payload_bytes, &block, payload_pool, &checksum);
          !s.ok()) {
        return s;
      }
    } else {
      if (payload_pool != nullptr) {
        block.payload = payload_pool->Take(h.payload_bytes);
      } else {
        ResizeUninitialized(&block.payload, h.payload_bytes);  // Overwritten whole below.
      }
      if (absl::Status s = Transport(Read(block.payload.data(), h.payload_bytes));
          !s.ok()) {
        return s;
      }
      checksum = PayloadChecksum(block.payload);
    }
    if (checksum != h.checksum) {
      // Corrupt in transit: the run ends here, as a miss. The rest of the reply is unread,
      // so the connection cannot be reused.
      broken_ = true;
      return absl::OkStatus();
    }
    out->push_back(std::move(block));
    waited_since_block = false;
  }
}

absl::Status DataConnection::ReadPutReply(CachePutResult* result) {
  char kind;
  if (absl::Status s = Transport(Read(&kind, 1)); !s.ok()) return s;
  if (kind == dc::kError) return ReadError();
  char outcome;
  if (kind != dc::kStored) return Transport(absl::InternalError("data channel: unexpected reply"));
  if (absl::Status s = Transport(Read(&outcome, 1)); !s.ok()) return s;
  switch (static_cast<uint8_t>(outcome)) {
    case dc::kOutcomeStored: ++result->stored; break;
    case dc::kOutcomeAlreadyPresent: ++result->already_present; break;
    default: ++result->not_admitted; break;
  }
  return absl::OkStatus();
}

absl::Status DataConnection::Put(const Key& ns, absl::Span<const CacheBlock> blocks,
                                 absl::Duration timeout, CachePutResult* result, size_t* done) {
  SetTimeout(timeout);
  constexpr size_t kHeadBytes = 1 + kKeyBytes + dc::kBlockHeaderBytes + dc::kOffsetBytes;
  char head[kHeadBytes];
  head[0] = dc::kPut;
  std::memcpy(head + 1, ns.bytes.data(), kKeyBytes);
  if (!local()) {
    for (; *done < blocks.size(); ++*done) {
      const CacheBlock& block = blocks[*done];
      dc::EncodeBlockHeader({block.key, block.parent, PayloadChecksum(block.payload),
                             block.shape, block.payload.size()},
                            head + 1 + kKeyBytes);
      iovec iov[2] = {{head, kHeadBytes - dc::kOffsetBytes},
                      {const_cast<char*>(block.payload.data()), block.payload.size()}};
      if (absl::Status s = Transport(WriteFull(fd_, iov, 2)); !s.ok()) return s;
      if (absl::Status s = ReadPutReply(result); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  // Same-host: the payloads of as many blocks as the region holds, then their requests in
  // one write, then their answers; the region is not written again until all are in.
  std::string requests;
  while (*done < blocks.size()) {
    requests.clear();
    uint64_t cursor = 0;
    size_t end = *done;
    for (; end < blocks.size(); ++end) {
      const CacheBlock& block = blocks[end];
      if (!region_->Contains(cursor, block.payload.size())) break;
      const uint64_t checksum =
          CopyWithChecksum(region_->data() + cursor, block.payload.data(), block.payload.size());
      dc::EncodeBlockHeader({block.key, block.parent, checksum, block.shape,
                             block.payload.size()},
                            head + 1 + kKeyBytes);
      PutLittleEndian<uint64_t>(head + 1 + kKeyBytes + dc::kBlockHeaderBytes, cursor);
      requests.append(head, kHeadBytes);
      cursor = dc::NextRegionOffset(cursor + block.payload.size());
    }
    if (end == *done) {
      // Larger than the region (which holds the server's largest block): the server's own
      // answer says so over TCP.
      return absl::UnavailableError("data channel: block larger than the shared region");
    }
    if (absl::Status s = Transport(WriteFull(fd_, requests.data(), requests.size()));
        !s.ok()) {
      return s;
    }
    for (; *done < end; ++*done) {
      if (absl::Status s = ReadPutReply(result); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace kvcache
