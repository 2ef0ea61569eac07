#include "bench/throughput_targets.h"

#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/buffer_pool.h"
#include "client/cache_client.h"
#include "common/socket_io.h"

namespace kvcache {
namespace bench {
namespace {

// What each kvcache connection's payload pool keeps for reuse: a 64-key Get of 1 MiB blocks,
// or 16 of 4 MiB.
constexpr size_t kPayloadPoolBytes = 64 << 20;

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string Bytes32(uint64_t seed) {
  std::string out(32, '\0');
  for (int i = 0; i < 4; ++i) {
    const uint64_t w = Mix(seed + static_cast<uint64_t>(i) * 0x2545f4914f6cdd1dull);
    std::memcpy(out.data() + 8 * i, &w, 8);
  }
  return out;
}

Key ToKey(const std::string& raw) {
  Key k;
  std::memcpy(k.bytes.data(), raw.data(), kKeyBytes);
  return k;
}

// ---------------------------------------------------------------------------------------
// kvcache, through the public client library (the path the worker uses).

class KvcacheConnection final : public TargetConnection {
 public:
  KvcacheConnection(std::unique_ptr<CacheClient> client, const KeySpace& keys,
                    std::shared_ptr<BufferPool> pool)
      : client_(std::move(client)),
        keys_(keys),
        ns_(ToKey(KvcacheNamespaceBytes(keys))),
        pool_(std::move(pool)) {
    put_.resize(1);
  }

  absl::Status Put(uint64_t id, std::string* value) override {
    put_[0].key = ToKey(KvcacheKeyBytes(keys_, id));
    put_[0].payload.swap(*value);  // Borrowed for the call: no copy in the harness.
    absl::StatusOr<CachePutResult> r = client_->Put(ns_, put_);
    put_[0].payload.swap(*value);
    if (!r.ok()) return r.status();
    if (r->stored + r->already_present != 1) {
      return absl::InternalError("kvcache Put: block not stored");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> Get(uint64_t id, size_t expected_bytes) override {
    const Key key = ToKey(KvcacheKeyBytes(keys_, id));
    GiveBackLast();
    absl::StatusOr<std::vector<CacheBlock>> r = client_->Get(ns_, absl::MakeConstSpan(&key, 1));
    if (!r.ok()) return r.status();
    if (r->empty()) return absl::NotFoundError("kvcache: miss");
    last_ = *std::move(r);
    return absl::string_view(last_[0].payload);
  }

  absl::StatusOr<std::vector<absl::string_view>> GetMany(absl::Span<const uint64_t> ids,
                                                         size_t expected_bytes) override {
    get_keys_.clear();
    for (uint64_t id : ids) get_keys_.push_back(ToKey(KvcacheKeyBytes(keys_, id)));
    GiveBackLast();
    absl::StatusOr<std::vector<CacheBlock>> r = client_->Get(ns_, get_keys_);
    if (!r.ok()) return r.status();
    last_ = *std::move(r);
    std::vector<absl::string_view> out;
    for (const CacheBlock& b : last_) out.push_back(b.payload);
    return out;
  }

 private:
  // The previous Get's payloads go back to the pool: the caller is done with their views.
  void GiveBackLast() {
    for (CacheBlock& b : last_) pool_->Give(std::move(b.payload));
    last_.clear();
  }

  std::unique_ptr<CacheClient> client_;
  const KeySpace keys_;
  const Key ns_;
  const std::shared_ptr<BufferPool> pool_;
  std::vector<CacheBlock> put_;
  std::vector<CacheBlock> last_;
  std::vector<Key> get_keys_;
};

// ---------------------------------------------------------------------------------------
// Redis, through hiredis (its standard blocking client; TCP_NODELAY is hiredis' default).

class RedisConnection final : public TargetConnection {
 public:
  RedisConnection(redisContext* ctx, const KeySpace& keys) : ctx_(ctx), keys_(keys) {}
  ~RedisConnection() override {
    if (reply_ != nullptr) freeReplyObject(reply_);
    redisFree(ctx_);
  }

  absl::Status Put(uint64_t id, std::string* value) override {
    const std::string key = absl::BytesToHexString(KvcacheKeyBytes(keys_, id));
    Release();
    reply_ = static_cast<redisReply*>(redisCommand(ctx_, "SET %b %b", key.data(), key.size(),
                                                   value->data(), value->size()));
    if (reply_ == nullptr) return absl::UnavailableError(absl::StrCat("redis: ", ctx_->errstr));
    if (reply_->type != REDIS_REPLY_STATUS) {
      return absl::InternalError(absl::StrCat("redis SET: ", ReplyText()));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> Get(uint64_t id, size_t expected_bytes) override {
    const std::string key = absl::BytesToHexString(KvcacheKeyBytes(keys_, id));
    Release();
    reply_ = static_cast<redisReply*>(redisCommand(ctx_, "GET %b", key.data(), key.size()));
    if (reply_ == nullptr) return absl::UnavailableError(absl::StrCat("redis: ", ctx_->errstr));
    if (reply_->type == REDIS_REPLY_NIL) return absl::NotFoundError("redis: miss");
    if (reply_->type != REDIS_REPLY_STRING) {
      return absl::InternalError(absl::StrCat("redis GET: ", ReplyText()));
    }
    return absl::string_view(reply_->str, reply_->len);
  }

 private:
  void Release() {
    if (reply_ != nullptr) freeReplyObject(reply_);
    reply_ = nullptr;
  }
  std::string ReplyText() const {
    if (reply_->type == REDIS_REPLY_ERROR) return std::string(reply_->str, reply_->len);
    return absl::StrCat("unexpected reply type ", reply_->type);
  }

  redisContext* const ctx_;
  const KeySpace keys_;
  redisReply* reply_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// memcached, through libmemcached (text protocol, TCP_NODELAY on).

class MemcachedConnection final : public TargetConnection {
 public:
  MemcachedConnection(memcached_st* mc, const KeySpace& keys) : mc_(mc), keys_(keys) {}
  ~MemcachedConnection() override {
    std::free(value_);
    memcached_free(mc_);
  }

  absl::Status Put(uint64_t id, std::string* value) override {
    const std::string key = absl::BytesToHexString(KvcacheKeyBytes(keys_, id));
    const memcached_return_t rc =
        memcached_set(mc_, key.data(), key.size(), value->data(), value->size(), 0, 0);
    if (rc != MEMCACHED_SUCCESS) {
      return absl::InternalError(absl::StrCat("memcached set: ", memcached_strerror(mc_, rc)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> Get(uint64_t id, size_t expected_bytes) override {
    const std::string key = absl::BytesToHexString(KvcacheKeyBytes(keys_, id));
    std::free(value_);
    value_ = nullptr;
    size_t len = 0;
    uint32_t flags = 0;
    memcached_return_t rc = MEMCACHED_SUCCESS;
    value_ = memcached_get(mc_, key.data(), key.size(), &len, &flags, &rc);
    if (rc == MEMCACHED_NOTFOUND) return absl::NotFoundError("memcached: miss");
    if (rc != MEMCACHED_SUCCESS || value_ == nullptr) {
      return absl::InternalError(absl::StrCat("memcached get: ", memcached_strerror(mc_, rc)));
    }
    return absl::string_view(value_, len);
  }

 private:
  memcached_st* const mc_;
  const KeySpace keys_;
  char* value_ = nullptr;
};

// ---------------------------------------------------------------------------------------
// Raw TCP request/response: the same bytes with no protocol work at all.
//
// Request: 16-byte header {u32 magic, u32 op (1 get, 2 put), u64 length}, then, for a put,
// `length` bytes. Reply: the same header, then, for a get, `length` bytes.

constexpr uint32_t kRawMagic = 0x6b767470;  // "kvtp"
constexpr uint32_t kRawGet = 1;
constexpr uint32_t kRawPut = 2;
constexpr uint64_t kRawMaxBytes = 64ull << 20;

struct RawHeader {
  uint32_t magic;
  uint32_t op;
  uint64_t length;
};
static_assert(sizeof(RawHeader) == 16);

// Sends `header` then `body` (may be empty) with as few system calls as the kernel allows.
absl::Status SendRaw(int fd, const RawHeader& header, absl::string_view body) {
  iovec iov[2] = {{const_cast<RawHeader*>(&header), sizeof(header)},
                  {const_cast<char*>(body.data()), body.size()}};
  return WriteFull(fd, iov, body.empty() ? 1 : 2);
}

class RawTcpConnection final : public TargetConnection {
 public:
  explicit RawTcpConnection(int fd) : fd_(fd) {}
  ~RawTcpConnection() override { close(fd_); }

  absl::Status Put(uint64_t id, std::string* value) override {
    RawHeader h{kRawMagic, kRawPut, value->size()};
    if (!SendRaw(fd_, h, *value).ok()) return absl::UnavailableError("rawtcp: send failed");
    RawHeader ack;
    if (!ReadFull(fd_, &ack, sizeof(ack)).ok() || ack.magic != kRawMagic ||
        ack.length != value->size()) {
      return absl::UnavailableError("rawtcp: bad put reply");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> Get(uint64_t id, size_t expected_bytes) override {
    RawHeader h{kRawMagic, kRawGet, expected_bytes};
    if (!SendRaw(fd_, h, {}).ok()) return absl::UnavailableError("rawtcp: send failed");
    RawHeader reply;
    if (!ReadFull(fd_, &reply, sizeof(reply)).ok() || reply.magic != kRawMagic ||
        reply.length > kRawMaxBytes) {
      return absl::UnavailableError("rawtcp: bad get reply");
    }
    if (buffer_.size() < reply.length) buffer_.resize(reply.length);
    if (!ReadFull(fd_, buffer_.data(), reply.length).ok()) {
      return absl::UnavailableError("rawtcp: short get reply");
    }
    return absl::string_view(buffer_.data(), reply.length);
  }

  bool StoresValues() const override { return false; }

 private:
  const int fd_;
  std::string buffer_;
};

void ServeRawConnection(int fd) {
  SetTcpNoDelay(fd);
  std::string buffer;
  RawHeader h;
  while (ReadFull(fd, &h, sizeof(h)).ok()) {
    if (h.magic != kRawMagic || h.length > kRawMaxBytes) break;
    if (buffer.size() < h.length) buffer.resize(h.length, 'v');
    if (h.op == kRawGet) {
      if (!SendRaw(fd, h, absl::string_view(buffer.data(), h.length)).ok()) break;
    } else if (h.op == kRawPut) {
      if (!ReadFull(fd, buffer.data(), h.length).ok()) break;
      if (!SendRaw(fd, h, {}).ok()) break;
    } else {
      break;
    }
  }
  close(fd);
}

}  // namespace

absl::StatusOr<std::vector<absl::string_view>> TargetConnection::GetMany(
    absl::Span<const uint64_t> ids, size_t expected_bytes) {
  if (ids.size() != 1) {
    return absl::UnimplementedError("several keys a Get: kvcache targets only");
  }
  absl::StatusOr<absl::string_view> v = Get(ids[0], expected_bytes);
  if (!v.ok()) return v.status();
  return std::vector<absl::string_view>{*v};
}

absl::StatusOr<TargetKind> ParseTargetKind(absl::string_view name) {
  if (name == "kvcache") return TargetKind::kKvcache;
  if (name == "kvcache-grpc") return TargetKind::kKvcacheGrpc;
  if (name == "kvcache-tcp") return TargetKind::kKvcacheTcp;
  if (name == "redis") return TargetKind::kRedis;
  if (name == "memcached") return TargetKind::kMemcached;
  if (name == "rawtcp") return TargetKind::kRawTcp;
  return absl::InvalidArgumentError(absl::StrCat(
      "--target=", name,
      " is not one of kvcache, kvcache-tcp, kvcache-grpc, redis, memcached, rawtcp"));
}

absl::string_view TargetName(TargetKind kind) {
  switch (kind) {
    case TargetKind::kKvcache: return "kvcache";
    case TargetKind::kKvcacheGrpc: return "kvcache-grpc";
    case TargetKind::kKvcacheTcp: return "kvcache-tcp";
    case TargetKind::kRedis: return "redis";
    case TargetKind::kMemcached: return "memcached";
    case TargetKind::kRawTcp: return "rawtcp";
  }
  return "?";
}

std::string KvcacheKeyBytes(const KeySpace& keys, uint64_t id) {
  return Bytes32(Mix(keys.nonce) ^ Mix(id ^ 0x6b657973ull));
}

std::string KvcacheNamespaceBytes(const KeySpace& keys) {
  return Bytes32(Mix(keys.nonce ^ 0x6e616d657370ull));
}

absl::StatusOr<std::unique_ptr<TargetConnection>> ConnectTarget(TargetKind kind,
                                                                const std::string& addr,
                                                                const KeySpace& keys,
                                                                const TlsClientOptions& tls) {
  switch (kind) {
    case TargetKind::kKvcache:
    case TargetKind::kKvcacheGrpc:
    case TargetKind::kKvcacheTcp: {
      CacheClientOptions options;
      options.target = addr;
      options.use_data_channel = kind != TargetKind::kKvcacheGrpc;
      options.use_local_path = kind == TargetKind::kKvcache;
      options.tls = tls;
      // Payloads received into reused buffers, as kvcache-worker's are (its KV pages).
      options.payload_pool = std::make_shared<BufferPool>(kPayloadPoolBytes);
      absl::StatusOr<std::unique_ptr<CacheClient>> client = NewCacheClient(options);
      if (!client.ok()) return client.status();
      return std::make_unique<KvcacheConnection>(*std::move(client), keys, options.payload_pool);
    }
    case TargetKind::kRedis: {
      std::string host;
      uint16_t port = 0;
      if (absl::Status s = SplitHostPort(addr, &host, &port); !s.ok()) return s;
      const timeval timeout{5, 0};
      redisContext* ctx = redisConnectWithTimeout(host.c_str(), port, timeout);
      if (ctx == nullptr || ctx->err) {
        std::string why = ctx ? ctx->errstr : "out of memory";
        if (ctx) redisFree(ctx);
        return absl::UnavailableError(absl::StrCat("redis at ", addr, ": ", why));
      }
      redisSetTimeout(ctx, timeout);
      return std::make_unique<RedisConnection>(ctx, keys);
    }
    case TargetKind::kMemcached: {
      std::string host;
      uint16_t port = 0;
      if (absl::Status s = SplitHostPort(addr, &host, &port); !s.ok()) return s;
      memcached_st* mc = memcached_create(nullptr);
      if (mc == nullptr) return absl::ResourceExhaustedError("memcached_create failed");
      memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
      if (memcached_server_add(mc, host.c_str(), port) != MEMCACHED_SUCCESS) {
        memcached_free(mc);
        return absl::InvalidArgumentError(absl::StrCat("memcached: bad server ", addr));
      }
      return std::make_unique<MemcachedConnection>(mc, keys);
    }
    case TargetKind::kRawTcp: {
      absl::StatusOr<int> fd = ConnectTcp(addr, absl::InfiniteDuration());
      if (!fd.ok()) {
        return absl::UnavailableError(
            absl::StrCat("cannot connect to ", addr, ": ", fd.status().message()));
      }
      return std::make_unique<RawTcpConnection>(*fd);
    }
  }
  return absl::InvalidArgumentError("unknown target");
}

absl::Status ServeRawTcp(const std::string& listen) {
  absl::StatusOr<std::pair<int, std::string>> listening = ListenTcp(listen);
  if (!listening.ok()) {
    return absl::UnavailableError(absl::StrCat("rawtcp: ", listening.status().message()));
  }
  const int fd = listening->first;
  std::cout << "kvcache-bench rawtcp: listening on " << listening->second << std::endl;
  while (true) {
    const int conn = accept(fd, nullptr, nullptr);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return absl::UnavailableError(absl::StrCat("rawtcp: accept: ", std::strerror(errno)));
    }
    std::thread(ServeRawConnection, conn).detach();
  }
}

}  // namespace bench
}  // namespace kvcache
