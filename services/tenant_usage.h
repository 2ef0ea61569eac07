// What each tenant holds in each tier, and the byte quotas that bound it (docs/security.md,
// "Quotas"). Internal to services/; in use only with auth on.
//
// With auth on every stored namespace starts with its tenant's 8-byte tag (services/
// access.h), so the store's change hook (cachestore/store_events.h) says which tenant holds
// which block where. TenantUsage keeps, per tenant and tier, its blocks in the order they
// arrived there (a block read back from disk arrives in RAM again) and their bytes, charged
// as the tiers charge their capacity (ChargeOf(payload, tier)).
//
// A tenant over its quota in a tier makes room in its own share, oldest first: out of RAM
// its blocks are demoted to disk, out of disk they are dropped; other tenants' blocks are
// never touched. Trim runs on the Put's thread for the writer's tenant (a tenant writing
// faster than it can be trimmed pays for it itself) and on a background thread for what
// arrives otherwise (demotions reaching disk, a quota lowered by a reload). A tenant can
// therefore be over its quota only by the Puts in flight, for as long as they take.
//
// Cost: about 130 bytes of RAM per stored block (its id, charge and links, in a node of
// the map), with auth on only.
//
// Thread safety: every method may be called from any thread. The StoreListener methods run
// under the store's locks and only take this class's own lock.

#ifndef KVCACHE_SERVICES_TENANT_USAGE_H_
#define KVCACHE_SERVICES_TENANT_USAGE_H_

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "cachestore/block_store.h"
#include "cachestore/store_events.h"
#include "services/access.h"

namespace kvcache {

struct TierUsage {
  uint64_t blocks = 0;
  uint64_t bytes = 0;        // Charged: ChargeOf(payload, tier) per block.
  uint64_t quota_bytes = 0;  // 0: no quota.
  // Blocks moved out (demoted from RAM, dropped from disk) to keep within the quota.
  uint64_t quota_evictions = 0;
};

struct TenantUsageStats {
  std::string tenant;  // "" for a tag no tenant in the file has (a tenant since removed).
  TierUsage ram;
  TierUsage disk;
};

class TenantUsage final : public StoreListener {
 public:
  // `next` (may be null) hears every change after this does.
  explicit TenantUsage(StoreListener* next);
  ~TenantUsage() override;  // Stop()s.

  // Counts what `store` holds already (the disk tier does not report the blocks it reloads
  // at start), takes the tenants and quotas from `access`, and starts the background
  // trimmer. Call once, before serving. REQUIRES: both outlive this.
  void Start(TieredStore* store, const AccessControl* access);

  // Stops the background trimmer (waiting for it); call before the store goes. The
  // listener methods go on counting.
  void Stop();

  // Takes the tenants and quotas from the access file again (after a reload) and trims
  // those now over.
  void Refresh();

  // OK when a block of `payload_bytes` can be held by `tenant` at all; RESOURCE_EXHAUSTED
  // when it is larger than the tenant's RAM quota (so that it could never be stored).
  absl::Status CheckFits(const std::string& tenant, uint64_t payload_bytes) const;

  // Brings `tenant` back within its quotas, on the caller's thread (after a Put).
  void Trim(const std::string& tenant);

  // Every tenant in the access file in name order, then (as tenant "") the blocks of
  // namespaces no tenant in the file has, if any.
  std::vector<TenantUsageStats> Snapshot() const;

  // StoreListener.
  void OnStored(const Block& block, TierId tier) override;
  void OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) override;
  void OnCleared(TierId tier) override;

 private:
  // One block of a share: a node of the share's arrival list.
  struct Entry {
    uint64_t charge = 0;
    const BlockId* id = nullptr;  // The map's own key (node_hash_map: stable).
    Entry* prev = nullptr;
    Entry* next = nullptr;
  };
  // What one tenant holds in one tier.
  struct Share {
    absl::node_hash_map<BlockId, Entry> entries;
    Entry* oldest = nullptr;
    Entry* newest = nullptr;
    uint64_t bytes = 0;
    uint64_t quota_evictions = 0;
  };
  struct Tenant {
    std::string name;  // "" when no tenant in the file has this tag.
    TenantQuota quota;
    Share tiers[2];  // By TierId.
  };

  static int Index(TierId tier) { return tier == TierId::kRam ? 0 : 1; }
  static uint64_t QuotaOf(const Tenant& t, TierId tier) {
    return tier == TierId::kRam ? t.quota.ram_bytes : t.quota.disk_bytes;
  }
  void Add(uint64_t tag, const BlockId& id, uint64_t charge, TierId tier)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Unlink(Share& share, Entry* e);
  // Takes the oldest blocks of `tag` in `tier` off its books until it is within its quota;
  // the caller then evicts them from the store.
  std::vector<BlockId> PickOverQuota(uint64_t tag, TierId tier)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrimTag(uint64_t tag);
  void TrimmerLoop();

  StoreListener* const next_;
  TieredStore* store_ = nullptr;              // Set by Start.
  const AccessControl* access_ = nullptr;     // Set by Start.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Tenant> tenants_ ABSL_GUARDED_BY(mu_);  // By tag.
  absl::flat_hash_set<uint64_t> over_ ABSL_GUARDED_BY(mu_);  // Tags for the trimmer.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread trimmer_;
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_TENANT_USAGE_H_
