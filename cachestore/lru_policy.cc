// Least recently used: a list in recency order plus a hash index into it. O(1) per call.
//
// The tiers do not run this object: with "lru" they thread the recency list through their
// own index slots (cachestore/compact_index_internal.h, IntrusiveLru), because a policy on
// its own must key a map by the 64-byte id, which cost ~180-260 B a block on top of the
// index. This is LRU behind the EvictionPolicy seam, for whatever drives a policy directly
// (the policy tests), and the behaviour the tiers' intrusive LRU must match.

#include <list>

#include "absl/container/flat_hash_map.h"
#include "cachestore/eviction_policy.h"

namespace kvcache {
namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  absl::string_view Name() const override { return "lru"; }

  void OnInsert(const PolicyEntry& entry) override {
    order_.push_front(entry.id);
    index_[entry.id] = order_.begin();
  }

  void OnAccess(const BlockId& id) override {
    auto it = index_.find(id);
    if (it == index_.end()) return;
    order_.splice(order_.begin(), order_, it->second);
  }

  void OnErase(const BlockId& id) override {
    auto it = index_.find(id);
    if (it == index_.end()) return;
    order_.erase(it->second);
    index_.erase(it);
  }

  std::optional<Victim> PopVictim() override {
    if (order_.empty()) return std::nullopt;
    Victim victim{order_.back(), true};
    index_.erase(victim.id);
    order_.pop_back();
    return victim;
  }

 private:
  std::list<BlockId> order_;  // Most recent first.
  absl::flat_hash_map<BlockId, std::list<BlockId>::iterator> index_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> NewLruPolicy() { return std::make_unique<LruPolicy>(); }

}  // namespace kvcache
