// reuse-density: eviction by learned hit density over the prefix tree, with a key history
// four times the capacity. See reuse_density_policy.h for the design and docs/eviction.md
// for the measurements.

#include "cachestore/reuse_density_policy.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/numeric/bits.h"

namespace kvcache {
namespace {

// Ages are counted in policy events (inserts and accesses) and fall in log-spaced bins, four
// per doubling, so the histograms have no scale of their own: the same bins serve a cache of
// a hundred blocks and one of a hundred million.
constexpr int kBinsPerDoubling = 4;
constexpr int kNumBins = 48 * kBinsPerDoubling;  // Ages up to 2^48 events.

int BinOf(uint64_t age) {
  const uint64_t a = age + 1;
  const int log = 63 - absl::countl_zero(a);
  if (log < 2) return static_cast<int>(a - 1);  // Ages 0, 1, 2 have a bin each.
  const int sub = static_cast<int>((a >> (log - 2)) & 3);
  return std::min(kNumBins - 1, log * kBinsPerDoubling + sub);
}

// The smallest age in bin `b` (BinStart(BinOf(x)) <= x < BinStart(BinOf(x) + 1)).
double BinStart(int b) {
  if (b < 3) return b;
  return std::ldexp(1.0 + (b % kBinsPerDoubling) / 4.0, b / kBinsPerDoubling) - 1;
}

// Classes whose reuse is learned separately: uses so far (1, 2, 3, 4 or more), times whether
// a chain ever continued past the block (a request's last block almost never comes back).
constexpr uint32_t kUseBuckets = 4;
constexpr int kNumClasses = 2 * kUseBuckets;

int ClassOf(uint32_t uses, bool had_children) {
  const uint32_t u = std::clamp<uint32_t>(uses, 1, kUseBuckets);
  return static_cast<int>((u - 1) * 2 + (had_children ? 1 : 0));
}
uint32_t UsesOfClass(int cls) { return static_cast<uint32_t>(cls / 2 + 1); }
bool HadChildrenOfClass(int cls) { return cls % 2 == 1; }

// Design constants (not fitted to any trace; docs/eviction.md shows the sensitivity):
// the history remembers kHistoryFactor times the capacity in evicted keys; a victim is the
// lowest density among kSample random leaves, the kTailScan least recently used blocks and
// the parent the last eviction exposed (LHD samples 64); the histograms lose half their
// weight every kHalfLifeUpdates recomputations (one per capacity's worth of events).
constexpr uint64_t kHistoryFactor = 4;
constexpr int kSample = 64;
constexpr int kTailScan = 16;
constexpr double kHalfLifeUpdates = 64;

// The key history: evicted blocks by 64-bit fingerprint (the seeded IndexHash of the id, so
// clients cannot aim collisions), with the class each left in, its last use and the bin of
// its provisional end, 16 bytes each in a set-associative table of 8-way buckets (two cache
// lines: one probe per lookup, no pointers, no per-entry allocation). It forgets in the
// order it learns (FIFO over evictions): each entry carries the epoch of its eviction, and
// an entry more than `limit` evictions old counts as gone. The table has a quarter more
// slots than `limit`, so a bucket rarely fills with live entries; when one does, its oldest
// entry goes a little early.
class History {
 public:
  struct Ghost {
    uint64_t last = 0;  // Event time of its last use (modulo 2^40).
    int cls = 0;
    int end_bin = 0;
  };

  // Slots per remembered key (the table's slack and its growth steps, at their largest).
  static constexpr double kSlotsPerKey = 1.25 * 1.125;
  static constexpr uint64_t kBytesPerKey = static_cast<uint64_t>(16 * kSlotsPerKey + 0.999);

  // Remembers up to `limit` keys from now on (grows the table in steps of 1/8).
  void SetLimit(uint64_t limit, uint64_t evictions) {
    limit_ = std::max<uint64_t>(limit, 1);
    if (limit_ <= sized_for_) return;
    sized_for_ = std::max(limit_, sized_for_ + sized_for_ / 8);
    // An epoch is a power of two of evictions, at most a quarter of the epoch counter's
    // range to a window, so ages are exact while they matter; kept entries are re-stamped.
    const uint64_t old_step = step_, old_epoch = epoch_;
    while (step_ * (kEpochs / 4) < 2 * sized_for_) step_ *= 2;
    epoch_ = (evictions / step_) % kEpochs;
    std::vector<Slot> old = std::move(slots_);
    buckets_ = (sized_for_ * 5 / 4 + kWays - 1) / kWays;
    slots_.assign(buckets_ * kWays, Slot{});
    for (Slot s : old) {
      const uint64_t age = (old_epoch - (s.meta >> 51)) % kEpochs * old_step;
      if (s.fp == 0 || age >= Window()) continue;
      s.meta = (s.meta & ((uint64_t{1} << 51) - 1)) | (((epoch_ - age / step_) % kEpochs) << 51);
      Store(s);
    }
  }

  // The ghost of `fp`, forgotten as it is returned; nullopt when not remembered.
  std::optional<Ghost> Take(uint64_t fp) {
    if (slots_.empty()) return std::nullopt;
    fp = Nonzero(fp);
    for (Slot* s : Slots(fp)) {
      if (s->fp != fp || !Alive(*s)) continue;
      const Ghost g{s->meta & kLastMask, static_cast<int>((s->meta >> 40) & 7),
                    static_cast<int>((s->meta >> 43) & 0xff)};
      *s = Slot{};
      takes_ += 1;
      return g;
    }
    return std::nullopt;
  }

  // Remembers an evicted block; `evictions` counts evictions so far (the FIFO's clock).
  void Put(uint64_t fp, const Ghost& g, uint64_t evictions) {
    if (slots_.empty()) return;
    epoch_ = (evictions / step_) % kEpochs;
    if ((puts_ += 1) > 4 * static_cast<double>(limit_)) {  // Follows a changing return rate.
      puts_ /= 2;
      takes_ /= 2;
    }
    Store(Slot{Nonzero(fp), (g.last & kLastMask) | (uint64_t(g.cls & 7) << 40) |
                                (uint64_t(g.end_bin & 0xff) << 43) | (epoch_ << 51)});
  }

 private:
  static constexpr int kWays = 8;
  static constexpr uint64_t kEpochs = 1 << 13;
  static constexpr uint64_t kLastMask = (uint64_t{1} << 40) - 1;
  struct Slot {
    uint64_t fp = 0;    // 0: empty.
    uint64_t meta = 0;  // last (40 bits), class (3), end bin (8), eviction epoch (13).
  };

  static uint64_t Nonzero(uint64_t fp) { return fp == 0 ? 1 : fp; }
  // The 2 x kWays slots a key may take: two buckets, from two halves of its fingerprint
  // (multiply-shift onto [0, buckets_), any number of buckets). A new key goes to the one
  // with room (two choices keep buckets even: one rarely fills with live keys).
  std::array<Slot*, 2 * kWays> Slots(uint64_t fp) {
    const auto bucket = [&](uint64_t h) {
      return &slots_[static_cast<uint64_t>((static_cast<unsigned __int128>(h) * buckets_) >> 64) * kWays];
    };
    Slot* const a = bucket(fp);
    Slot* const b = bucket((fp << 32) | (fp >> 32));
    std::array<Slot*, 2 * kWays> out;
    for (int i = 0; i < kWays; ++i) {
      out[i] = a + i;
      out[kWays + i] = b + i;
    }
    return out;
  }
  // Evictions since it was stored, in epochs (each `step_` evictions; limit_ is a quarter
  // of the epoch counter's range, so the age is exact while it matters).
  uint64_t AgeOf(const Slot& s) const { return (epoch_ - (s.meta >> 51)) % kEpochs; }
  bool Alive(const Slot& s) const { return AgeOf(s) * step_ < Window(); }
  // How many evictions back it remembers: `limit` keys not yet returned (what a FIFO that
  // skips returned keys holds), from the share of keys that return; at most 2 x limit.
  uint64_t Window() const {
    const double kept = std::max(puts_ - takes_, puts_ / 2);
    return kept > 0 ? static_cast<uint64_t>(static_cast<double>(limit_) * puts_ / kept) : limit_;
  }
  void Store(const Slot& in) {
    // The same key's older entry, else an empty slot, else the oldest (expired first).
    Slot* victim = nullptr;
    uint64_t oldest = 0;
    for (Slot* s : Slots(in.fp)) {
      if (s->fp == in.fp) {
        *s = in;
        return;
      }
      const uint64_t age = s->fp == 0 ? kEpochs : AgeOf(*s);
      if (victim == nullptr || age > oldest) {
        victim = s;
        oldest = age;
      }
    }
    if (victim->fp != 0 && Alive(*victim)) {
      // All live: move one of them to a free slot of its other bucket (one cuckoo step),
      // which keeps the table's live keys near its size instead of dropping one early.
      for (Slot* s : Slots(in.fp)) {
        for (Slot* f : Slots(s->fp)) {
          if (f->fp == 0 || !Alive(*f)) {
            *f = *s;
            *s = in;
            return;
          }
        }
      }
    }
    *victim = in;
  }
 private:

  std::vector<Slot> slots_;
  uint64_t buckets_ = 0;
  uint64_t limit_ = 0;
  uint64_t sized_for_ = 0;
  uint64_t step_ = 1;
  uint64_t epoch_ = 0;
  double puts_ = 0;   // Keys remembered and...
  double takes_ = 0;  // ... returned (both halved now and then).
};

class ReuseDensityPolicy final : public EvictionPolicy {
 public:
  absl::string_view Name() const override { return "reuse-density"; }

  void OnInsert(const PolicyEntry& entry) override {
    auto [it, inserted] = nodes_.try_emplace(entry.id);
    if (!inserted) return;  // REQUIRES says it is not tracked; stay consistent anyway.
    Tick();
    Node& node = it->second;
    node.last = now_;
    node.uses = 1;
    if (std::optional<History::Ghost> ghost = history_.Take(IndexHash(entry.id))) {
      // Remembered: its return is a hit for the class it left in, at its real reuse
      // distance, and cancels the provisional end booked at its eviction.
      hits_[ghost->cls][BinOf((now_ - ghost->last) & ((uint64_t{1} << 40) - 1))] += 1;
      double& end = ends_[ghost->cls][ghost->end_bin];
      end = std::max(0.0, end - 1);
      node.uses = static_cast<uint8_t>(UsesOfClass(ghost->cls) + 1);
      node.had_children = HadChildrenOfClass(ghost->cls);
    }
    if (entry.parent) {
      node.parent = *entry.parent;
      node.has_parent = true;
      ++chained_inserts_;
      const BlockId parent{entry.id.ns, *entry.parent};
      if (auto p = nodes_.find(parent); p != nodes_.end()) {
        ++attached_inserts_;
        AddChild(&*p);
      } else {
        ++pending_children_[IndexHash(parent)];
      }
    }
    // Children that arrived before this block (a disk index rebuilt in write order, or a
    // parent stored again after its eviction) now hang from it.
    if (auto p = pending_children_.find(IndexHash(entry.id)); p != pending_children_.end()) {
      node.children = p->second;
      node.had_children = true;
      pending_children_.erase(p);
    }
    if (node.children == 0) AddLeaf(&*it);
    LinkFront(&*it);
    capacity_ = std::max<uint64_t>(capacity_, nodes_.size());
  }

  void OnAccess(const BlockId& id) override {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    Tick();
    Node& node = it->second;
    hits_[ClassOf(node.uses, node.had_children)][BinOf(now_ - node.last)] += 1;
    if (node.uses < kUseBuckets) ++node.uses;  // Only 1..4+ matter.
    node.read_again = true;
    node.last = now_;
    if (node.leaf_index != kNotLeaf) leaves_[node.leaf_index].state = StateOf(node);
    Unlink(&*it);
    LinkFront(&*it);
  }

  void OnErase(const BlockId& id) override {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    Forget(it);
  }

  std::optional<Victim> PopVictim() override {
    if (nodes_.empty()) return std::nullopt;
    Entry* pick = Choose();
    // No leaf at all only when clients made a cycle of parents: then least recently used.
    if (pick == nullptr) pick = tail_;
    auto it = nodes_.find(pick->first);
    const Node& node = it->second;
    // Dropped instead of demoted only when it is visibly a chain's dead tail (as prefix-lfu
    // decides it: never read again, its parent here, no chain ever continued past it, and
    // chains mostly visible in this tier).
    const bool chains_visible = 2 * attached_inserts_ > chained_inserts_;
    const bool dead_tail = chains_visible && node.has_parent && !node.had_children &&
                           !node.read_again &&
                           nodes_.contains(BlockId{it->first.ns, node.parent});
    Victim victim{it->first, !dead_tail};
    Remember(it);
    Forget(it);
    return victim;
  }

  uint64_t ExtraBytesPerBlock() const override { return kExtraBytesPerBlock; }

 private:
  struct Node;
  using Map = absl::node_hash_map<BlockId, Node>;
  using Entry = Map::value_type;
  static constexpr uint32_t kNotLeaf = std::numeric_limits<uint32_t>::max();

  struct Node {
    Key parent;              // The chain's previous block (same namespace), if has_parent.
    uint64_t last = 0;       // Event time of the last insert or access.
    Entry* newer = nullptr;  // Recency list, towards the most recent.
    Entry* older = nullptr;  // Towards the least recent.
    uint32_t children = 0;   // Tracked blocks whose parent this is.
    uint32_t leaf_index = kNotLeaf;
    uint8_t uses = 0;        // Inserts and accesses, saturating at kUseBuckets.
    bool has_parent : 1;
    bool had_children : 1;  // Some chain continued past it at some point.
    bool read_again : 1;    // Accessed after it was stored.
    bool exposed : 1;       // In exposed_: its last child was just evicted.
    Node() : has_parent(false), had_children(false), read_again(false), exposed(false) {}
  };

  // A leaf and what sampling needs of it (StateOf: last use << 8 | class), so that a draw
  // reads one contiguous 16-byte entry of the leaf vector instead of a node in the heap.
  struct Leaf {
    Entry* entry;
    uint64_t state;
  };

  // Per tracked block, from the structures' sizes: the node (key and node in one allocation
  // of the node_hash_map, with malloc's 16 bytes, the slot's pointer and control byte), its
  // slot in the leaf vector, a pending-children entry (a split tier keeps one for most
  // blocks: their parent is in another shard), and kHistoryFactor remembered keys. All of it
  // is beyond kBlockOverheadBytes, which covers the tier's own index slot (where LRU keeps
  // its links: the tiers run no separate LRU structure to subtract).
  static constexpr uint64_t kNodeBytes = sizeof(Entry) + 16 + sizeof(void*) + 1 + sizeof(Leaf);
  static constexpr uint64_t kPendingBytes = (sizeof(std::pair<uint64_t, uint32_t>) + 1) * 8 / 7;
  static constexpr uint64_t kExtraBytesPerBlock =
      kNodeBytes + kPendingBytes + kHistoryFactor * History::kBytesPerKey;

  // The lowest-density leaf among the candidates (ties: the oldest); the block of the latest
  // event only when it is the only candidate; nullptr when no block is a leaf. A candidate
  // seen twice weighs the same twice, so no marks are needed.
  Entry* Choose() {
    Entry* best = nullptr;
    Entry* newest = nullptr;
    double best_density = 0;
    uint64_t best_age = 0;
    auto consider = [&](Entry* e, uint64_t state) {
      const uint64_t age = now_ - (state >> 8);
      // The block of the latest event is the tip of the chain being stored (its child
      // comes next), not a request's last block, whatever its class says.
      if (age == 0) {
        newest = e;
        return;
      }
      const double d = density_[state & 0xff][BinOf(age)];
      if (best == nullptr || d < best_density || (d == best_density && age > best_age)) {
        best = e;
        best_density = d;
        best_age = age;
      }
    };
    auto consider_node = [&](Entry* e) {
      if (e->second.leaf_index != kNotLeaf) consider(e, StateOf(e->second));
    };
    for (Entry* e : exposed_) {
      e->second.exposed = false;
      consider_node(e);
    }
    exposed_.clear();
    int scanned = 0;
    for (Entry* e = tail_; e != nullptr && scanned < kTailScan; e = e->second.newer, ++scanned) {
      consider_node(e);
    }
    if (leaves_.size() <= static_cast<size_t>(kSample)) {
      for (const Leaf& l : leaves_) consider(l.entry, l.state);
    } else {
      // Draw every position first and prefetch them: the draws are scattered over the
      // vector, and waiting for each in turn made an eviction cost tens of microseconds.
      std::array<uint32_t, kSample> drawn;
      for (uint32_t& i : drawn) {
        i = static_cast<uint32_t>((static_cast<unsigned __int128>(Random()) * leaves_.size()) >> 64);
        __builtin_prefetch(&leaves_[i]);
      }
      for (uint32_t i : drawn) consider(leaves_[i].entry, leaves_[i].state);
    }
    if (best == nullptr && newest == nullptr && !leaves_.empty()) return leaves_.front().entry;
    return best != nullptr ? best : newest;
  }

  static uint64_t StateOf(const Node& node) {
    return node.last << 8 | static_cast<uint64_t>(ClassOf(node.uses, node.had_children));
  }

  uint64_t Random() {
    // splitmix64 from a fixed seed, so simulations repeat exactly. Which leaves are sampled
    // does not depend on keys, so clients cannot steer it.
    uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  void Tick() {
    ++now_;
    if (++since_update_ >= std::max<uint64_t>(capacity_, 64)) Update();
  }

  // Hit density per class and age (LHD: Beckmann, Chen and Cidon, NSDI 2018): of the blocks
  // of this class that reached this age, the hits still to come over the room-time they will
  // hold until a hit or an end. Ends are booked at eviction, at the age the block will have
  // when the history forgets it, and cancelled if it comes back first; so the densities are
  // those of a cache that kept every block until its reuse or the history's horizon, which
  // ranks blocks by how soon and how surely they come back. Densities are made
  // non-decreasing in uses at equal age (more uses never rank a block lower: frequency is
  // evidence of reuse, and a sparse bin of a frequent class must not invert that).
  //
  // Where chains are split over shards (most parents are in another shard), no shard can
  // hold a chain's tail back until its prefix goes, and a block is no use without its
  // prefix. The densities are then made to respect the prefix order on their own: a
  // block's parent is read whenever the block is, so it is at least as recent and has at
  // least as many uses. Densities also non-increasing in age (within a class) therefore
  // never rank a block above its parent, in whichever shard it lies,
  // and a chain's blocks, touched together, leave every shard at about the same time (as
  // in LRU, but tail first). "A chain continued past it" is only seen when the child falls
  // in the same shard, so that bit is dropped there (both halves share one estimate).
  void Update() {
    since_update_ = 0;
    const double keep = std::exp2(-1.0 / kHalfLifeUpdates);
    // Most chained blocks find their parent in another shard of the tier.
    const bool chains_split = chained_inserts_ > 0 && 2 * attached_inserts_ <= chained_inserts_;
    for (int c = 0; c < kNumClasses; ++c) {
      // Split: the classes c and c ^ 1 differ only in the child bit; both use their sum.
      const int other = chains_split ? (c ^ 1) : c;
      if (chains_split && (c & 1)) {
        density_[c] = density_[c - 1];
        continue;
      }
      double hits = 0, events = 0, weighted = 0;
      for (int b = kNumBins - 1; b >= 0; --b) {
        double h = hits_[c][b], n = hits_[c][b] + ends_[c][b];
        if (other != c) {
          h += hits_[other][b];
          n += hits_[other][b] + ends_[other][b];
        }
        hits += h;
        events += n;
        weighted += n * BinStart(b + 1);
        const double room_time = weighted - events * BinStart(b);
        density_[c][b] = room_time > 0 ? hits / room_time : 0;
      }
      if (chains_split) {
        for (int b = 1; b < kNumBins; ++b) {
          density_[c][b] = std::min(density_[c][b], density_[c][b - 1]);
        }
      }
      if (c >= 2) {  // Classes go by uses in steps of 2 (the child bit is the low bit).
        for (int b = 0; b < kNumBins; ++b) {
          density_[c][b] = std::max(density_[c][b], density_[c - 2][b]);
        }
      }
    }
    // Split, and not one turnover yet (fewer evictions than the capacity): no block has
    // been through the whole cache, ends are missing, and the estimates overrate whatever
    // was reused early; an early mistake strands chains in the other shards. Until then all
    // densities are equal, and the oldest candidate goes (LRU's order).
    if (chains_split && evictions_ < capacity_) {
      for (auto& d : density_) d.fill(0);
    }
    for (int c = 0; c < kNumClasses; ++c) {
      for (int b = 0; b < kNumBins; ++b) {
        hits_[c][b] *= keep;
        ends_[c][b] *= keep;
      }
    }
  }

  void AddLeaf(Entry* e) {
    e->second.leaf_index = static_cast<uint32_t>(leaves_.size());
    leaves_.push_back(Leaf{e, StateOf(e->second)});
  }
  void RemoveLeaf(Entry* e) {
    const uint32_t i = e->second.leaf_index;
    if (i == kNotLeaf) return;
    leaves_[i] = leaves_.back();
    leaves_[i].entry->second.leaf_index = i;
    leaves_.pop_back();
    e->second.leaf_index = kNotLeaf;
  }
  void AddChild(Entry* p) {
    p->second.had_children = true;
    if (p->second.children++ == 0) RemoveLeaf(p);
  }
  void RemoveChild(const BlockId& parent) {
    auto it = nodes_.find(parent);
    if (it == nodes_.end()) {
      auto p = pending_children_.find(IndexHash(parent));
      if (p != pending_children_.end() && --p->second == 0) pending_children_.erase(p);
      return;
    }
    Node& p = it->second;
    if (p.children > 0 && --p.children == 0) {
      AddLeaf(&*it);
      // Exposed by an eviction: the rest of the same chain, the likeliest next victim, is a
      // candidate whatever the sample draws (children before parents).
      if (!p.exposed) {
        p.exposed = true;
        exposed_.push_back(&*it);
      }
    }
  }

  void LinkFront(Entry* e) {
    Node& n = e->second;
    n.newer = nullptr;
    n.older = head_;
    if (head_ != nullptr) head_->second.newer = e;
    head_ = e;
    if (tail_ == nullptr) tail_ = e;
  }
  void Unlink(Entry* e) {
    Node& n = e->second;
    (n.newer != nullptr ? n.newer->second.older : head_) = n.older;
    (n.older != nullptr ? n.older->second.newer : tail_) = n.newer;
    n.newer = n.older = nullptr;
  }

  // Stops tracking a node.
  void Forget(Map::iterator it) {
    const BlockId id = it->first;
    const bool has_parent = it->second.has_parent;
    const Key parent = it->second.parent;
    const uint32_t children = it->second.children;
    Unlink(&*it);
    RemoveLeaf(&*it);
    if (it->second.exposed) exposed_.erase(std::find(exposed_.begin(), exposed_.end(), &*it));
    nodes_.erase(it);
    if (has_parent) RemoveChild(BlockId{id.ns, parent});
    if (children > 0) pending_children_[IndexHash(id)] += children;  // Orphans until it returns.
  }

  // Books the victim's provisional end and files its ghost in a FIFO of kHistoryFactor
  // times the capacity.
  void Remember(Map::iterator it) {
    const Node& node = it->second;
    ++evictions_;
    const int cls = ClassOf(node.uses, node.had_children);
    // Forgotten unread after kHistoryFactor * capacity more evictions, at the rate seen.
    const double horizon = static_cast<double>(kHistoryFactor * capacity_) *
                           static_cast<double>(now_) / static_cast<double>(evictions_);
    const int end_bin = BinOf(now_ - node.last + static_cast<uint64_t>(horizon));
    ends_[cls][end_bin] += 1;
    history_.SetLimit(kHistoryFactor * capacity_, evictions_);
    history_.Put(IndexHash(it->first), History::Ghost{node.last, cls, end_bin}, evictions_);
  }

  Map nodes_;
  std::vector<Leaf> leaves_;     // Tracked blocks without tracked children.
  std::vector<Entry*> exposed_;  // Leaves since the last PopVictim's eviction.
  Entry* head_ = nullptr;        // Most recently used.
  Entry* tail_ = nullptr;        // Least recently used.
  // Tracked children of blocks that are not tracked, by the missing parent's IndexHash.
  absl::flat_hash_map<uint64_t, uint32_t> pending_children_;
  History history_;
  std::array<std::array<double, kNumBins>, kNumClasses> hits_{};
  std::array<std::array<double, kNumBins>, kNumClasses> ends_{};
  std::array<std::array<double, kNumBins>, kNumClasses> density_{};
  uint64_t capacity_ = 0;  // The most blocks tracked at once: the tier's capacity once full.
  uint64_t now_ = 0;
  uint64_t since_update_ = 0;
  uint64_t evictions_ = 0;
  uint64_t rng_ = 0;
  uint64_t chained_inserts_ = 0;   // Inserts that named a parent...
  uint64_t attached_inserts_ = 0;  // ... and found it tracked here.
};

}  // namespace

std::unique_ptr<EvictionPolicy> NewReuseDensityPolicy() {
  return std::make_unique<ReuseDensityPolicy>();
}

}  // namespace kvcache
