// The data channel against slow and greedy peers: per-phase deadlines that trickled bytes do
// not extend, the total and per-peer connection caps (a real client is still served while
// slow peers hold their slots), accept(2) backing off on EMFILE instead of spinning, a
// bad_alloc in a connection thread ending only that connection, and payloads whose size
// disagrees with their shape refused before they are read.
//
// The server is started on 127.0.0.1:0 over a RAM-only store, with short deadlines. Peers
// from another address bind 127.0.0.2 (all of 127/8 is loopback on Linux).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/block_shape.h"
#include "common/checksum.h"
#include "common/data_channel_wire.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"
#include "services/data_channel_server.h"
#include "services/metrics.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

namespace dc = data_channel;
using testing::TestKey;
using testing::TestPayload;
using testing::TestShape;

// Bounds on waits, never on speed: a test fails only if the server never does the thing.
constexpr absl::Duration kPatience = absl::Seconds(20);

class DataChannelLimitsTest : public ::testing::Test {
 protected:
  void Start(const DataChannelOptions& options, uint64_t max_block_bytes = 1 << 20) {
    TieredStoreOptions so;
    so.ram.capacity_bytes = 16 << 20;
    so.max_block_bytes = max_block_bytes;
    store_ = *NewTieredStore(so);
    metrics_ = std::make_unique<ServerMetrics>(store_.get());
    absl::StatusOr<std::unique_ptr<DataChannelServer>> server =
        StartDataChannelServer("127.0.0.1:0", store_.get(), metrics_.get(), &access_,
                               &tenants_, "", options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    token_ = *access_.IssueDataToken(Principal{"", Role::kAdmin, "test", ""});
  }
  void TearDown() override {
    for (int fd : open_) ::close(fd);
    if (server_) server_->Shutdown();
  }

  // A TCP connection to the server from `source` (an address of this machine); -1 if the
  // source cannot be bound.
  int Dial(const char* source = "127.0.0.1") {
    std::string host;
    uint16_t port = 0;
    EXPECT_TRUE(SplitHostPort(server_->address(), &host, &port).ok());
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
      ::close(fd);
      return -1;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &to.sin_addr);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0) << strerror(errno);
    SetSocketTimeout(fd, kPatience);
    open_.push_back(fd);
    return fd;
  }
  std::string HelloBytes() const {
    std::string h = std::string(dc::kMagic, 4) + std::string(4, '\0') +
                    std::string(token_.view());
    dc::PutU32(h.data() + 4, dc::kVersion);
    return h;
  }
  // Sends the hello; true when the server accepts it.
  bool Hello(int fd) {
    const std::string h = HelloBytes();
    if (!WriteFull(fd, h.data(), h.size()).ok()) return false;
    char accepted = 1;
    return ReadFull(fd, &accepted, 1).ok() && accepted == 0;
  }
  // True when the server has closed `fd` (EOF or reset), within kPatience.
  static bool ClosedByServer(int fd) {
    char c;
    absl::Status s = ReadFull(fd, &c, 1);
    return absl::IsUnavailable(s);
  }
  std::string PutFrame(const Key& key, const std::string& payload, const BlockShape& shape,
                       uint64_t payload_bytes) {
    std::string frame(1 + 32 + dc::kBlockHeaderBytes, '\0');
    frame[0] = dc::kPut;
    std::memcpy(frame.data() + 1, ns_.bytes.data(), 32);
    dc::BlockHeader h;
    h.key = key;
    h.checksum = PayloadChecksum(payload);
    h.shape = shape;
    h.payload_bytes = payload_bytes;
    dc::EncodeBlockHeader(h, frame.data() + 33);
    return frame;
  }
  // A whole Put of block `n` and its reply; true when stored.
  bool PutBlock(int fd, uint64_t n) {
    const std::string payload = TestPayload(4096, n);
    const std::string frame =
        PutFrame(TestKey(n), payload, TestShape(payload.size()), payload.size()) + payload;
    if (!WriteFull(fd, frame.data(), frame.size()).ok()) return false;
    char reply[2];
    return ReadFull(fd, reply, 2).ok() && reply[0] == dc::kStored;
  }
  // Waits (up to kPatience) until `pred(counters)` holds.
  template <typename Pred>
  bool WaitFor(Pred pred) {
    const absl::Time end = absl::Now() + kPatience;
    while (absl::Now() < end) {
      if (pred(server_->counters())) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return pred(server_->counters());
  }

  std::unique_ptr<TieredStore> store_;
  std::unique_ptr<ServerMetrics> metrics_;
  AccessControl access_;  // Auth off: the anonymous admin.
  TenantBook tenants_;
  Key token_;
  std::unique_ptr<DataChannelServer> server_;
  std::vector<int> open_;
  Key ns_ = TestKey(7, 7);
};

DataChannelOptions Short() {
  DataChannelOptions o;
  o.hello_deadline = absl::Milliseconds(600);
  o.header_deadline = absl::Milliseconds(600);
  o.payload_deadline = absl::Milliseconds(600);
  return o;
}

// Sends `bytes` one at a time, `gap` apart, until the server closes the socket or they run
// out. Returns how many were sent before the server closed it.
size_t Trickle(int fd, const std::string& bytes, absl::Duration gap) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (!WriteFull(fd, &bytes[i], 1).ok()) return i;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(gap))) > 0) return i + 1;
  }
  return bytes.size();
}

TEST_F(DataChannelLimitsTest, ATrickledHelloIsClosedAtItsDeadline) {
  Start(Short());
  const int fd = Dial();
  // 40 bytes at one per 100 ms would take 4 s; each byte arrives well within any
  // per-read timeout, but the hello's deadline is 600 ms from the accept.
  const size_t sent = Trickle(fd, HelloBytes(), absl::Milliseconds(100));
  EXPECT_LT(sent, HelloBytes().size());
  EXPECT_TRUE(ClosedByServer(fd));
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.deadline_closed == 1; }));
}

TEST_F(DataChannelLimitsTest, AnIdleConnectionIsClosedAtTheIdleTimeout) {
  DataChannelOptions o = Short();
  o.idle_timeout = absl::Milliseconds(400);
  Start(o);
  const int fd = Dial();
  ASSERT_TRUE(Hello(fd));
  const absl::Time start = absl::Now();
  EXPECT_TRUE(ClosedByServer(fd));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(350));
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.deadline_closed == 1; }));
}

TEST_F(DataChannelLimitsTest, ATrickledRequestHeaderIsClosedAtItsDeadline) {
  Start(Short());
  const int fd = Dial();
  ASSERT_TRUE(Hello(fd));
  const std::string payload = TestPayload(4096, 1);
  const std::string head = PutFrame(TestKey(1), payload, TestShape(4096), 4096);
  const size_t sent = Trickle(fd, head, absl::Milliseconds(100));
  EXPECT_LT(sent, head.size());
  EXPECT_TRUE(ClosedByServer(fd));
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.deadline_closed == 1; }));
  EXPECT_FALSE(store_->Contains(BlockId{ns_, TestKey(1)}));
}

TEST_F(DataChannelLimitsTest, ATrickledPayloadIsClosedAtItsDeadline) {
  Start(Short());
  const int fd = Dial();
  ASSERT_TRUE(Hello(fd));
  const std::string payload = TestPayload(4096, 1);
  const std::string head = PutFrame(TestKey(1), payload, TestShape(4096), 4096);
  ASSERT_TRUE(WriteFull(fd, head.data(), head.size()).ok());  // The header, at once.
  const size_t sent = Trickle(fd, payload, absl::Milliseconds(100));
  EXPECT_LT(sent, payload.size());
  EXPECT_TRUE(ClosedByServer(fd));
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.deadline_closed == 1; }));
  EXPECT_FALSE(store_->Contains(BlockId{ns_, TestKey(1)}));
}

TEST_F(DataChannelLimitsTest, TheTotalCapRefusesTheExtraConnectionUntilASlotFrees) {
  DataChannelOptions o;
  o.max_connections = 3;
  Start(o);
  int held[3];
  for (int& fd : held) {
    fd = Dial();
    ASSERT_TRUE(Hello(fd));
  }
  const int extra = Dial();
  EXPECT_TRUE(ClosedByServer(extra));  // Closed at accept, without an answer.
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.refused_total_cap == 1; }));
  ::shutdown(held[0], SHUT_RDWR);  // One leaves; its slot is free once the server sees it.
  bool served = false;
  for (const absl::Time end = absl::Now() + kPatience; !served && absl::Now() < end;) {
    served = Hello(Dial());
    if (!served) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(served);
}

TEST_F(DataChannelLimitsTest, OnePeerCannotTakeEverySlotAndOthersAreStillServed) {
  DataChannelOptions o = Short();
  o.hello_deadline = absl::Seconds(30);  // The slow peers hold their slots throughout.
  o.max_connections = 8;
  o.max_connections_per_peer = 4;
  Start(o);
  // Four slow peers from 127.0.0.1, each half-way through its hello.
  const std::string half = HelloBytes().substr(0, 10);
  for (int i = 0; i < 4; ++i) {
    const int fd = Dial("127.0.0.1");
    ASSERT_TRUE(WriteFull(fd, half.data(), half.size()).ok());
  }
  const int fifth = Dial("127.0.0.1");
  EXPECT_TRUE(ClosedByServer(fifth));
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.refused_peer_cap == 1; }));

  const int real = Dial("127.0.0.2");
  if (real < 0) GTEST_SKIP() << "cannot bind 127.0.0.2 on this machine";
  ASSERT_TRUE(Hello(real));
  EXPECT_TRUE(PutBlock(real, 1));
  EXPECT_TRUE(store_->Contains(BlockId{ns_, TestKey(1)}));
  EXPECT_EQ(server_->counters().refused_total_cap, 0u);
}

TEST_F(DataChannelLimitsTest, AcceptBacksOffWhenOutOfFileDescriptors) {
  DataChannelOptions o;
  o.accept_backoff = absl::Milliseconds(100);
  Start(o);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  // Fill the descriptor table up to a lowered limit but one, and let the client's socket
  // take the last: the server (in this process) then has none left, so accept(2) fails
  // with EMFILE however soon it runs.
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(null_fd) + 16;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (int fd; (fd = ::fcntl(null_fd, F_DUPFD_CLOEXEC, 0)) >= 0;) filler.push_back(fd);
  ASSERT_FALSE(filler.empty());
  ::close(filler.back());
  filler.pop_back();
  const int pending = Dial();  // Queued by the kernel; the server cannot accept it yet.
  ASSERT_GE(pending, 0);
  // Hold it for a second: a spinning listener fails accept(2) hundreds of thousands of
  // times; one that backs off 100 ms at a time, about ten.
  const absl::Time start = absl::Now();
  ASSERT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.accept_failures >= 1; }));
  absl::SleepFor(absl::Seconds(1));
  const uint64_t failures = server_->counters().accept_failures;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (int fd : filler) ::close(fd);
  ::close(null_fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  std::printf("accept(2) failures while out of descriptors for %.2f s: %llu\n", seconds,
              static_cast<unsigned long long>(failures));
  // At most one per backoff period (plus the first); a spin would be orders of magnitude more.
  EXPECT_LE(failures, static_cast<uint64_t>(seconds / 0.1) + 5);
  // With descriptors back, the pending connection is accepted and served.
  EXPECT_TRUE(Hello(pending));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVCACHE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KVCACHE_SANITIZED 1
#endif
#endif

TEST_F(DataChannelLimitsTest, BadAllocEndsOnlyItsConnection) {
#ifdef KVCACHE_SANITIZED
  GTEST_SKIP() << "sanitizer allocators abort on impossible sizes instead of throwing";
#endif
  // A limit and a shape that both allow a 128 TiB payload: more than any address space, so
  // the buffer's allocation throws std::bad_alloc (it can never succeed and be touched).
  const uint64_t huge = (uint64_t{1} << 47) + kBlockFormatV1HeaderBytes;
  Start(DataChannelOptions{}, /*max_block_bytes=*/uint64_t{1} << 48);
  const BlockShape shape{kBlockFormatV1, 1, 1, 1024, 1024, 1u << 24};
  ASSERT_EQ(*BlockPayloadBytes(shape), huge);
  const int fd = Dial();
  ASSERT_TRUE(Hello(fd));
  const std::string head = PutFrame(TestKey(1), "", shape, huge);
  ASSERT_TRUE(WriteFull(fd, head.data(), head.size()).ok());
  EXPECT_TRUE(ClosedByServer(fd));
  EXPECT_TRUE(WaitFor([](const DataChannelCounters& c) { return c.connection_errors == 1; }));
  // The process and the server go on.
  const int next = Dial();
  ASSERT_TRUE(Hello(next));
  EXPECT_TRUE(PutBlock(next, 2));
}

TEST_F(DataChannelLimitsTest, APayloadThatDisagreesWithItsShapeIsRefusedBeforeItIsRead) {
  Start(DataChannelOptions{});
  const int fd = Dial();
  ASSERT_TRUE(Hello(fd));
  // Shape says 32 + 8 * 16 = 160 bytes; the header claims 1 MiB, which is never allocated.
  const BlockShape shape{kBlockFormatV1, 1, 1, 1, 1, 16};
  const std::string head = PutFrame(TestKey(1), "", shape, 1 << 20);
  ASSERT_TRUE(WriteFull(fd, head.data(), head.size()).ok());
  char reply[6];
  ASSERT_TRUE(ReadFull(fd, reply, sizeof(reply)).ok());
  ASSERT_EQ(reply[0], dc::kError);
  EXPECT_EQ(static_cast<absl::StatusCode>(reply[1]), absl::StatusCode::kInvalidArgument);
  std::string message(dc::GetU32(reply + 2), '\0');
  ASSERT_TRUE(ReadFull(fd, message.data(), message.size()).ok());
  EXPECT_NE(message.find("needs 160 bytes"), std::string::npos) << message;
  EXPECT_TRUE(ClosedByServer(fd));

  // Unknown format versions and dtypes are refused too; a shape of all zeros is opaque.
  for (const BlockShape& bad : {BlockShape{2, 1, 1, 1, 1, 16}, BlockShape{1, 9, 1, 1, 1, 16}}) {
    const int c = Dial();
    ASSERT_TRUE(Hello(c));
    const std::string p = TestPayload(160, 3);
    const std::string f = PutFrame(TestKey(3), p, bad, p.size()) + p;
    ASSERT_TRUE(WriteFull(c, f.data(), f.size()).ok());
    ASSERT_TRUE(ReadFull(c, reply, sizeof(reply)).ok());
    EXPECT_EQ(reply[0], dc::kError);
    EXPECT_EQ(static_cast<absl::StatusCode>(reply[1]), absl::StatusCode::kInvalidArgument);
  }
  const int ok = Dial();
  ASSERT_TRUE(Hello(ok));
  const std::string p = TestPayload(100, 4);
  const std::string f = PutFrame(TestKey(4), p, BlockShape{}, p.size()) + p;
  ASSERT_TRUE(WriteFull(ok, f.data(), f.size()).ok());
  char stored[2];
  ASSERT_TRUE(ReadFull(ok, stored, 2).ok());
  EXPECT_EQ(stored[0], dc::kStored);
}

}  // namespace
}  // namespace kvcache
