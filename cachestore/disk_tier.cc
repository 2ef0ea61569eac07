// The disk tier: RocksDB with integrated BlobDB, plus an in-memory index.
//
// Two column families, written together in one WriteBatch (so they never disagree after a
// crash):
//   "meta"   key = namespace (32) || key (32)  ->  a small fixed-layout record (below)
//   "blocks" key = the same                    ->  the payload, kept in blob files so that
//                                                   large values stay out of compaction
// At open the index is rebuilt from "meta" alone (no payload is read), which is what lets
// Lookup answer from memory and restarts, clean or kill -9, serve what was written. Writes
// go through RocksDB's WAL; without sync a write survives a crash of the process, not of the
// machine.
//
// The meta record's layout and its codec: cachestore/meta_record_internal.h.
//
// The in-memory index (compact_index_internal.h) keeps per block a 96-byte slot: the full id
// (needed to delete an evicted block's rows, and to confirm a fingerprint match), the payload
// size, the last access in 32-bit seconds, 32-bit LRU links, the fingerprint and the pending
// write's generation; plus an 8-byte bucket of the fingerprint table. The rest of the
// metadata (parent, shape, checksum) stays on disk in the meta record, read together with
// the payload by Get (one MultiGet) and by Inspect, List and EraseIf.
//
// Budgets and disk trouble: the index costs kDiskIndexEntryBytes of RAM a block and is kept
// within index_capacity_bytes (evicting the oldest), at run time and at load. Every
// check_interval the tier measures its directory (live blocks plus RocksDB's garbage, WAL
// and metadata) and the filesystem's free space: what the directory holds beyond the live
// blocks is taken off the live blocks' budget (down to half the capacity), so the directory
// stays near its cap; free space under min_free_bytes, or a write the disk refuses, turns
// the tier degraded: it takes no writes (UNAVAILABLE; the store keeps serving from RAM and
// from what it can read), says why in TierStats::fault and on stderr, and tries the disk
// again each check_interval until a write succeeds.

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cachestore/block_internal.h"
#include "cachestore/block_store.h"
#include "cachestore/compact_index_internal.h"
#include "cachestore/disk_tier_internal.h"
#include "cachestore/eviction_policy.h"
#include "cachestore/meta_record_internal.h"
#include "cachestore/store_events.h"
#include "common/byte_size.h"
#include "common/checksum.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace kvcache {
namespace {

using internal::DbKey;
using internal::MetaRecord;
constexpr char kMetaCf[] = "meta";

std::atomic<internal::DiskReadHook> g_read_hook{nullptr};  // SetDiskReadHookForTesting.
constexpr char kBlocksCf[] = "blocks";

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("disk tier: ", what, ": ", s.ToString()));
}

using internal::kNoSlot;

// One block's slot: 96 bytes.
struct DiskEntry {
  BlockId id;
  uint64_t payload_bytes = 0;
  uint32_t prev = kNoSlot;  // Recency links (intrusive LRU only).
  uint32_t next = kNoSlot;
  uint32_t tag = 0;            // internal::IndexTag of the id's IndexHash.
  uint32_t last_access_s = 0;  // Unix seconds.
  // Non-zero while the Put that made it is still writing: reads treat it as absent, and the
  // writer only finishes an entry whose generation is still its own.
  uint32_t pending_generation = 0;
  bool live = false;  // False while the slot is free.
};
static_assert(sizeof(DiskEntry) == 96, "the disk tier's per-block slot grew");

class DiskTier final : public BlockStore {
 public:
  DiskTier(const DiskTierOptions& options, std::unique_ptr<EvictionPolicy> policy,
           rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : options_(options),
        max_entries_(options.index_capacity_bytes / kDiskIndexEntryBytes),
        db_(db),
        handles_(std::move(handles)),
        extra_bytes_(policy == nullptr ? 0 : policy->ExtraBytesPerBlock()),
        policy_(std::move(policy)) {
    write_options_.sync = options.sync_writes;
  }

  ~DiskTier() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (maintenance_.joinable()) maintenance_.join();
    for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
    delete db_;
  }

  // Rebuilds the index from the meta column family, oldest write first, and trims to the
  // capacity (which may have shrunk since the last run).
  absl::Status LoadIndex() {
    std::vector<MetaRecord> records;
    rocksdb::WriteBatch batch;  // Bad and trimmed entries, written as it grows.
    auto newest_first = [](const MetaRecord& a, const MetaRecord& b) {
      return a.written_unix_micros > b.written_unix_micros;
    };
    // Within the index budget while loading too: past twice the entries the budget allows,
    // only the newest are kept (a directory written under a larger budget, or by millions
    // of tiny blocks, cannot exhaust memory at start).
    auto trim = [&](size_t keep) -> absl::Status {
      if (max_entries_ == 0 || records.size() <= keep) return absl::OkStatus();
      std::nth_element(records.begin(), records.begin() + keep, records.end(), newest_first);
      for (size_t i = keep; i < records.size(); ++i) AddDelete(&batch, records[i].meta.id);
      records.resize(keep);
      return FlushBatch(&batch);
    };
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf()));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        absl::StatusOr<MetaRecord> r = internal::DecodeMetaRecord(
            absl::string_view(it->key().data(), it->key().size()),
            absl::string_view(it->value().data(), it->value().size()));
        if (r.ok()) {
          records.push_back(*std::move(r));
          if (records.size() > 2 * max_entries_) {
            if (absl::Status s = trim(max_entries_); !s.ok()) return s;
          }
        } else {
          batch.Delete(meta_cf(), it->key());
          batch.Delete(blocks_cf(), it->key());
        }
      }
      if (absl::Status s = FromRocks(it->status(), "scanning the index"); !s.ok()) return s;
    }
    if (absl::Status s = trim(max_entries_); !s.ok()) return s;
    std::sort(records.begin(), records.end(), [](const MetaRecord& a, const MetaRecord& b) {
      return a.written_unix_micros < b.written_unix_micros;
    });
    std::vector<BlockId> trimmed;
    {
      absl::MutexLock lock(&mu_);
      for (const MetaRecord& r : records) {
        const uint64_t charge = Charge(r.payload_bytes);
        if (FindLocked(r.meta.id) != kNoSlot) continue;  // Unreachable: keys are unique.
        InsertLocked(internal::PolicyEntryOf(r.meta, charge), r.payload_bytes,
                     static_cast<uint32_t>(r.written_unix_micros / 1000000), 0);
        bytes_ += charge;
      }
      std::vector<MetaRecord>().swap(records);
      MakeRoomLocked(0, 0, &trimmed);
    }
    for (const BlockId& id : trimmed) AddDelete(&batch, id);
    return FlushBatch(&batch);
  }

  // Starts the thread that watches the disk and collects RocksDB's garbage.
  void StartMaintenance() {
    maintenance_ = std::thread([this] { MaintenanceLoop(); });
  }

  absl::StatusOr<PutOutcome> Put(BlockPtr block, std::vector<Evicted>* evicted) override {
    if (absl::Status s = internal::ValidateBlock(*block); !s.ok()) return s;
    const BlockId& id = block->meta.id;
    const uint64_t charge = Charge(block->payload.size());
    if (charge > options_.capacity_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("block of ", FormatBytes(charge), " does not fit the disk tier (",
                       FormatBytes(options_.capacity_bytes), ")"));
    }
    const int64_t now = internal::NowUnixMicros();
    std::vector<BlockId> victims;
    uint32_t generation;
    RefreshHealth();
    {
      absl::MutexLock lock(&mu_);
      if (const uint32_t slot = FindLocked(id); slot != kNoSlot) {
        TouchLocked(slot);
        return PutOutcome::kAlreadyPresent;
      }
      if (absl::Status s = WritableLocked(); !s.ok()) return s;
      // The directory as last measured plus what was written since: a write that would
      // take it past the cap waits for RocksDB's garbage collection (the block is dropped,
      // not demoted; a miss later, never wrong bytes).
      if (dir_bytes_ + written_since_check_ + block->payload.size() >
              options_.capacity_bytes + options_.directory_slack_bytes &&
          dir_bytes_ != 0) {
        ++stats_.write_refusals;
        next_check_ = absl::InfinitePast();
        return absl::UnavailableError(absl::StrCat(
            "disk tier directory at its cap (", FormatBytes(dir_bytes_ + written_since_check_),
            " of ", FormatBytes(options_.capacity_bytes),
            ") until RocksDB collects its garbage"));
      }
      written_since_check_ += block->payload.size();
      const PolicyEntry entry = internal::PolicyEntryOf(block->meta, charge);
      if (policy_ != nullptr && !policy_->Admit(entry)) return PutOutcome::kNotAdmitted;
      MakeRoomLocked(charge, 1, &victims);
      generation = ++next_generation_;
      if (generation == 0) generation = ++next_generation_;  // 0 means written.
      InsertLocked(entry, block->payload.size(), static_cast<uint32_t>(now / 1000000),
                   generation);
      bytes_ += charge;
      ++stats_.inserts;
      if (listener_ != nullptr) {
        for (const BlockId& v : victims) {
          listener_->OnRemoved(v, TierId::kDisk, RemovalReason::kEvicted);
        }
      }
    }
    const Record record{id,
                        internal::EncodeMetaRecord(
                            MetaRecord{block->meta, block->payload.size(), now}),
                        block->payload};
    const absl::Status written = Commit(std::move(victims), &record, "writing a block");

    bool still_ours;
    {
      absl::MutexLock lock(&mu_);
      const uint32_t slot = FindLocked(id);
      still_ours = slot != kNoSlot && slots_[slot].pending_generation == generation;
      if (!written.ok()) {
        if (still_ours) RemoveLocked(slot, RemovalReason::kEvicted);
        return written;
      }
      if (still_ours) {
        slots_[slot].pending_generation = 0;
        // Reported when it can be read (Contains), not while pending.
        if (listener_ != nullptr) listener_->OnStored(*block, TierId::kDisk);
      }
    }
    // Erased while we were writing: do not let the write resurrect it.
    if (!still_ours) {
      // A failure is counted and the delete retried with the next write (Commit).
      Commit({id}, nullptr, "undoing a block erased while it was written").IgnoreError();
    }
    return PutOutcome::kStored;
  }

  absl::StatusOr<BlockPtr> Get(const BlockId& id) override {
    uint64_t payload_bytes;
    {
      absl::MutexLock lock(&mu_);
      const uint32_t slot = FindLocked(id);
      if (slot == kNoSlot || slots_[slot].pending_generation != 0) {
        ++stats_.misses;
        return absl::NotFoundError("not in the disk tier");
      }
      payload_bytes = slots_[slot].payload_bytes;
    }
    if (internal::DiskReadHook hook = g_read_hook.load(std::memory_order_acquire)) hook();
    // The meta record (checksum, parent, shape) and the payload in one MultiGet.
    const std::string key = DbKey(id);
    rocksdb::ColumnFamilyHandle* families[2] = {meta_cf(), blocks_cf()};
    const rocksdb::Slice keys[2] = {key, key};
    rocksdb::PinnableSlice values[2];
    rocksdb::Status statuses[2];
    rocksdb::ReadOptions read_options;
    read_options.verify_checksums = true;
    db_->MultiGet(read_options, 2, families, keys, values, statuses);
    rocksdb::PinnableSlice& value = values[1];
    absl::StatusOr<MetaRecord> record = absl::NotFoundError("meta record unreadable");
    if (statuses[0].ok()) {
      record = internal::DecodeMetaRecord(key, absl::string_view(values[0].data(), values[0].size()));
    }
    const bool read = statuses[0].ok() && statuses[1].ok();
    const bool intact = read && record.ok() && value.size() == payload_bytes &&
                        PayloadChecksum(absl::string_view(value.data(), value.size())) ==
                            record->meta.checksum;
    bool dropped = false;
    if (!intact) {
      // Gone underneath us (erased meanwhile), unreadable or corrupt: never served.
      absl::MutexLock lock(&mu_);
      ++stats_.misses;
      if (!statuses[0].IsNotFound() && !statuses[1].IsNotFound()) ++stats_.checksum_failures;
      const uint32_t slot = FindLocked(id);
      dropped = slot != kNoSlot && slots_[slot].pending_generation == 0;
      if (dropped) RemoveLocked(slot, RemovalReason::kCorrupt);
    }
    if (!intact) {
      if (dropped) Commit({id}, nullptr, "dropping a bad block").IgnoreError();  // Counted.
      return absl::NotFoundError(read ? "disk copy failed its checksum; dropped"
                                      : "disk copy unreadable; dropped");
    }
    auto block = std::make_shared<Block>();
    block->meta = record->meta;
    block->payload.assign(value.data(), value.size());
    absl::MutexLock lock(&mu_);
    ++stats_.hits;
    if (const uint32_t slot = FindLocked(id); slot != kNoSlot) TouchLocked(slot);
    return BlockPtr(std::move(block));
  }

  bool Contains(const BlockId& id) const override {
    absl::MutexLock lock(&mu_);
    const uint32_t slot = FindLocked(id);
    return slot != kNoSlot && slots_[slot].pending_generation == 0;
  }

  // The index and the meta record (read after the lock): nullopt while its write is pending.
  std::optional<BlockInfo> Inspect(const BlockId& id) const override {
    BlockInfo info;
    {
      absl::MutexLock lock(&mu_);
      const uint32_t slot = FindLocked(id);
      if (slot == kNoSlot || slots_[slot].pending_generation != 0) return std::nullopt;
      info = InfoOf(slots_[slot]);
    }
    const std::string key = DbKey(id);
    std::string value;
    if (!db_->Get(rocksdb::ReadOptions(), meta_cf(), key, &value).ok()) return std::nullopt;
    absl::StatusOr<MetaRecord> record = internal::DecodeMetaRecord(key, value);
    if (!record.ok()) return std::nullopt;
    info.meta = record->meta;
    return info;
  }

  // Scans the meta records (the parent, shape and checksum the filter may look at are on
  // disk), keeping those the index holds; `filter` runs outside the lock.
  std::vector<BlockInfo> List(const Filter& filter, size_t limit) const override {
    std::vector<BlockInfo> out;
    ScanMeta([&](const MetaRecord& r, const DiskEntry& e) {
      if (out.size() >= limit) return false;
      if (filter && !filter(r.meta)) return true;
      BlockInfo info = InfoOf(e);
      info.meta = r.meta;
      out.push_back(std::move(info));
      return true;
    });
    return out;
  }

  bool Erase(const BlockId& id) override {
    {
      absl::MutexLock lock(&mu_);
      const uint32_t slot = FindLocked(id);
      if (slot == kNoSlot) return false;
      RemoveLocked(slot, RemovalReason::kErased);
    }
    Commit({id}, nullptr, "erasing a block").IgnoreError();  // Counted; retried.
    return true;
  }

  bool Evict(const BlockId& id, std::vector<Evicted>* /*evicted*/) override {
    {
      absl::MutexLock lock(&mu_);
      const uint32_t slot = FindLocked(id);
      if (slot == kNoSlot || slots_[slot].pending_generation != 0) return false;
      ++stats_.evictions;
      RemoveLocked(slot, RemovalReason::kEvicted);
    }
    Commit({id}, nullptr, "evicting a block").IgnoreError();  // Counted; retried.
    return true;
  }

  // `pred` sees each block's meta record as scanned from disk (outside the lock); the blocks
  // it selects are removed if the index still holds them.
  uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) override {
    std::vector<BlockId> selected;
    ScanMeta([&](const MetaRecord& r, const DiskEntry&) {
      if (pred(r.meta)) selected.push_back(r.meta.id);
      return true;
    });
    std::vector<BlockId> doomed;
    {
      absl::MutexLock lock(&mu_);
      for (const BlockId& id : selected) {
        const uint32_t slot = FindLocked(id);
        if (slot == kNoSlot || slots_[slot].pending_generation != 0) continue;
        RemoveLocked(slot, RemovalReason::kErased);
        doomed.push_back(id);
      }
    }
    const uint64_t erased = doomed.size();
    Commit(std::move(doomed), nullptr, "erasing blocks").IgnoreError();  // Counted; retried.
    return erased;
  }

  // One OnCleared instead of a removal per block, ordered under mu_ with every other change.
  uint64_t Clear() override {
    std::vector<BlockId> doomed;
    {
      absl::MutexLock lock(&mu_);
      for (uint32_t slot = 0; slot < slots_.end(); ++slot) {
        if (!slots_[slot].live) continue;
        doomed.push_back(slots_[slot].id);
        RemoveLocked(slot, std::nullopt);
      }
      table_.Clear();
      slots_.Clear();
      lru_.Clear();
      if (listener_ != nullptr) listener_->OnCleared(TierId::kDisk);
    }
    const uint64_t erased = doomed.size();
    Commit(std::move(doomed), nullptr, "erasing blocks").IgnoreError();  // Counted; retried.
    return erased;
  }

  TierStats Stats() const override {
    RefreshHealth();
    absl::MutexLock lock(&mu_);
    TierStats s = stats_;
    s.blocks = table_.size();
    s.bytes = bytes_;
    s.capacity_bytes = options_.capacity_bytes;
    s.index_bytes = table_.size() * kDiskIndexEntryBytes;
    s.dir_bytes = dir_bytes_;
    s.free_bytes = free_bytes_;
    const std::string fault = FaultLocked();
    s.degraded = fault.empty() ? 0 : 1;
    s.fault = fault;
    return s;
  }

 private:
  // One block's rows, as Put writes them.
  struct Record {
    BlockId id;
    std::string meta;
    absl::string_view payload;
  };

  // Deletes `deletes` and writes `record` (when non-null) in one WriteBatch, together with
  // the deletes that earlier failed writes left undone. The status of every write is
  // checked: a failure is counted (TierStats::write_errors) and its deletes are kept for
  // the next write, so a block erased from the index cannot come back after a restart
  // once the disk works again; the next write first asks RocksDB to resume from the
  // background error a failed write leaves. The caller holds no lock (RocksDB I/O runs
  // outside mu_). A delete retried after the same key was stored again only turns that
  // block into a miss (Get finds no payload and drops it): never wrong bytes.
  absl::Status Commit(std::vector<BlockId> deletes, const Record* record,
                      absl::string_view what) ABSL_LOCKS_EXCLUDED(mu_) {
    bool resume;
    {
      absl::MutexLock lock(&mu_);
      resume = resume_before_write_;
      // The new rows replace the old ones: a retried delete must not remove them.
      if (record != nullptr) pending_deletes_.erase(record->id);
      deletes.insert(deletes.end(), pending_deletes_.begin(), pending_deletes_.end());
      pending_deletes_.clear();
    }
    if (resume) db_->Resume();  // OK at once when there is no background error.
    rocksdb::WriteBatch batch;
    for (const BlockId& id : deletes) AddDelete(&batch, id);
    if (record != nullptr) {
      const std::string key = DbKey(record->id);
      batch.Put(meta_cf(), key, record->meta);
      batch.Put(blocks_cf(), key, rocksdb::Slice(record->payload.data(), record->payload.size()));
    }
    const rocksdb::Status s = db_->Write(write_options_, &batch);
    absl::MutexLock lock(&mu_);
    resume_before_write_ = !s.ok();
    if (s.ok()) {
      if (!write_fault_.empty()) {
        write_fault_.clear();
        LogHealthLocked();
      }
      return absl::OkStatus();
    }
    ++stats_.write_errors;
    pending_deletes_.insert(deletes.begin(), deletes.end());
    if (write_fault_.empty()) {
      write_fault_ = absl::StrCat("writes failing (", s.ToString(), ")");
      LogHealthLocked();
    }
    return FromRocks(s, what);
  }

  // Every check_interval: re-measures (RefreshHealth), and when the directory holds more
  // than a sixteenth of the capacity beyond the live blocks (and RocksDB's fixed files), has RocksDB rewrite the older
  // half of its blob files (their live blobs move on, the garbage goes): RocksDB collects
  // blob garbage only while compacting, which a cache's few small keys rarely trigger.
  void MaintenanceLoop() {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.check_interval)) return;
      }
      RefreshHealth();
      bool collect;
      {
        absl::MutexLock lock(&mu_);
        collect = space_fault_.empty() && write_fault_.empty() &&
                  overhead_bytes_ > options_.capacity_bytes / 16;
      }
      if (!collect) continue;
      rocksdb::CompactRangeOptions compact;
      compact.blob_garbage_collection_policy = rocksdb::BlobGarbageCollectionPolicy::kForce;
      compact.blob_garbage_collection_age_cutoff = 0.5;
      db_->CompactRange(compact, blocks_cf(), nullptr, nullptr).PermitUncheckedError();
      absl::MutexLock lock(&mu_);
      next_check_ = absl::InfinitePast();  // Measure again at once.
    }
  }

  absl::Status FlushBatch(rocksdb::WriteBatch* batch) {
    if (batch->Count() == 0) return absl::OkStatus();
    const rocksdb::Status s = db_->Write(write_options_, batch);
    batch->Clear();
    return FromRocks(s, "dropping stale entries");
  }

  // Re-measures the directory and free space once check_interval has passed since the last
  // time (one caller measures; the others go on with the last figures), and lets one write
  // try a failing disk again.
  void RefreshHealth() const ABSL_LOCKS_EXCLUDED(mu_) {
    const absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      if (checking_ || now < next_check_) return;
      checking_ = true;
      next_check_ = now + options_.check_interval;
    }
    struct statvfs vfs;
    const bool have_free = ::statvfs(options_.path.c_str(), &vfs) == 0;
    const uint64_t free_bytes =
        have_free ? static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize : 0;
    uint64_t dir_bytes = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options_.path, ec)) {
      std::error_code size_ec;
      if (entry.is_regular_file(size_ec)) {
        const uint64_t size = entry.file_size(size_ec);
        if (!size_ec) dir_bytes += size;
      }
    }
    absl::MutexLock lock(&mu_);
    checking_ = false;
    free_bytes_ = free_bytes;
    dir_bytes_ = dir_bytes;
    written_since_check_ = 0;
    // What the directory holds beyond the live blocks' payloads: RocksDB's garbage, WAL and
    // metadata. Taken off the live budget, down to half the capacity.
    const uint64_t held = bytes_ + options_.directory_slack_bytes;
    overhead_bytes_ = std::min(dir_bytes > held ? dir_bytes - held : 0,
                               options_.capacity_bytes / 2);
    std::string space_fault;
    if (have_free && free_bytes < options_.min_free_bytes) {
      space_fault = absl::StrCat("disk full: ", FormatBytes(free_bytes), " free at '",
                                 options_.path, "', under the ",
                                 FormatBytes(options_.min_free_bytes), " the tier keeps free");
    }
    if (space_fault != space_fault_) {
      space_fault_ = space_fault;
      LogHealthLocked();
    }
    if (!write_fault_.empty()) probe_write_ = true;
  }

  // OK when a write may go to disk; UNAVAILABLE (with the fault) while degraded, except for
  // one write each check_interval that tries a failing disk again.
  absl::Status WritableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!space_fault_.empty()) {
      return absl::UnavailableError(absl::StrCat("disk tier degraded: ", space_fault_));
    }
    if (!write_fault_.empty()) {
      if (probe_write_) {
        probe_write_ = false;
        return absl::OkStatus();
      }
      return absl::UnavailableError(absl::StrCat("disk tier degraded: ", write_fault_));
    }
    return absl::OkStatus();
  }

  std::string FaultLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!space_fault_.empty()) return space_fault_;
    return write_fault_;
  }

  // One line on stderr for each change of health.
  void LogHealthLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string fault = FaultLocked();
    if (fault.empty()) {
      std::fprintf(stderr, "kvcache: disk tier at '%s' healthy again; taking writes\n",
                   options_.path.c_str());
    } else {
      std::fprintf(stderr,
                   "kvcache: disk tier at '%s' degraded: %s; serving from RAM and what the "
                   "disk can read\n",
                   options_.path.c_str(), fault.c_str());
    }
  }

  rocksdb::ColumnFamilyHandle* meta_cf() const { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* blocks_cf() const { return handles_[2]; }

  void AddDelete(rocksdb::WriteBatch* batch, const BlockId& id) const {
    const std::string key = DbKey(id);
    batch->Delete(meta_cf(), key);
    batch->Delete(blocks_cf(), key);
  }

  // Evicts until `charge` more bytes and `entries` more index entries fit the budgets; the
  // victims' ids go to `victims` for deletion.
  void MakeRoomLocked(uint64_t charge, size_t entries, std::vector<BlockId>* victims)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t live_capacity = options_.capacity_bytes - overhead_bytes_;
    while (bytes_ + charge > live_capacity ||
           (max_entries_ != 0 && table_.size() + entries > max_entries_)) {
      uint32_t slot = kNoSlot;
      if (policy_ == nullptr) {
        slot = lru_.Oldest();
        if (slot == kNoSlot) break;
      } else {
        std::optional<Victim> victim = policy_->PopVictim();
        if (!victim) break;
        slot = FindLocked(victim->id);
        if (slot == kNoSlot) continue;
      }
      ++stats_.evictions;
      victims->push_back(slots_[slot].id);
      TakeLocked(slot);
    }
  }

  // The slot holding `id`, or kNoSlot: a fingerprint match is confirmed against the full id.
  uint32_t FindLocked(const BlockId& id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The lambda runs within this call, under the lock (a pointer: see the RAM tier's).
    const internal::SlotArena<DiskEntry>* slots = &slots_;
    return table_.Find(internal::IndexTag(IndexHash(id)),
                       [&](uint32_t slot) { return (*slots)[slot].id == id; });
  }

  void InsertLocked(const PolicyEntry& entry, uint64_t payload_bytes, uint32_t now_s,
                    uint32_t generation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint32_t slot = slots_.Allocate();
    DiskEntry& e = slots_[slot];
    e.id = entry.id;
    e.payload_bytes = payload_bytes;
    e.tag = internal::IndexTag(IndexHash(entry.id));
    e.last_access_s = now_s;
    e.pending_generation = generation;
    e.live = true;
    table_.Insert(e.tag, slot);
    if (policy_ != nullptr) {
      policy_->OnInsert(entry);
    } else {
      lru_.PushFront(slots_, slot);
    }
  }

  void TouchLocked(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (policy_ != nullptr) {
      policy_->OnAccess(slots_[slot].id);
    } else {
      lru_.Touch(slots_, slot);
    }
    slots_[slot].last_access_s = internal::NowUnixSeconds();
  }

  // Takes `slot` out of the index (not out of the policy) and frees it.
  void TakeLocked(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DiskEntry& e = slots_[slot];
    bytes_ -= Charge(e.payload_bytes);
    table_.Erase(e.tag, slot);
    if (policy_ == nullptr) lru_.Unlink(slots_, slot);
    slots_.Free(slot);
  }

  // Drops an index entry and tells the policy, and the listener why when `reason` is set.
  void RemoveLocked(uint32_t slot, std::optional<RemovalReason> reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const BlockId id = slots_[slot].id;
    if (listener_ != nullptr && reason) listener_->OnRemoved(id, TierId::kDisk, *reason);
    if (policy_ != nullptr) policy_->OnErase(id);
    TakeLocked(slot);
  }

  // Calls `fn(record, entry)` for each meta record on disk that the index holds (written,
  // not pending), until it returns false. RocksDB is read without the lock; the index is
  // consulted under it, a batch of records at a time.
  void ScanMeta(const std::function<bool(const MetaRecord&, const DiskEntry&)>& fn) const
      ABSL_LOCKS_EXCLUDED(mu_) {
    constexpr size_t kBatch = 1024;
    std::vector<MetaRecord> batch;
    std::vector<std::pair<MetaRecord, DiskEntry>> held;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf()));
    it->SeekToFirst();
    for (bool more = true; more;) {
      batch.clear();
      for (; it->Valid() && batch.size() < kBatch; it->Next()) {
        absl::StatusOr<MetaRecord> r = internal::DecodeMetaRecord(
            absl::string_view(it->key().data(), it->key().size()),
            absl::string_view(it->value().data(), it->value().size()));
        if (r.ok()) batch.push_back(*std::move(r));
      }
      more = it->Valid();
      held.clear();
      {
        absl::MutexLock lock(&mu_);
        for (MetaRecord& r : batch) {
          const uint32_t slot = FindLocked(r.meta.id);
          if (slot == kNoSlot || slots_[slot].pending_generation != 0) continue;
          held.emplace_back(std::move(r), slots_[slot]);
        }
      }
      for (const auto& [record, entry] : held) {
        if (!fn(record, entry)) return;
      }
    }
  }

  // What the index knows (meta.id only; the rest of the meta is on disk).
  static BlockInfo InfoOf(const DiskEntry& e) {
    BlockInfo info;
    info.meta.id = e.id;
    info.payload_bytes = e.payload_bytes;
    info.tier = TierId::kDisk;
    info.on_disk = true;
    info.last_access_unix_micros = internal::UnixSecondsToMicros(e.last_access_s);
    return info;
  }

  // Constant after construction.
  const DiskTierOptions options_;
  const size_t max_entries_;  // Of the index; 0: no limit.
  StoreListener* const listener_ = options_.listener;  // Null when nobody listens.
  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, meta, blocks.
  const uint64_t extra_bytes_;  // The policy's state per block (ExtraBytesPerBlock).
  // What a block costs: DiskChargeOf plus the policy's own state per block.
  uint64_t Charge(uint64_t payload_bytes) const {
    return DiskChargeOf(payload_bytes) + extra_bytes_;
  }
  rocksdb::WriteOptions write_options_;

  mutable absl::Mutex mu_;
  internal::FingerprintTable table_ ABSL_GUARDED_BY(mu_);
  internal::SlotArena<DiskEntry> slots_ ABSL_GUARDED_BY(mu_);
  internal::IntrusiveLru<DiskEntry> lru_ ABSL_GUARDED_BY(mu_);  // When policy_ is null.
  std::unique_ptr<EvictionPolicy> policy_ ABSL_GUARDED_BY(mu_);  // Null: intrusive LRU.
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t next_generation_ ABSL_GUARDED_BY(mu_) = 0;
  TierStats stats_ ABSL_GUARDED_BY(mu_);
  // Deletes a failed write left undone, retried with the next write; see Commit.
  absl::flat_hash_set<BlockId> pending_deletes_ ABSL_GUARDED_BY(mu_);
  bool resume_before_write_ ABSL_GUARDED_BY(mu_) = false;
  // Health (RefreshHealth, Commit).
  mutable bool checking_ ABSL_GUARDED_BY(mu_) = false;
  mutable absl::Time next_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  mutable uint64_t free_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t dir_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t written_since_check_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t overhead_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  mutable std::string space_fault_ ABSL_GUARDED_BY(mu_);
  mutable bool probe_write_ ABSL_GUARDED_BY(mu_) = false;
  std::string write_fault_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread maintenance_;
};

}  // namespace

void internal::SetDiskReadHookForTesting(DiskReadHook hook) {
  g_read_hook.store(hook, std::memory_order_release);
}

absl::StatusOr<std::unique_ptr<BlockStore>> NewDiskTier(const DiskTierOptions& options) {
  return internal::NewDiskTierOnEnv(options, nullptr);
}

absl::StatusOr<std::unique_ptr<BlockStore>> internal::NewDiskTierOnEnv(
    const DiskTierOptions& options, rocksdb::Env* env) {
  if (options.path.empty()) return absl::InvalidArgumentError("disk tier: path is empty");
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy = NewEvictionPolicy(options.eviction);
  if (!policy.ok()) return policy.status();
  // LRU, the default, is threaded through the index's slots (no policy object).
  if (options.eviction == "lru") *policy = nullptr;

  rocksdb::Options db_options;
  if (env != nullptr) db_options.env = env;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // Sized to the capacity so RocksDB's own files (WAL, memtables, blob files awaiting
  // garbage collection) stay a small part of the directory and of memory.
  const uint64_t cap = options.capacity_bytes;
  db_options.max_total_wal_size = std::clamp<uint64_t>(cap / 16, 4ull << 20, 256ull << 20);
  db_options.max_log_file_size = 1 << 20;  // RocksDB's info LOG: at most 2 x 1 MiB.
  db_options.keep_log_file_num = 2;

  rocksdb::ColumnFamilyOptions meta_options;
  rocksdb::ColumnFamilyOptions blocks_options;
  // Payloads live in blob files: compaction moves only the small blob references.
  blocks_options.enable_blob_files = true;
  blocks_options.min_blob_size = 0;
  blocks_options.blob_file_size = std::clamp<uint64_t>(cap / 32, 1ull << 20, 256ull << 20);
  blocks_options.enable_blob_garbage_collection = true;
  blocks_options.blob_garbage_collection_age_cutoff = 0.5;
  blocks_options.blob_garbage_collection_force_threshold = 0.5;
  blocks_options.write_buffer_size = std::clamp<uint64_t>(cap / 32, 4ull << 20, 64ull << 20);

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kMetaCf, meta_options},
      {kBlocksCf, blocks_options},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, families, &handles, &db);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("disk tier: cannot open RocksDB at '", options.path, "': ", s.ToString()));
  }
  auto tier = std::make_unique<DiskTier>(options, *std::move(policy), db, std::move(handles));
  if (absl::Status loaded = tier->LoadIndex(); !loaded.ok()) return loaded;
  tier->StartMaintenance();
  return std::unique_ptr<BlockStore>(std::move(tier));
}

}  // namespace kvcache
