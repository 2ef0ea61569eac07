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

#include <algorithm>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cachestore/block_internal.h"
#include "cachestore/block_store.h"
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
constexpr char kBlocksCf[] = "blocks";

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("disk tier: ", what, ": ", s.ToString()));
}

struct DiskEntry {
  BlockMeta meta;
  uint64_t payload_bytes = 0;
  int64_t last_access_unix_micros = 0;
  // Non-zero while the Put that made it is still writing: reads treat it as absent, and the
  // writer only finishes an entry whose generation is still its own.
  uint64_t pending_generation = 0;
};

class DiskTier final : public BlockStore {
 public:
  DiskTier(const DiskTierOptions& options, std::unique_ptr<EvictionPolicy> policy,
           rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : options_(options), db_(db), handles_(std::move(handles)), policy_(std::move(policy)) {
    write_options_.sync = options.sync_writes;
  }

  ~DiskTier() override {
    for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
    delete db_;
  }

  // Rebuilds the index from the meta column family, oldest write first, and trims to the
  // capacity (which may have shrunk since the last run).
  absl::Status LoadIndex() {
    std::vector<MetaRecord> records;
    std::vector<std::string> bad_keys;
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf()));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        absl::StatusOr<MetaRecord> r = internal::DecodeMetaRecord(
            absl::string_view(it->key().data(), it->key().size()),
            absl::string_view(it->value().data(), it->value().size()));
        if (r.ok()) {
          records.push_back(*std::move(r));
        } else {
          bad_keys.push_back(it->key().ToString());
        }
      }
      if (absl::Status s = FromRocks(it->status(), "scanning the index"); !s.ok()) return s;
    }
    std::sort(records.begin(), records.end(), [](const MetaRecord& a, const MetaRecord& b) {
      return a.written_unix_micros < b.written_unix_micros;
    });
    std::vector<BlockId> trimmed;
    {
      absl::MutexLock lock(&mu_);
      for (const MetaRecord& r : records) {
        const uint64_t charge = ChargeOf(r.payload_bytes);
        policy_->OnInsert(internal::PolicyEntryOf(r.meta, charge));
        index_[r.meta.id] = DiskEntry{r.meta, r.payload_bytes, r.written_unix_micros, 0};
        bytes_ += charge;
      }
      MakeRoomLocked(0, &trimmed);
    }
    rocksdb::WriteBatch batch;
    for (const std::string& k : bad_keys) {
      batch.Delete(meta_cf(), k);
      batch.Delete(blocks_cf(), k);
    }
    for (const BlockId& id : trimmed) AddDelete(&batch, id);
    return FromRocks(db_->Write(write_options_, &batch), "dropping stale entries");
  }

  absl::StatusOr<PutOutcome> Put(BlockPtr block, std::vector<Evicted>* evicted) override {
    if (absl::Status s = internal::ValidateBlock(*block); !s.ok()) return s;
    const BlockId& id = block->meta.id;
    const uint64_t charge = ChargeOf(block->payload.size());
    if (charge > options_.capacity_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("block of ", FormatBytes(charge), " does not fit the disk tier (",
                       FormatBytes(options_.capacity_bytes), ")"));
    }
    const int64_t now = internal::NowUnixMicros();
    std::vector<BlockId> victims;
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      auto it = index_.find(id);
      if (it != index_.end()) {
        policy_->OnAccess(id);
        it->second.last_access_unix_micros = now;
        return PutOutcome::kAlreadyPresent;
      }
      const PolicyEntry entry = internal::PolicyEntryOf(block->meta, charge);
      if (!policy_->Admit(entry)) return PutOutcome::kNotAdmitted;
      MakeRoomLocked(charge, &victims);
      generation = ++next_generation_;
      policy_->OnInsert(entry);
      index_[id] = DiskEntry{block->meta, block->payload.size(), now, generation};
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
      auto it = index_.find(id);
      still_ours = it != index_.end() && it->second.pending_generation == generation;
      if (!written.ok()) {
        if (still_ours) RemoveLocked(it, RemovalReason::kEvicted);
        return written;
      }
      if (still_ours) {
        it->second.pending_generation = 0;
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
    BlockMeta meta;
    uint64_t payload_bytes;
    {
      absl::MutexLock lock(&mu_);
      auto it = index_.find(id);
      if (it == index_.end() || it->second.pending_generation != 0) {
        ++stats_.misses;
        return absl::NotFoundError("not in the disk tier");
      }
      meta = it->second.meta;
      payload_bytes = it->second.payload_bytes;
    }
    rocksdb::PinnableSlice value;
    rocksdb::ReadOptions read_options;
    read_options.verify_checksums = true;
    const rocksdb::Status s = db_->Get(read_options, blocks_cf(), DbKey(id), &value);
    const bool intact = s.ok() && value.size() == payload_bytes &&
                        PayloadChecksum(absl::string_view(value.data(), value.size())) ==
                            meta.checksum;
    bool dropped = false;
    if (!intact) {
      // Gone underneath us (erased meanwhile), unreadable or corrupt: never served.
      absl::MutexLock lock(&mu_);
      ++stats_.misses;
      if (!s.IsNotFound()) ++stats_.checksum_failures;
      auto it = index_.find(id);
      dropped = it != index_.end() && it->second.pending_generation == 0;
      if (dropped) RemoveLocked(it, RemovalReason::kCorrupt);
    }
    if (!intact) {
      if (dropped) Commit({id}, nullptr, "dropping a bad block").IgnoreError();  // Counted.
      return absl::NotFoundError(s.ok() ? "disk copy failed its checksum; dropped"
                                        : "disk copy unreadable; dropped");
    }
    auto block = std::make_shared<Block>();
    block->meta = meta;
    block->payload.assign(value.data(), value.size());
    absl::MutexLock lock(&mu_);
    ++stats_.hits;
    auto it = index_.find(id);
    if (it != index_.end()) {
      policy_->OnAccess(id);
      it->second.last_access_unix_micros = internal::NowUnixMicros();
    }
    return BlockPtr(std::move(block));
  }

  bool Contains(const BlockId& id) const override {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    return it != index_.end() && it->second.pending_generation == 0;
  }

  std::optional<BlockInfo> Inspect(const BlockId& id) const override {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return std::nullopt;
    return InfoOf(it->second);
  }

  std::vector<BlockInfo> List(const Filter& filter, size_t limit) const override {
    std::vector<BlockInfo> out;
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : index_) {
      if (out.size() >= limit) break;
      if (filter && !filter(entry.meta)) continue;
      out.push_back(InfoOf(entry));
    }
    return out;
  }

  bool Erase(const BlockId& id) override {
    {
      absl::MutexLock lock(&mu_);
      auto it = index_.find(id);
      if (it == index_.end()) return false;
      RemoveLocked(it, RemovalReason::kErased);
    }
    Commit({id}, nullptr, "erasing a block").IgnoreError();  // Counted; retried.
    return true;
  }

  uint64_t EraseIf(const std::function<bool(const BlockMeta&)>& pred) override {
    std::vector<BlockId> doomed;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = index_.begin(); it != index_.end();) {
        if (!pred(it->second.meta)) {
          ++it;
          continue;
        }
        doomed.push_back(it->first);
        RemoveLocked(it++, RemovalReason::kErased);
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
      for (auto it = index_.begin(); it != index_.end();) {
        doomed.push_back(it->first);
        RemoveLocked(it++, std::nullopt);
      }
      if (listener_ != nullptr) listener_->OnCleared(TierId::kDisk);
    }
    const uint64_t erased = doomed.size();
    Commit(std::move(doomed), nullptr, "erasing blocks").IgnoreError();  // Counted; retried.
    return erased;
  }

  TierStats Stats() const override {
    absl::MutexLock lock(&mu_);
    TierStats s = stats_;
    s.blocks = index_.size();
    s.bytes = bytes_;
    s.capacity_bytes = options_.capacity_bytes;
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
    if (s.ok()) return absl::OkStatus();
    ++stats_.write_errors;
    pending_deletes_.insert(deletes.begin(), deletes.end());
    return FromRocks(s, what);
  }

  rocksdb::ColumnFamilyHandle* meta_cf() const { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* blocks_cf() const { return handles_[2]; }

  void AddDelete(rocksdb::WriteBatch* batch, const BlockId& id) const {
    const std::string key = DbKey(id);
    batch->Delete(meta_cf(), key);
    batch->Delete(blocks_cf(), key);
  }

  // Evicts until `charge` more bytes fit; the victims' ids go to `victims` for deletion.
  void MakeRoomLocked(uint64_t charge, std::vector<BlockId>* victims)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (bytes_ + charge > options_.capacity_bytes) {
      std::optional<Victim> victim = policy_->PopVictim();
      if (!victim) break;
      auto it = index_.find(victim->id);
      if (it == index_.end()) continue;
      bytes_ -= ChargeOf(it->second.payload_bytes);
      index_.erase(it);
      ++stats_.evictions;
      victims->push_back(victim->id);
    }
  }

  // Drops an index entry and tells the policy, and the listener why when `reason` is set.
  void RemoveLocked(absl::flat_hash_map<BlockId, DiskEntry>::iterator it,
                    std::optional<RemovalReason> reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (listener_ != nullptr && reason) listener_->OnRemoved(it->first, TierId::kDisk, *reason);
    policy_->OnErase(it->first);
    bytes_ -= ChargeOf(it->second.payload_bytes);
    index_.erase(it);
  }

  static BlockInfo InfoOf(const DiskEntry& e) {
    BlockInfo info;
    info.meta = e.meta;
    info.payload_bytes = e.payload_bytes;
    info.tier = TierId::kDisk;
    info.on_disk = true;
    info.last_access_unix_micros = e.last_access_unix_micros;
    return info;
  }

  // Constant after construction.
  const DiskTierOptions options_;
  StoreListener* const listener_ = options_.listener;  // Null when nobody listens.
  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // default, meta, blocks.
  rocksdb::WriteOptions write_options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<BlockId, DiskEntry> index_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<EvictionPolicy> policy_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 0;
  TierStats stats_ ABSL_GUARDED_BY(mu_);
  // Deletes a failed write left undone, retried with the next write; see Commit.
  absl::flat_hash_set<BlockId> pending_deletes_ ABSL_GUARDED_BY(mu_);
  bool resume_before_write_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockStore>> NewDiskTier(const DiskTierOptions& options) {
  return internal::NewDiskTierOnEnv(options, nullptr);
}

absl::StatusOr<std::unique_ptr<BlockStore>> internal::NewDiskTierOnEnv(
    const DiskTierOptions& options, rocksdb::Env* env) {
  if (options.path.empty()) return absl::InvalidArgumentError("disk tier: path is empty");
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy = NewEvictionPolicy(options.eviction);
  if (!policy.ok()) return policy.status();

  rocksdb::Options db_options;
  if (env != nullptr) db_options.env = env;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.max_total_wal_size = 256ull << 20;

  rocksdb::ColumnFamilyOptions meta_options;
  rocksdb::ColumnFamilyOptions blocks_options;
  // Payloads live in blob files: compaction moves only the small blob references.
  blocks_options.enable_blob_files = true;
  blocks_options.min_blob_size = 0;
  blocks_options.blob_file_size = 256ull << 20;
  blocks_options.enable_blob_garbage_collection = true;
  blocks_options.blob_garbage_collection_age_cutoff = 0.25;
  blocks_options.write_buffer_size = 64ull << 20;

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
  return std::unique_ptr<BlockStore>(std::move(tier));
}

}  // namespace kvcache
