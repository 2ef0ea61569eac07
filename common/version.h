// The kvcache release version, printed by every binary's --version and by
// AdminService.GetConfig.

#ifndef KVCACHE_COMMON_VERSION_H_
#define KVCACHE_COMMON_VERSION_H_

namespace kvcache {

inline constexpr char kKvcacheVersion[] = "0.1.0";

}  // namespace kvcache

#endif  // KVCACHE_COMMON_VERSION_H_
