#include "common/process_tuning.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"

namespace kvcache {

void TuneMallocForLargeBuffers() {
  // Blocks up to 32 MiB (glibc's largest allowed threshold on 64-bit: a larger value is
  // refused and leaves the default) come from the heap; freed memory stays mapped up to
  // 512 MiB above the heap top before it is trimmed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

void TurnOffMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

namespace {

constexpr char kHugePageTunables[] = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1";

std::string Tunables() {
  const char* t = std::getenv("GLIBC_TUNABLES");
  return t != nullptr ? t : "";
}

// "always" or "madvise" selected in /sys/kernel/mm/transparent_hugepage/enabled.
bool KernelOffersHugePages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  if (!std::getline(in, line)) return false;
  return absl::StrContains(line, "[always]") || absl::StrContains(line, "[madvise]");
}

}  // namespace

void ReexecWithHugePageMalloc(char** argv) {
  const std::string tunables = Tunables();
  // Set already (by the exec below, or by the operator, whose choice stands).
  if (absl::StrContains(tunables, "glibc.malloc.hugetlb") ||
      absl::StrContains(tunables, "glibc.malloc.arena_max")) {
    return;
  }
  if (!KernelOffersHugePages()) return;
  const std::string value =
      tunables.empty() ? kHugePageTunables : tunables + ":" + kHugePageTunables;
  if (::setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // execv failed: go on without, with GLIBC_TUNABLES as it was.
  if (tunables.empty()) {
    ::unsetenv("GLIBC_TUNABLES");
  } else {
    ::setenv("GLIBC_TUNABLES", tunables.c_str(), 1);
  }
}

bool HugePageMallocOn() { return absl::StrContains(Tunables(), "glibc.malloc.hugetlb=1"); }

}  // namespace kvcache
