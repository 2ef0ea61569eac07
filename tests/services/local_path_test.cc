// The same-host path (docs/data-channel.md, "Same-host path"): a real server on loopback with
// its Unix socket and a real client in this process. The client picks the path by itself
// (counted), falls back when it is off on either side or unreachable (counted), and the
// bytes come back intact, across a Get larger than the region (the server waits for the
// client's ack). Raw peers check the rest: the server refuses Put offsets outside the region,
// the region a client receives is sealed, the client refuses an unsealed or mis-sized region
// and an out-of-bounds offset from a lying server (an error, never a crash), and a Get's
// copy in the region stays intact while the blocks it came from are evicted and their arena
// buffers recycled.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cache_client.h"
#include "client/data_connection_internal.h"
#include "common/checksum.h"
#include "common/data_channel_wire.h"
#include "common/little_endian.h"
#include "common/shared_region.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"
#include "services/cache_server.h"
#include "services/data_channel_server.h"
#include "services/metrics.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

namespace dc = data_channel;
using testing::TestKey;
using testing::TestPayload;
using testing::TestShape;

constexpr uint64_t kMaxBlockBytes = 256 << 10;
constexpr uint64_t kRegionBytes = 1 << 20;  // Four max-size blocks: a long Get must wait.

std::vector<CacheBlock> Blocks(size_t n, size_t size, uint64_t seed) {
  std::vector<CacheBlock> blocks;
  for (size_t i = 0; i < n; ++i) {
    CacheBlock b;
    b.key = TestKey(seed * 1000 + i);
    if (i > 0) b.parent = blocks.back().key;
    b.payload = TestPayload(size - i * 64, seed * 1000 + i);  // Sizes differ: offsets move.
    b.shape = TestShape(b.payload.size());
    blocks.push_back(std::move(b));
  }
  return blocks;
}

std::vector<Key> KeysOf(const std::vector<CacheBlock>& blocks) {
  std::vector<Key> keys;
  for (const CacheBlock& b : blocks) keys.push_back(b.key);
  return keys;
}

class LocalPathTest : public ::testing::Test {
 protected:
  void Start(const std::string& local_listen) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.data_listen = "127.0.0.1:0";
    o.data_channel.local_listen = local_listen;
    o.data_channel.local_region_bytes = kRegionBytes;
    o.store.ram.capacity_bytes = 64 << 20;
    o.store.max_block_bytes = kMaxBlockBytes;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<CacheClient> Client(bool use_local_path = true) {
    CacheClientOptions o;
    o.target = server_->address();
    o.use_local_path = use_local_path;
    return *NewCacheClient(o);
  }

  // Puts 12 blocks (about 3 MiB: three regions' worth) and gets them back, compared byte for
  // byte.
  void RoundTrip(CacheClient* client, uint64_t seed) {
    const Key ns = TestKey(seed, 9);
    std::vector<CacheBlock> blocks = Blocks(12, kMaxBlockBytes, seed);
    absl::StatusOr<CachePutResult> put = client->Put(ns, blocks);
    ASSERT_TRUE(put.ok()) << put.status();
    EXPECT_EQ(put->stored, blocks.size());
    absl::StatusOr<std::vector<CacheBlock>> got = client->Get(ns, KeysOf(blocks));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i) {
      EXPECT_EQ((*got)[i].key, blocks[i].key);
      EXPECT_TRUE((*got)[i].payload == blocks[i].payload) << "block " << i;
      EXPECT_EQ((*got)[i].parent, blocks[i].parent);
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<CacheServer> server_;
};

TEST_F(LocalPathTest, SameHostClientUsesSharedMemory) {
  ASSERT_FALSE(LocalHostId().empty()) << "no /etc/machine-id nor boot_id on this machine";
  Start("auto");
  std::unique_ptr<CacheClient> client = Client();
  RoundTrip(client.get(), 1);
  EXPECT_EQ(client->local_path_calls(), 2u);  // The Put and the Get.
  EXPECT_EQ(client->local_path_fallbacks(), 0u);
  EXPECT_EQ(client->data_channel_fallbacks(), 0u);
}

TEST_F(LocalPathTest, ClientOptionOffUsesTcp) {
  Start("auto");
  std::unique_ptr<CacheClient> client = Client(/*use_local_path=*/false);
  RoundTrip(client.get(), 2);
  EXPECT_EQ(client->local_path_calls(), 0u);
  EXPECT_EQ(client->local_path_fallbacks(), 0u);
  EXPECT_EQ(client->data_channel_fallbacks(), 0u);
}

TEST_F(LocalPathTest, ServerWithoutLocalSocketServesOverTcp) {
  Start("off");
  std::unique_ptr<CacheClient> client = Client();
  RoundTrip(client.get(), 3);
  EXPECT_EQ(client->local_path_calls(), 0u);
  EXPECT_EQ(client->local_path_fallbacks(), 0u);
  EXPECT_EQ(client->data_channel_fallbacks(), 0u);
}

TEST_F(LocalPathTest, UnreachableSocketFallsBackToTcpCounted) {
  const std::string path = dir_.Sub("dc.sock");
  Start(path);
  ASSERT_EQ(::unlink(path.c_str()), 0);  // Advertised, but nobody can connect any more.
  std::unique_ptr<CacheClient> client = Client();
  RoundTrip(client.get(), 4);
  EXPECT_EQ(client->local_path_calls(), 0u);
  EXPECT_GE(client->local_path_fallbacks(), 1u);
  EXPECT_EQ(client->data_channel_fallbacks(), 0u);  // The TCP channel took them, not gRPC.
}

TEST_F(LocalPathTest, ReturnsToSharedMemoryOnceItWorksAgain) {
  const std::string path = dir_.Sub("dc.sock");
  Start(path);
  ASSERT_EQ(::rename(path.c_str(), (path + ".away").c_str()), 0);
  std::unique_ptr<CacheClient> client = Client();
  RoundTrip(client.get(), 5);  // Over TCP; its connections are pooled.
  EXPECT_EQ(client->local_path_calls(), 0u);
  EXPECT_EQ(client->local_path_fallbacks(), 1u);
  ASSERT_EQ(::rename((path + ".away").c_str(), path.c_str()), 0);
  absl::SleepFor(absl::Seconds(5.5));  // The client's retry interval.
  RoundTrip(client.get(), 6);  // The pooled TCP connections are dropped, not reused.
  EXPECT_EQ(client->local_path_calls(), 2u);
  EXPECT_EQ(client->local_path_fallbacks(), 1u);
}

// ---------------------------------------------------------------------------------------
// Raw peers against the data channel server alone.

class LocalPathRawTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TieredStoreOptions so;
    so.ram.capacity_bytes = 4 << 20;
    so.ram.arena = true;  // Evicted blocks' buffers are recycled at once.
    so.max_block_bytes = kMaxBlockBytes;
    store_ = *NewTieredStore(so);
    metrics_ = std::make_unique<ServerMetrics>(store_.get());
    DataChannelOptions options;
    options.local_listen = "auto";
    options.local_region_bytes = kRegionBytes;
    absl::StatusOr<std::unique_ptr<DataChannelServer>> server = StartDataChannelServer(
        "127.0.0.1:0", store_.get(), metrics_.get(), &access_, &tenants_, "", options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    token_ = *access_.IssueDataToken(Principal{"", Role::kAdmin, "test", ""});
  }
  void TearDown() override { server_->Shutdown(); }

  // A raw same-host connection: its socket and its mapped region.
  struct Raw {
    int fd = -1;
    std::unique_ptr<SharedRegion> region;
    ~Raw() {
      if (fd >= 0) ::close(fd);
    }
  };
  void Connect(Raw* raw) {
    absl::StatusOr<int> fd = ConnectUnix(server_->local_address(), absl::Seconds(5));
    ASSERT_TRUE(fd.ok()) << fd.status();
    raw->fd = *fd;
    char hello[dc::kHelloBytes];
    dc::EncodeHello(token_, hello);
    ASSERT_TRUE(WriteFull(raw->fd, hello, sizeof(hello)).ok());
    char reply[dc::kLocalHelloReplyBytes];
    absl::StatusOr<int> region_fd = ReceiveWithFd(raw->fd, reply, sizeof(reply));
    ASSERT_TRUE(region_fd.ok()) << region_fd.status();
    ASSERT_GE(*region_fd, 0);
    // Sealed before it left the server: neither side can shrink it under the other.
    const int seals = ::fcntl(*region_fd, F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    absl::StatusOr<std::unique_ptr<SharedRegion>> region =
        SharedRegion::Map(*region_fd, GetLittleEndian<uint64_t>(reply + 1));
    ASSERT_TRUE(region.ok()) << region.status();
    raw->region = *std::move(region);
    EXPECT_EQ(raw->region->size(), kRegionBytes);
  }

  // Sends a same-host PUT of `payload` placed at `offset` in the region (written there
  // first when it fits), claiming `payload_bytes`. Returns the write's status.
  absl::Status SendPutMayFail(Raw* raw, const Key& key, const std::string& payload,
                              uint64_t offset, uint64_t payload_bytes, bool flip_a_byte) {
    if (raw->region->Contains(offset, payload.size())) {
      std::memcpy(raw->region->data() + offset, payload.data(), payload.size());
      if (flip_a_byte) raw->region->data()[offset + 10] ^= 1;
    }
    char head[1 + kKeyBytes + dc::kBlockHeaderBytes + dc::kOffsetBytes];
    head[0] = dc::kPut;
    std::memcpy(head + 1, ns_.bytes.data(), kKeyBytes);
    dc::EncodeBlockHeader({key, std::nullopt, PayloadChecksum(payload), TestShape(payload_bytes),
                           payload_bytes},
                          head + 1 + kKeyBytes);
    PutLittleEndian<uint64_t>(head + 1 + kKeyBytes + dc::kBlockHeaderBytes, offset);
    return WriteFull(raw->fd, head, sizeof(head));
  }
  void SendPut(Raw* raw, const Key& key, const std::string& payload, uint64_t offset,
               uint64_t payload_bytes, bool flip_a_byte = false) {
    ASSERT_TRUE(SendPutMayFail(raw, key, payload, offset, payload_bytes, flip_a_byte).ok());
  }

  // The reply's first byte, and the error code when it is kError.
  std::pair<char, absl::StatusCode> ReadReply(int fd) {
    char kind = 0;
    if (!ReadFull(fd, &kind, 1, absl::Now() + absl::Seconds(10)).ok()) {
      return {0, absl::StatusCode::kUnavailable};
    }
    if (kind == dc::kStored) {
      char outcome;
      EXPECT_TRUE(ReadFull(fd, &outcome, 1).ok());
      return {kind, absl::StatusCode::kOk};
    }
    if (kind != dc::kError) return {kind, absl::StatusCode::kOk};
    char head[dc::kErrorHeadBytes];
    EXPECT_TRUE(ReadFull(fd, head, sizeof(head)).ok());
    absl::StatusOr<dc::ErrorHead> h = dc::DecodeErrorHead(absl::string_view(head, sizeof(head)));
    std::string message(h->message_bytes, '\0');
    EXPECT_TRUE(ReadFull(fd, message.data(), message.size()).ok());
    return {kind, h->code};
  }

  bool Closed(int fd) {
    char byte;
    return !ReadFull(fd, &byte, 1, absl::Now() + absl::Seconds(10)).ok();
  }

  std::unique_ptr<TieredStore> store_;
  std::unique_ptr<ServerMetrics> metrics_;
  AccessControl access_;  // Auth off: the anonymous admin.
  TenantBook tenants_;
  std::unique_ptr<DataChannelServer> server_;
  Key token_;
  const Key ns_ = TestKey(77, 3);
};

TEST_F(LocalPathRawTest, PutFromTheRegionIsStored) {
  Raw raw;
  ASSERT_NO_FATAL_FAILURE(Connect(&raw));
  const std::string payload = TestPayload(100000, 5);
  SendPut(&raw, TestKey(1), payload, 4096, payload.size());
  EXPECT_EQ(ReadReply(raw.fd).first, dc::kStored);
  absl::StatusOr<BlockPtr> stored = store_->Get(BlockId{ns_, TestKey(1)});
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE((*stored)->payload == payload);
  EXPECT_EQ(server_->counters().local_blocks_taken, 1u);
  EXPECT_EQ(server_->counters().local_connections, 1u);
}

TEST_F(LocalPathRawTest, PutOffsetsOutsideTheRegionAreRefused) {
  const std::string payload = TestPayload(1000, 6);
  // Past the end; overlapping the end; a sum that wraps around 2^64.
  for (uint64_t offset : {kRegionBytes + 1, kRegionBytes - 500, ~uint64_t{0} - 100}) {
    Raw raw;
    ASSERT_NO_FATAL_FAILURE(Connect(&raw));
    SendPut(&raw, TestKey(2), payload, offset, payload.size());
    std::pair<char, absl::StatusCode> reply = ReadReply(raw.fd);
    EXPECT_EQ(reply.first, dc::kError) << offset;
    EXPECT_EQ(reply.second, absl::StatusCode::kInvalidArgument) << offset;
    EXPECT_TRUE(Closed(raw.fd)) << offset;
  }
  EXPECT_EQ(server_->counters().local_bad_offsets, 3u);
  EXPECT_FALSE(store_->Contains(BlockId{ns_, TestKey(2)}));
}

TEST_F(LocalPathRawTest, RegionBytesNotMatchingTheChecksumAreNotStored) {
  Raw raw;
  ASSERT_NO_FATAL_FAILURE(Connect(&raw));
  // The client (or anyone holding the region) changed a byte after the checksum was taken:
  // the server checks the checksum on its own copy, stores nothing, and closes.
  const std::string payload = TestPayload(50000, 7);
  SendPut(&raw, TestKey(4), payload, 0, payload.size(), /*flip_a_byte=*/true);
  std::pair<char, absl::StatusCode> reply = ReadReply(raw.fd);
  EXPECT_EQ(reply.first, dc::kError);
  EXPECT_EQ(reply.second, absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->Contains(BlockId{ns_, TestKey(4)}));
  EXPECT_TRUE(Closed(raw.fd));  // Same-host: Puts sent behind it are not stored.
}

TEST_F(LocalPathRawTest, PipelinedPutsStopAtTheFirstBadBlock) {
  Raw raw;
  ASSERT_NO_FATAL_FAILURE(Connect(&raw));
  const std::string payload = TestPayload(50000, 8);
  // Three requests at once, as the client sends a batch; the second one's bytes are bad.
  SendPut(&raw, TestKey(6), payload, 0, payload.size());
  SendPut(&raw, TestKey(7), payload, 65536, payload.size(), /*flip_a_byte=*/true);
  // The server may have read the second and closed before this one is written.
  SendPutMayFail(&raw, TestKey(8), payload, 131072, payload.size(), false).IgnoreError();
  EXPECT_EQ(ReadReply(raw.fd).first, dc::kStored);
  EXPECT_EQ(ReadReply(raw.fd).second, absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Closed(raw.fd));
  EXPECT_TRUE(store_->Contains(BlockId{ns_, TestKey(6)}));
  EXPECT_FALSE(store_->Contains(BlockId{ns_, TestKey(7)}));
  EXPECT_FALSE(store_->Contains(BlockId{ns_, TestKey(8)}));
}

TEST_F(LocalPathRawTest, RegionCopyOutlivesEvictionUntilAcked) {
  // Eight blocks of 200 KiB fill the 1 MiB region after five: the server waits for an ack.
  std::vector<Key> keys;
  std::vector<std::string> payloads;
  for (int i = 0; i < 8; ++i) {
    payloads.push_back(TestPayload(200 << 10, 100 + i));
    keys.push_back(TestKey(100 + i));
    BlockPtr b = MakeBlock(BlockId{ns_, keys.back()}, std::nullopt, payloads.back(),
                           TestShape(payloads.back().size()));
    ASSERT_TRUE(store_->Put(b).ok());
  }
  Raw raw;
  ASSERT_NO_FATAL_FAILURE(Connect(&raw));
  std::string request(1 + kKeyBytes + 4, '\0');
  request[0] = dc::kGet;
  std::memcpy(request.data() + 1, ns_.bytes.data(), kKeyBytes);
  dc::PutU32(request.data() + 1 + kKeyBytes, static_cast<uint32_t>(keys.size()));
  request.append(reinterpret_cast<const char*>(keys.data()), keys.size() * sizeof(Key));
  ASSERT_TRUE(WriteFull(raw.fd, request.data(), request.size()).ok());
  struct Got {
    uint64_t offset, bytes, checksum;
  };
  std::vector<Got> got;
  auto read_blocks = [&]() -> char {  // Until the next kWait or kEnd.
    for (;;) {
      char kind = 0;
      if (!ReadFull(raw.fd, &kind, 1, absl::Now() + absl::Seconds(10)).ok()) return 0;
      if (kind != dc::kBlock) return kind;
      char head[dc::kBlockHeaderBytes + dc::kOffsetBytes];
      EXPECT_TRUE(ReadFull(raw.fd, head, sizeof(head)).ok());
      absl::StatusOr<dc::BlockHeader> h =
          dc::DecodeBlockHeader(absl::string_view(head, dc::kBlockHeaderBytes));
      EXPECT_TRUE(h.ok());
      got.push_back({GetLittleEndian<uint64_t>(head + dc::kBlockHeaderBytes), h->payload_bytes,
                     h->checksum});
    }
  };
  ASSERT_EQ(read_blocks(), dc::kWait);
  ASSERT_GE(got.size(), 1u);
  ASSERT_LT(got.size(), keys.size());
  // Every block goes: erased, and the arena's recycled buffers rewritten by new Puts.
  store_->Clear();
  for (int i = 0; i < 16; ++i) {
    std::string other = TestPayload(200 << 10, 900 + i);
    ASSERT_TRUE(store_->Put(MakeBlock(BlockId{ns_, TestKey(900 + i)}, std::nullopt, other,
                                      TestShape(other.size())))
                    .ok());
  }
  // The copies handed to this client are untouched: the region is leased to it until it acks.
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(raw.region->Contains(got[i].offset, got[i].bytes));
    EXPECT_EQ(PayloadChecksum(absl::string_view(raw.region->data() + got[i].offset,
                                                got[i].bytes)),
              got[i].checksum)
        << "block " << i;
    EXPECT_EQ(got[i].checksum, PayloadChecksum(payloads[i]));
  }
  EXPECT_EQ(server_->counters().local_waits, 1u);
  // Acked: the server goes on with the block it was holding when the region filled (its
  // reference kept it alive through the Clear and the recycling), then finds the rest gone
  // and ends the run there.
  const char ack = dc::kAck;
  ASSERT_TRUE(WriteFull(raw.fd, &ack, 1).ok());
  const size_t before = got.size();
  EXPECT_EQ(read_blocks(), dc::kEnd);
  ASSERT_EQ(got.size(), before + 1);
  EXPECT_EQ(got[before].offset, 0u);
  EXPECT_EQ(PayloadChecksum(absl::string_view(raw.region->data(), got[before].bytes)),
            PayloadChecksum(payloads[before]));
}

// A fake server that passes a region and answers one Get with `offset` for its only block.
class LyingServer {
 public:
  LyingServer(uint64_t region_bytes, bool seal, uint64_t offset, uint64_t announced_bytes)
      : path_(absl::StrCat("@kvcache-test-liar-", ::getpid(), "-", counter_++)) {
    listen_fd_ = *ListenUnix(path_);
    thread_ = std::thread([=] {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      char hello[dc::kHelloBytes];
      if (ReadFull(fd, hello, sizeof(hello)).ok()) {
        const int mem = ::memfd_create("liar", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        (void)!::ftruncate(mem, static_cast<off_t>(region_bytes));
        if (seal) ::fcntl(mem, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
        char reply[dc::kLocalHelloReplyBytes] = {0};
        PutLittleEndian<uint64_t>(reply + 1, announced_bytes);
        SendWithFd(fd, reply, sizeof(reply), mem).IgnoreError();
        ::close(mem);
        // One Get: read it whole, answer one block at `offset`.
        char op_ns_n[1 + kKeyBytes + 4];
        if (ReadFull(fd, op_ns_n, sizeof(op_ns_n)).ok()) {
          const uint32_t n = dc::GetU32(op_ns_n + 1 + kKeyBytes);
          std::vector<Key> keys(n);
          (void)ReadFull(fd, keys.data(), n * sizeof(Key)).ok();
          char head[1 + dc::kBlockHeaderBytes + dc::kOffsetBytes];
          head[0] = dc::kBlock;
          dc::EncodeBlockHeader({keys[0], std::nullopt, 0, BlockShape{}, 4096}, head + 1);
          PutLittleEndian<uint64_t>(head + 1 + dc::kBlockHeaderBytes, offset);
          (void)WriteFull(fd, head, sizeof(head)).ok();
          char byte;
          (void)ReadFull(fd, &byte, 1, absl::Now() + absl::Seconds(10)).ok();  // Until closed.
        }
      }
      ::close(fd);
    });
  }
  ~LyingServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

TEST(LocalPathClientTest, OutOfBoundsOffsetFromServerIsAnErrorNotACrash) {
  for (uint64_t offset : {uint64_t{1} << 20, (uint64_t{1} << 20) - 100, ~uint64_t{0} - 10}) {
    LyingServer liar(1 << 20, /*seal=*/true, offset, 1 << 20);
    absl::StatusOr<std::unique_ptr<DataConnection>> conn =
        DataConnection::OpenLocal(liar.path(), Key{}, absl::Seconds(5));
    ASSERT_TRUE(conn.ok()) << conn.status();
    std::vector<CacheBlock> out;
    const Key key = TestKey(1);
    absl::Status s = (*conn)->Get(Key{}, absl::MakeConstSpan(&key, 1), absl::Seconds(5), &out);
    EXPECT_TRUE(absl::IsInternal(s)) << s;
    EXPECT_TRUE((*conn)->broken());
    EXPECT_TRUE(out.empty());
  }
}

TEST(LocalPathClientTest, UnsealedOrMisSizedRegionIsRefused) {
  {
    LyingServer unsealed(1 << 20, /*seal=*/false, 0, 1 << 20);
    absl::StatusOr<std::unique_ptr<DataConnection>> conn =
        DataConnection::OpenLocal(unsealed.path(), Key{}, absl::Seconds(5));
    EXPECT_TRUE(absl::IsUnavailable(conn.status())) << conn.status();
  }
  {
    LyingServer bigger_than_it_is(1 << 20, /*seal=*/true, 0, 64 << 20);
    absl::StatusOr<std::unique_ptr<DataConnection>> conn =
        DataConnection::OpenLocal(bigger_than_it_is.path(), Key{}, absl::Seconds(5));
    EXPECT_TRUE(absl::IsUnavailable(conn.status())) << conn.status();
  }
}

// The client's fused copy and checksum (common/checksum.h) agrees with PayloadChecksum at
// every size around its piece boundary.
TEST(CopyWithChecksumTest, MatchesPayloadChecksum) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{32 << 10}, size_t{(32 << 10) + 1},
                   size_t{256 << 10}, size_t{(4 << 20) + 7}}) {
    const std::string src = TestPayload(n, n);
    std::string dst(n, '\0');
    EXPECT_EQ(CopyWithChecksum(dst.data(), src.data(), n), PayloadChecksum(src)) << n;
    EXPECT_TRUE(dst == src) << n;
  }
}

}  // namespace
}  // namespace kvcache
