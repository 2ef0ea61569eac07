// KV events (SubscribeEvents) on a real server on 127.0.0.1:0 over a real RocksDB: a
// subscriber that disconnects and resumes ends with exactly the server's blocks, whether the
// ring still held what it missed (replay) or not (snapshot); a subscriber that does not read
// never holds up Puts; reasons and token ids reach the events.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "client/admin_client.h"
#include "client/cache_client.h"
#include "client/events_client.h"
#include "common/checksum.h"
#include "gtest/gtest.h"
#include "kvcache/v1/cache.grpc.pb.h"
#include "services/cache_server.h"
#include "services/events.h"
#include "tests/client_test_util.h"
#include "tests/test_util.h"

namespace kvcache {
namespace {

using testing::TempDir;
using testing::TestKey;
using testing::TestPayload;

constexpr size_t kPayload = 4000;

class EventsTest : public ::testing::Test {
 protected:
  // RAM holds about 12 blocks of kPayload, disk about 60: Puts evict and demote.
  void StartServer(size_t ring, uint64_t ram_bytes = 12 * ChargeOf(kPayload),
                   uint64_t disk_bytes = 60 * DiskChargeOf(kPayload)) {
    server_.reset();
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.events_ring = ring;
    o.store.ram.capacity_bytes = ram_bytes;
    o.store.ram.num_shard_bits = 0;
    o.store.disk = DiskTierOptions{};
    o.store.disk->path = dir_.Sub("db");
    o.store.disk->capacity_bytes = disk_bytes;
    // Demotions on the Put's thread: with the background queue a demoted block sits between
    // the tiers until written, so the server's set and the events' agree only once it drains
    // (docs/events.md).
    o.store.demotion_queue_bytes = 0;
    absl::StatusOr<std::unique_ptr<CacheServer>> server = StartCacheServer(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    CacheClientOptions c;
    c.target = server_->address();
    c.use_data_channel = false;
    client_ = *NewCacheClient(c);
    stub_ = v1::CacheService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  // Puts a chain of `n` blocks starting at key number `seed`.
  void PutChain(size_t n, uint64_t seed) {
    std::vector<CacheBlock> blocks = testing::TestChain(n, kPayload, seed);
    absl::StatusOr<CachePutResult> r = client_->Put(kNs, blocks);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // The server's blocks as BlockSet entry keys.
  std::set<std::string> ServerBlocks() {
    std::set<std::string> out;
    for (const BlockInfo& b : server_->store()->List(nullptr, 1 << 20)) {
      const std::string ns(b.meta.id.ns.view()), key(b.meta.id.key.view());
      out.insert(BlockSet::EntryKey(ns, key, b.tier == TierId::kRam ? v1::TIER_RAM
                                                                    : v1::TIER_DISK));
      if (b.tier == TierId::kRam && b.on_disk) {
        out.insert(BlockSet::EntryKey(ns, key, v1::TIER_DISK));
      }
    }
    return out;
  }

  static std::set<std::string> Entries(const BlockSet& set) {
    std::set<std::string> out;
    for (const auto& [k, v] : set.blocks()) out.insert(k);
    return out;
  }

  // What differs, readably: "+" only in `a`, "-" only in `b` (key prefix and tier).
  static std::string Diff(const std::set<std::string>& a, const std::set<std::string>& b) {
    auto name = [](const std::string& e) {
      Key k;
      std::copy(e.begin() + 32, e.begin() + 64, k.bytes.begin());
      return KeyToHex(k).substr(0, 8) + (e.back() == v1::TIER_RAM ? "/ram" : "/disk");
    };
    std::string out;
    for (const std::string& e : a) {
      if (!b.count(e)) out += " +" + name(e);
    }
    for (const std::string& e : b) {
      if (!a.count(e)) out += " -" + name(e);
    }
    return out.empty() ? "none" : out;
  }

  void ExpectServersBlocks(const BlockSet& set) {
    const std::set<std::string> server = ServerBlocks();
    EXPECT_TRUE(Entries(set) == server)
        << set.blocks().size() << " blocks followed, " << server.size()
        << " on the server; differences:" << Diff(Entries(set), server);
  }

  // Subscribes with the set's ResumeRequest and applies messages until the set has caught
  // up with the head the server announced at the start (after at most `max_messages`
  // messages when non-zero). Returns the snapshot reasons seen.
  std::vector<v1::SnapshotReason> Follow(BlockSet* set, size_t max_messages = 0) {
    std::vector<v1::SnapshotReason> reasons;
    uint64_t head = 0;
    size_t seen = 0;
    absl::Status s = SubscribeEvents(
        server_->address(), TlsClientOptions(), set->ResumeRequest(),
        [&](const v1::SubscribeEventsResponse& m) {
          if (seen++ == 0) head = m.head_sequence();
          if (m.has_snapshot() && m.snapshot().first()) reasons.push_back(m.snapshot().reason());
          set->Apply(m);
          if (max_messages != 0 && seen >= max_messages) return false;
          return !(set->synced() && set->last_sequence() >= head);
        });
    EXPECT_TRUE(s.ok()) << s;
    return reasons;
  }

  const Key kNs = TestKey(999, 7);
  TempDir dir_;
  std::unique_ptr<CacheServer> server_;
  std::unique_ptr<CacheClient> client_;
  std::unique_ptr<v1::CacheService::Stub> stub_;
};

TEST_F(EventsTest, ResumeReplaysWhatWasMissedFromTheRing) {
  StartServer(/*ring=*/100000);
  PutChain(5, 0);
  BlockSet set;
  EXPECT_EQ(Follow(&set), std::vector<v1::SnapshotReason>{v1::SNAPSHOT_REASON_REQUESTED});
  ExpectServersBlocks(set);
  EXPECT_EQ(set.blocks().size(), 5u);

  // Disconnected: evictions, demotions, an erase, a flush of RAM, more puts.
  PutChain(40, 100);
  ASSERT_TRUE(server_->store()->Erase(BlockId{kNs, TestKey(120)}));
  server_->store()->Flush(TierId::kRam);
  PutChain(8, 200);

  EXPECT_TRUE(Follow(&set).empty()) << "replayed, no snapshot";
  EXPECT_EQ(set.snapshots(), 1u);
  ExpectServersBlocks(set);
}

TEST_F(EventsTest, ResumeBeyondTheRingGetsASnapshot) {
  StartServer(/*ring=*/16);
  PutChain(5, 0);
  BlockSet set;
  Follow(&set);
  PutChain(60, 100);  // Far more than 16 events.
  EXPECT_EQ(Follow(&set), std::vector<v1::SnapshotReason>{v1::SNAPSHOT_REASON_NOT_IN_RING});
  EXPECT_EQ(set.snapshots(), 2u);
  ExpectServersBlocks(set);
  EXPECT_FALSE(set.blocks().empty());
}

TEST_F(EventsTest, AnotherEpochCannotBeResumed) {
  StartServer(/*ring=*/1000);
  PutChain(3, 0);
  BlockSet set;
  Follow(&set);
  v1::SubscribeEventsRequest r = set.ResumeRequest();
  r.set_epoch(r.epoch() + 1);
  v1::SnapshotReason reason = v1::SNAPSHOT_REASON_UNSPECIFIED;
  ASSERT_TRUE(SubscribeEvents(server_->address(), TlsClientOptions(), r,
                              [&](const v1::SubscribeEventsResponse& m) {
                                if (!m.has_snapshot()) return true;
                                reason = m.snapshot().reason();
                                return false;
                              })
                  .ok());
  EXPECT_EQ(reason, v1::SNAPSHOT_REASON_NOT_IN_RING);
}

// Writers race evictions and demotions while a subscriber keeps dropping its stream after a
// few messages and resuming; the ring is small, so some resumes replay and some snapshot.
TEST_F(EventsTest, ChurningSubscriberEndsWithTheServersBlocks) {
  StartServer(/*ring=*/64);
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([this, t] {
      for (int i = 0; i < 40; ++i) PutChain(4, 10000 * (t + 1) + 10 * i);
    });
  }
  BlockSet set;
  std::mt19937 rng(42);
  std::thread subscriber([&] {
    while (!done.load()) Follow(&set, 1 + rng() % 4);
  });
  for (std::thread& w : writers) w.join();
  done = true;
  subscriber.join();
  Follow(&set);
  ExpectServersBlocks(set);
  EXPECT_GT(set.blocks().size(), 12u);
}

// A subscriber that never reads holds up nothing: every Put completes, and when it reads at
// last it is told it lagged (or caught up) and ends with the server's blocks.
TEST_F(EventsTest, ASubscriberThatDoesNotReadNeverBlocksPuts) {
  StartServer(/*ring=*/32);
  grpc::ClientContext context;
  v1::SubscribeEventsRequest request;
  request.set_skip_snapshot(true);
  std::unique_ptr<grpc::ClientReader<v1::SubscribeEventsResponse>> reader =
      stub_->SubscribeEvents(&context, request);
  v1::SubscribeEventsResponse header;
  ASSERT_TRUE(reader->Read(&header));
  for (int i = 0; i < 100; ++i) PutChain(10, 1000 + 10 * i);  // 1000 Puts, thousands of events.
  // The head now, from a second subscriber's first message.
  uint64_t head = 0;
  v1::SubscribeEventsRequest live;
  live.set_skip_snapshot(true);
  ASSERT_TRUE(SubscribeEvents(server_->address(), TlsClientOptions(), live,
                              [&](const v1::SubscribeEventsResponse& m) {
                                head = m.head_sequence();
                                return false;
                              })
                  .ok());
  ASSERT_GT(head, header.head_sequence() + 1000);
  BlockSet set;
  set.Apply(header);
  bool lagged = false;
  v1::SubscribeEventsResponse m;
  while (!(set.synced() && set.last_sequence() >= head) && reader->Read(&m)) {
    if (m.has_snapshot() && m.snapshot().reason() == v1::SNAPSHOT_REASON_LAGGED) lagged = true;
    set.Apply(m);
  }
  context.TryCancel();
  reader->Finish();
  if (lagged) {
    ExpectServersBlocks(set);
  } else {
    GTEST_SKIP() << "the transport buffered every event; the subscriber never lagged";
  }
}

TEST_F(EventsTest, EventsSayWhyABlockLeft) {
  StartServer(/*ring=*/100000, /*ram_bytes=*/4 * ChargeOf(kPayload),
              /*disk_bytes=*/6 * DiskChargeOf(kPayload));
  PutChain(12, 0);  // RAM demotes to disk; the disk evicts.
  ASSERT_TRUE(server_->store()->Erase(BlockId{kNs, TestKey(11)}));
  server_->store()->Flush(TierId::kDisk);
  std::set<v1::RemovalReason> reasons;
  int stored_ram = 0, stored_disk = 0, cleared_disk = 0;
  v1::SubscribeEventsRequest r;
  r.set_from_oldest(true);
  uint64_t head = 0;
  ASSERT_TRUE(SubscribeEvents(server_->address(), TlsClientOptions(), r,
                              [&](const v1::SubscribeEventsResponse& m) {
                                if (head == 0) head = m.head_sequence();
                                for (const v1::KvEvent& e : m.events()) {
                                  if (e.has_removed()) reasons.insert(e.removed().reason());
                                  if (e.has_stored()) {
                                    (e.stored().tier() == v1::TIER_RAM ? stored_ram
                                                                       : stored_disk)++;
                                  }
                                  if (e.has_cleared() && e.cleared().tier() == v1::TIER_DISK) {
                                    ++cleared_disk;
                                  }
                                  if (e.sequence() >= head) return false;
                                }
                                return true;
                              })
                  .ok());
  EXPECT_EQ(stored_ram, 12);
  EXPECT_GE(stored_disk, 8);
  EXPECT_EQ(cleared_disk, 1);
  EXPECT_EQ(reasons, (std::set<v1::RemovalReason>{v1::REMOVAL_REASON_DEMOTED,
                                                  v1::REMOVAL_REASON_EVICTED,
                                                  v1::REMOVAL_REASON_ERASED}));
}

TEST_F(EventsTest, TokenIdsOfAPutReachTheEvents) {
  StartServer(/*ring=*/1000);
  auto put = [&](int num_token_ids) {
    v1::Block b;
    b.set_key(std::string(TestKey(1).view()));
    b.set_payload(TestPayload(kPayload, 1));
    b.set_checksum(PayloadChecksum(b.payload()));
    const BlockShape shape = testing::TestShape(kPayload);
    b.mutable_shape()->set_num_tokens(shape.num_tokens);
    b.mutable_shape()->set_format_version(shape.format_version);
    b.mutable_shape()->set_dtype(v1::DTYPE_F32);
    b.mutable_shape()->set_num_layers(shape.num_layers);
    b.mutable_shape()->set_num_kv_heads(shape.num_kv_heads);
    b.mutable_shape()->set_head_dim(shape.head_dim);
    for (int i = 0; i < num_token_ids; ++i) b.add_token_ids(100 + i);
    v1::PutRequest req;
    req.set_namespace_id(std::string(kNs.view()));
    *req.add_blocks() = b;
    grpc::ClientContext ctx;
    v1::PutResponse resp;
    std::unique_ptr<grpc::ClientWriter<v1::PutRequest>> w = stub_->Put(&ctx, &resp);
    w->Write(req);
    w->WritesDone();
    return w->Finish();
  };
  const uint32_t tokens = testing::TestShape(kPayload).num_tokens;
  EXPECT_EQ(put(static_cast<int>(tokens) + 1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(put(static_cast<int>(tokens)).ok());
  v1::SubscribeEventsRequest r;
  r.set_from_oldest(true);
  std::vector<uint32_t> got;
  ASSERT_TRUE(SubscribeEvents(server_->address(), TlsClientOptions(), r,
                              [&](const v1::SubscribeEventsResponse& m) {
                                for (const v1::KvEvent& e : m.events()) {
                                  if (!e.has_stored()) continue;
                                  got.assign(e.stored().token_ids().begin(),
                                             e.stored().token_ids().end());
                                  return false;
                                }
                                return true;
                              })
                  .ok());
  ASSERT_EQ(got.size(), tokens);
  EXPECT_EQ(got[0], 100u);
  EXPECT_EQ(got.back(), 100u + tokens - 1);
}

TEST_F(EventsTest, EventsOffIsFailedPrecondition) {
  StartServer(/*ring=*/0);
  absl::Status s = SubscribeEvents(server_->address(), TlsClientOptions(),
                                   v1::SubscribeEventsRequest(),
                                   [](const v1::SubscribeEventsResponse&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST(EventLogTest, AReaderBehindTheRingIsToldItLagged) {
  EventLog log(4);
  Block b;
  b.meta.id = BlockId{TestKey(1), TestKey(2)};
  for (int i = 0; i < 10; ++i) log.OnStored(b, TierId::kRam);
  std::vector<StoreEvent> out;
  EventLog::Position p;
  EXPECT_EQ(log.Read(1, 100, &out, nullptr, &p), EventLog::ReadResult::kLagged);
  EXPECT_EQ(p.head, 10u);
  EXPECT_EQ(p.oldest, 7u);
  EXPECT_EQ(log.Read(7, 100, &out, nullptr, &p), EventLog::ReadResult::kEvents);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out.front().sequence, 7u);
  EXPECT_EQ(out.back().sequence, 10u);
  EXPECT_EQ(log.Read(11, 100, &out, nullptr, &p), EventLog::ReadResult::kWaiting);
}

}  // namespace
}  // namespace kvcache
