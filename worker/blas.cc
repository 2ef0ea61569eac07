#include "worker/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace kvcache {

std::string BlasCoreName() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

std::string PreferredBlasCoreType() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";
  const std::string core = BlasCoreName();
  // The generic fallbacks of DYNAMIC_ARCH builds on x86-64.
  const bool generic = core == "Prescott" || core == "Core2" || core == "Penryn" ||
                       core == "Dunnington" || core == "Nehalem" || core == "Atom" ||
                       core == "Katmai" || core == "Coppermine" || core == "Northwood";
  if (!generic) return "";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

void MaybeReexecForBlas(char** argv) {
  const std::string core = PreferredBlasCoreType();
  if (core.empty()) return;
  if (::setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // execv failed: go on with the kernels we have.
}

}  // namespace kvcache
