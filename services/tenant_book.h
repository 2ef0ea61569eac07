// What the server keeps per tenant beyond the blocks themselves: conflicting Puts (a key
// stored again with different bytes; the most recent kept for kvcache-admin conflicts).
// Internal to services/.
//
// Thread safety: every method may be called from any thread.

#ifndef KVCACHE_SERVICES_TENANT_BOOK_H_
#define KVCACHE_SERVICES_TENANT_BOOK_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/key.h"

namespace kvcache {

struct ConflictRecord {
  std::string tenant;
  std::string caller;
  Key ns;  // As the caller sent it.
  Key key;
  uint64_t stored_checksum = 0;
  uint64_t offered_checksum = 0;
  absl::Time when;
};

class TenantBook {
 public:
  static constexpr size_t kKeptConflicts = 1024;

  void RecordConflict(ConflictRecord record);

  // The most recent conflicts, newest first, at most `limit`.
  std::vector<ConflictRecord> RecentConflicts(size_t limit) const;
  uint64_t total_conflicts() const;
  uint64_t ConflictsOf(const std::string& tenant) const;

 private:
  mutable absl::Mutex mu_;
  std::deque<ConflictRecord> recent_ ABSL_GUARDED_BY(mu_);
  uint64_t total_conflicts_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, uint64_t> conflicts_by_tenant_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_TENANT_BOOK_H_
