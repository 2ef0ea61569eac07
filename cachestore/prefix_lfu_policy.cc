// prefix-lfu: LFU with dynamic aging, leaves first, detached blocks first, newest or oldest
// first among equals as two miniature simulations decide, with a history of evicted
// blocks. See prefix_lfu_policy.h for what each part is for and where it comes from.
//
// A PrefixLfuCore holds one node per tracked block (its count, parent, number of tracked
// children), an ordered set of ranks whose first element is the next victim (or, newest
// first, the last element of the first class), and a bounded FIFO history of the counts of
// evicted blocks. The policy runs three cores: the real one, which tracks what the tier
// holds, and two shadows that see the same requests and evict with a fixed order each.

#include "cachestore/prefix_lfu_policy.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <set>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"

namespace kvcache {
namespace {

// The order of eviction: leaves before interior blocks, then lowest priority, then detached
// blocks before attached ones, then by the sequence number of the last touch (`tie`).
// Detached blocks always go oldest first; among attached leaves of the lowest priority,
// Pop takes the oldest or the newest.
struct Rank {
  bool interior = false;
  uint64_t priority = 0;
  bool attached = false;
  uint64_t tie = 0;
  BlockId id;

  friend bool operator<(const Rank& a, const Rank& b) {
    return std::tie(a.interior, a.priority, a.attached, a.tie, a.id.key, a.id.ns) <
           std::tie(b.interior, b.priority, b.attached, b.tie, b.id.key, b.id.ns);
  }
};

struct Node {
  std::optional<BlockId> parent;  // The chain's previous block, tracked or not.
  uint32_t uses = 0;              // Insert, re-inserts from history, and accesses.
  uint32_t children = 0;          // Tracked blocks whose parent this is.
  bool had_children = false;      // Some chain continued past this block at some point.
  bool read_again = false;        // Accessed after it was stored.
  Rank rank;                      // Its current place in `order_`.
};

struct Remembered {
  uint32_t uses = 0;
  uint64_t stamp = 0;  // Matches the FIFO entry that will expire it.
};

// LFU-DA over a forest of chains. Not thread safe.
class PrefixLfuCore {
 public:
  size_t size() const { return nodes_.size(); }
  bool Contains(const BlockId& id) const { return nodes_.contains(id); }
  std::optional<Key> ParentKeyOf(const BlockId& id) const {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || !it->second.parent) return std::nullopt;
    return it->second.parent->key;
  }

  void Insert(const PolicyEntry& entry) {
    auto [it, inserted] = nodes_.try_emplace(entry.id);
    if (!inserted) return;  // REQUIRES says it is not tracked; stay consistent anyway.
    Node& node = it->second;
    node.uses = 1;
    if (auto h = history_.find(entry.id); h != history_.end()) {
      node.uses = Saturate(uint64_t{h->second.uses} + 1);
      history_.erase(h);
    }
    if (entry.parent) {
      node.parent = BlockId{entry.id.ns, *entry.parent};
      ++chained_inserts_;
      if (nodes_.contains(*node.parent)) ++attached_inserts_;
      AddChild(*node.parent);
    }
    // Children that arrived before this block (a disk index rebuilt in write order, or a
    // parent re-stored after it was evicted) now hang from it.
    if (auto p = pending_children_.find(entry.id); p != pending_children_.end()) {
      node.children = p->second;
      node.had_children = true;
      pending_children_.erase(p);
    }
    node.rank.id = entry.id;
    Place(node);
  }

  void Access(const BlockId& id) {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    Node& node = it->second;
    node.uses = Saturate(uint64_t{node.uses} + 1);
    node.read_again = true;
    order_.erase(node.rank);
    Place(node);
  }

  void Erase(const BlockId& id) {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    order_.erase(it->second.rank);
    Forget(it);
  }

  // Stops tracking the next victim and returns it; nullopt when nothing is tracked.
  std::optional<Victim> Pop(bool newest_first) {
    if (order_.empty()) return std::nullopt;
    auto pick = order_.begin();
    if (newest_first && !pick->interior && pick->attached) {
      Rank last_of_class;
      last_of_class.priority = pick->priority;
      last_of_class.attached = true;
      last_of_class.tie = std::numeric_limits<uint64_t>::max();
      pick = std::prev(order_.upper_bound(last_of_class));
    }
    const Rank first = *pick;
    auto it = nodes_.find(first.id);
    Node& node = it->second;
    order_.erase(pick);
    // Dynamic aging: what stays must now out-score the block that just lost.
    aging_ = std::max(aging_, node.rank.priority);
    // Dropped only when it is visibly a chain's dead tail: never read again, its parent is
    // here and no chain continued past it. "No child seen" means "no child" only where
    // chains stay in this tier: in a sharded tier a child usually sits in another shard,
    // and dropping a prefix would strand all of its chain on disk. So the tail rule applies
    // only while most chained blocks find their parent here (more likely than not that a
    // child would be seen too).
    const bool chains_visible = 2 * attached_inserts_ > chained_inserts_;
    const bool dead_tail =
        chains_visible && first.attached && node.parent && !node.had_children && !node.read_again;
    Victim victim{first.id, !dead_tail};
    Remember(first.id, node.uses);
    Forget(it);
    return victim;
  }

 private:
  static uint32_t Saturate(uint64_t n) {
    return static_cast<uint32_t>(std::min<uint64_t>(n, std::numeric_limits<uint32_t>::max()));
  }

  // (Re)computes the node's rank when it is touched, and files it in `order_`.
  // REQUIRES: the node is not in `order_`.
  void Place(Node& node) {
    node.rank.interior = node.children > 0;
    node.rank.priority = aging_ + node.uses;
    // Attached: a chain's first block, or one whose parent this tier tracks now.
    node.rank.attached = !node.parent || nodes_.contains(*node.parent);
    ++seq_;
    node.rank.tie = seq_;
    order_.insert(node.rank);
  }

  void AddChild(const BlockId& parent) {
    auto it = nodes_.find(parent);
    if (it == nodes_.end()) {
      ++pending_children_[parent];
      return;
    }
    Node& p = it->second;
    p.had_children = true;
    if (p.children++ == 0) {
      order_.erase(p.rank);
      p.rank.interior = true;
      order_.insert(p.rank);
    }
  }

  void RemoveChild(const BlockId& parent) {
    auto it = nodes_.find(parent);
    if (it == nodes_.end()) {
      auto p = pending_children_.find(parent);
      if (p != pending_children_.end() && --p->second == 0) pending_children_.erase(p);
      return;
    }
    Node& p = it->second;
    if (p.children > 0 && --p.children == 0) {
      order_.erase(p.rank);
      p.rank.interior = false;
      order_.insert(p.rank);
    }
  }

  // Stops tracking a node that is already out of `order_`.
  void Forget(absl::node_hash_map<BlockId, Node>::iterator it) {
    const BlockId id = it->first;
    const std::optional<BlockId> parent = it->second.parent;
    const uint32_t children = it->second.children;
    nodes_.erase(it);
    if (parent) RemoveChild(*parent);
    if (children > 0) pending_children_[id] += children;  // Orphans until it returns.
  }

  // Keeps the count of an evicted block, in a FIFO as long as the number of blocks tracked
  // (ARC's history of c entries).
  void Remember(const BlockId& id, uint32_t uses) {
    const uint64_t stamp = ++seq_;
    history_[id] = Remembered{uses, stamp};
    fifo_.emplace_back(id, stamp);
    const size_t limit = std::max<size_t>(nodes_.size(), 1);
    while (history_.size() > limit || fifo_.size() > 2 * limit) {
      const auto& [old_id, old_stamp] = fifo_.front();
      auto h = history_.find(old_id);
      if (h != history_.end() && h->second.stamp == old_stamp) history_.erase(h);
      fifo_.pop_front();
    }
  }

  absl::node_hash_map<BlockId, Node> nodes_;
  std::set<Rank> order_;
  // Tracked children of blocks that are not tracked, by the missing parent.
  absl::flat_hash_map<BlockId, uint32_t> pending_children_;
  absl::flat_hash_map<BlockId, Remembered> history_;
  std::deque<std::pair<BlockId, uint64_t>> fifo_;
  uint64_t aging_ = 0;             // L: the priority of the last victim.
  uint64_t chained_inserts_ = 0;   // Inserts that named a parent...
  uint64_t attached_inserts_ = 0;  // ... and found it tracked here.
  uint64_t seq_ = 0;
};

// Set dueling (DIP, Qureshi et al. 2007) for a fully associative cache: two shadow cores
// see every request (a real access or insert), each holding as many blocks as the real one
// and evicting newest first or oldest first; a saturating counter records which would have
// hit where the other missed, and the real core evicts in the order that is ahead. The
// shadows hold keys and counts only, never payloads.
class PrefixLfuPolicy final : public EvictionPolicy {
 public:
  absl::string_view Name() const override { return "prefix-lfu"; }

  void OnInsert(const PolicyEntry& entry) override {
    if (real_.Contains(entry.id)) return;
    Shadow(entry, real_.size() + 1);
    real_.Insert(entry);
  }
  void OnAccess(const BlockId& id) override {
    if (!real_.Contains(id)) return;
    Shadow(PolicyEntry{id, real_.ParentKeyOf(id), 0}, real_.size());
    real_.Access(id);
  }
  void OnErase(const BlockId& id) override {
    real_.Erase(id);
    newest_.Erase(id);
    oldest_.Erase(id);
  }
  std::optional<Victim> PopVictim() override { return real_.Pop(selector_ >= 0); }

 private:
  // One request in a shadow holding at most `room` blocks; returns whether it hit.
  static bool Request(PrefixLfuCore& core, const PolicyEntry& entry, size_t room,
                      bool newest_first) {
    if (core.Contains(entry.id)) {
      core.Access(entry.id);
      return true;
    }
    while (core.size() >= room && core.Pop(newest_first)) {
    }
    core.Insert(entry);
    return false;
  }
  void Shadow(const PolicyEntry& entry, size_t room) {
    const bool a = Request(newest_, entry, room, true);
    const bool b = Request(oldest_, entry, room, false);
    if (a && !b) selector_ = std::min<int64_t>(selector_ + 1, kSelectorLimit);
    if (b && !a) selector_ = std::max<int64_t>(selector_ - 1, -kSelectorLimit);
  }
  // DIP's 10-bit policy selector: a switch takes at least as many decisive requests as
  // the counter has moved the other way, so a short burst cannot flip a long trend.
  static constexpr int64_t kSelectorLimit = 1024;

  PrefixLfuCore real_;
  PrefixLfuCore newest_;  // Shadow: newest attached leaf first.
  PrefixLfuCore oldest_;  // Shadow: oldest first.
  int64_t selector_ = 0;  // > 0: newest first has been winning. Starts newest first.
};

}  // namespace

std::unique_ptr<EvictionPolicy> NewPrefixLfuPolicy() { return std::make_unique<PrefixLfuPolicy>(); }

}  // namespace kvcache
