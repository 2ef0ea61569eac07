// The registry of eviction policies by name. A new policy adds one row to kPolicies.

#include "cachestore/eviction_policy.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cachestore/prefix_lfu_policy.h"
#include "cachestore/reuse_density_policy.h"

namespace kvcache {
namespace {

struct PolicyFactory {
  const char* name;
  std::unique_ptr<EvictionPolicy> (*make)();
};

// The default first.
constexpr PolicyFactory kPolicies[] = {
    {"reuse-density", &NewReuseDensityPolicy},
    {"lru", &NewLruPolicy},
    {"prefix-lfu", &NewPrefixLfuPolicy},
};

}  // namespace

absl::StatusOr<std::unique_ptr<EvictionPolicy>> NewEvictionPolicy(absl::string_view name) {
  for (const PolicyFactory& p : kPolicies) {
    if (name == p.name) return p.make();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown eviction policy '", name,
                                                 "'; known: ",
                                                 absl::StrJoin(EvictionPolicyNames(), ", ")));
}

uint64_t EvictionPolicyExtraBytes(absl::string_view name) {
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> p = NewEvictionPolicy(name);
  return p.ok() ? (*p)->ExtraBytesPerBlock() : 0;
}

std::vector<std::string> EvictionPolicyNames() {
  std::vector<std::string> names;
  for (const PolicyFactory& p : kPolicies) names.emplace_back(p.name);
  return names;
}

}  // namespace kvcache
