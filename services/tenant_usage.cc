#include "services/tenant_usage.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/byte_size.h"
#include "common/little_endian.h"

namespace kvcache {
namespace {

uint64_t TagOf(const BlockId& id) {
  return GetLittleEndian<uint64_t>(reinterpret_cast<const char*>(id.ns.bytes.data()));
}

}  // namespace

TenantUsage::TenantUsage(StoreListener* next) : next_(next) {}

TenantUsage::~TenantUsage() { Stop(); }

void TenantUsage::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (trimmer_.joinable()) trimmer_.join();
}

void TenantUsage::Start(TieredStore* store, const AccessControl* access) {
  store_ = store;
  access_ = access;
  // What the store holds already: reloaded from disk (RAM starts empty), oldest first.
  std::vector<BlockInfo> held = store->List(nullptr, SIZE_MAX);
  std::sort(held.begin(), held.end(), [](const BlockInfo& a, const BlockInfo& b) {
    return a.last_access_unix_micros < b.last_access_unix_micros;
  });
  {
    absl::MutexLock lock(&mu_);
    for (const BlockInfo& b : held) {
      if (b.tier == TierId::kRam) {
        Add(TagOf(b.meta.id), b.meta.id, ChargeOf(b.payload_bytes, TierId::kRam), TierId::kRam);
      }
      if (b.tier == TierId::kDisk || b.on_disk) {
        Add(TagOf(b.meta.id), b.meta.id, ChargeOf(b.payload_bytes, TierId::kDisk), TierId::kDisk);
      }
    }
  }
  Refresh();
  trimmer_ = std::thread([this] { TrimmerLoop(); });
}

void TenantUsage::Refresh() {
  std::vector<std::pair<std::string, TenantQuota>> named;
  for (const std::string& tenant : access_->Tenants()) {
    named.emplace_back(tenant, access_->QuotaOf(tenant));
  }
  absl::MutexLock lock(&mu_);
  for (auto& [tag, t] : tenants_) {
    t.name.clear();
    t.quota = TenantQuota{};
  }
  for (const auto& [tenant, quota] : named) {
    Tenant& t = tenants_[TenantTag(tenant)];
    t.name = tenant;
    t.quota = quota;
  }
  for (const auto& [tag, t] : tenants_) {
    for (TierId tier : {TierId::kRam, TierId::kDisk}) {
      const uint64_t quota = QuotaOf(t, tier);
      if (quota != 0 && t.tiers[Index(tier)].bytes > quota) over_.insert(tag);
    }
  }
}

absl::Status TenantUsage::CheckFits(const std::string& tenant, uint64_t payload_bytes) const {
  absl::MutexLock lock(&mu_);
  auto it = tenants_.find(TenantTag(tenant));
  if (it == tenants_.end()) return absl::OkStatus();
  const uint64_t quota = it->second.quota.ram_bytes;
  if (quota == 0 || ChargeOf(payload_bytes) <= quota) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "a block of ", FormatBytes(payload_bytes), " (", FormatBytes(ChargeOf(payload_bytes)),
      " charged) is larger than the RAM quota of tenant '", tenant, "' (", FormatBytes(quota),
      "): raise the quota in the --auth-tokens file or send smaller blocks"));
}

void TenantUsage::Trim(const std::string& tenant) { TrimTag(TenantTag(tenant)); }

void TenantUsage::TrimTag(uint64_t tag) {
  // RAM first: what it demotes can then push the disk share over, trimmed next.
  for (TierId tier : {TierId::kRam, TierId::kDisk}) {
    std::vector<BlockId> victims;
    {
      absl::MutexLock lock(&mu_);
      victims = PickOverQuota(tag, tier);
    }
    for (const BlockId& id : victims) store_->EvictFrom(id, tier);
  }
}

std::vector<BlockId> TenantUsage::PickOverQuota(uint64_t tag, TierId tier) {
  std::vector<BlockId> victims;
  auto it = tenants_.find(tag);
  if (it == tenants_.end()) return victims;
  const uint64_t quota = QuotaOf(it->second, tier);
  Share& share = it->second.tiers[Index(tier)];
  while (quota != 0 && share.bytes > quota && share.oldest != nullptr) {
    Entry* e = share.oldest;
    victims.push_back(*e->id);
    share.bytes -= e->charge;
    ++share.quota_evictions;
    Unlink(share, e);
    share.entries.erase(victims.back());  // Its OnRemoved then finds nothing to undo.
  }
  return victims;
}

void TenantUsage::TrimmerLoop() {
  while (true) {
    std::vector<uint64_t> tags;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](TenantUsage* u) ABSL_EXCLUSIVE_LOCKS_REQUIRED(u->mu_) {
            return u->stopping_ || !u->over_.empty();
          },
          this));
      if (stopping_) return;
      tags.assign(over_.begin(), over_.end());
      over_.clear();
    }
    for (uint64_t tag : tags) TrimTag(tag);
  }
}

void TenantUsage::Add(uint64_t tag, const BlockId& id, uint64_t charge, TierId tier) {
  Tenant& t = tenants_[tag];
  Share& share = t.tiers[Index(tier)];
  auto [it, inserted] = share.entries.try_emplace(id);
  if (!inserted) return;  // Counted already (Start's scan meeting a change).
  Entry& e = it->second;
  e.charge = charge;
  e.id = &it->first;
  e.prev = share.newest;
  if (share.newest != nullptr) share.newest->next = &e;
  share.newest = &e;
  if (share.oldest == nullptr) share.oldest = &e;
  share.bytes += charge;
  const uint64_t quota = QuotaOf(t, tier);
  if (quota != 0 && share.bytes > quota) over_.insert(tag);
}

void TenantUsage::Unlink(Share& share, Entry* e) {
  (e->prev != nullptr ? e->prev->next : share.oldest) = e->next;
  (e->next != nullptr ? e->next->prev : share.newest) = e->prev;
}

void TenantUsage::OnStored(const Block& block, TierId tier) {
  {
    absl::MutexLock lock(&mu_);
    Add(TagOf(block.meta.id), block.meta.id, ChargeOf(block.payload.size(), tier), tier);
  }
  if (next_ != nullptr) next_->OnStored(block, tier);
}

void TenantUsage::OnRemoved(const BlockId& id, TierId tier, RemovalReason reason) {
  {
    absl::MutexLock lock(&mu_);
    auto t = tenants_.find(TagOf(id));
    if (t != tenants_.end()) {
      Share& share = t->second.tiers[Index(tier)];
      auto it = share.entries.find(id);
      if (it != share.entries.end()) {
        share.bytes -= it->second.charge;
        Unlink(share, &it->second);
        share.entries.erase(it);
      }
    }
  }
  if (next_ != nullptr) next_->OnRemoved(id, tier, reason);
}

void TenantUsage::OnCleared(TierId tier) {
  {
    absl::MutexLock lock(&mu_);
    for (auto& [tag, t] : tenants_) {
      Share& share = t.tiers[Index(tier)];
      share.entries.clear();
      share.oldest = share.newest = nullptr;
      share.bytes = 0;
    }
  }
  if (next_ != nullptr) next_->OnCleared(tier);
}

std::vector<TenantUsageStats> TenantUsage::Snapshot() const {
  std::vector<TenantUsageStats> out;
  TenantUsageStats nameless;  // Every tag no tenant in the file has, summed.
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [tag, t] : tenants_) {
      TenantUsageStats s;
      s.tenant = t.name;
      for (TierId tier : {TierId::kRam, TierId::kDisk}) {
        const Share& share = t.tiers[Index(tier)];
        TierUsage& u = tier == TierId::kRam ? s.ram : s.disk;
        u.blocks = share.entries.size();
        u.bytes = share.bytes;
        u.quota_bytes = QuotaOf(t, tier);
        u.quota_evictions = share.quota_evictions;
      }
      if (!t.name.empty()) {
        out.push_back(std::move(s));
        continue;
      }
      for (auto [from, to] : {std::pair{&s.ram, &nameless.ram}, {&s.disk, &nameless.disk}}) {
        to->blocks += from->blocks;
        to->bytes += from->bytes;
        to->quota_evictions += from->quota_evictions;
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const TenantUsageStats& a, const TenantUsageStats& b) {
    return a.tenant < b.tenant;
  });
  if (nameless.ram.blocks + nameless.disk.blocks > 0) out.push_back(std::move(nameless));
  return out;
}

}  // namespace kvcache
