#include "services/tenant_book.h"

#include <algorithm>

namespace kvcache {

void TenantBook::RecordConflict(ConflictRecord record) {
  absl::MutexLock lock(&mu_);
  ++total_conflicts_;
  ++conflicts_by_tenant_[record.tenant];
  recent_.push_front(std::move(record));
  if (recent_.size() > kKeptConflicts) recent_.pop_back();
}

std::vector<ConflictRecord> TenantBook::RecentConflicts(size_t limit) const {
  absl::MutexLock lock(&mu_);
  const size_t n = std::min(limit, recent_.size());
  return std::vector<ConflictRecord>(recent_.begin(), recent_.begin() + n);
}

uint64_t TenantBook::total_conflicts() const {
  absl::MutexLock lock(&mu_);
  return total_conflicts_;
}

uint64_t TenantBook::ConflictsOf(const std::string& tenant) const {
  absl::MutexLock lock(&mu_);
  auto it = conflicts_by_tenant_.find(tenant);
  return it == conflicts_by_tenant_.end() ? 0 : it->second;
}

}  // namespace kvcache
