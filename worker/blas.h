// OpenBLAS kernel selection.
//
// Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from the CPU model when it
// loads; it does not know recent Xeons (for example family 6 model 207, Emerald Rapids) and
// falls back to its generic "Prescott" (SSE3) kernels, about 4x slower than the AVX-512
// ones. The choice is made before main() and cannot be changed afterwards, except through
// the OPENBLAS_CORETYPE environment variable at process start.
//
// Thread safety: call from main() before any other thread starts.

#ifndef KVCACHE_WORKER_BLAS_H_
#define KVCACHE_WORKER_BLAS_H_

#include <string>

namespace kvcache {

// The kernel family OpenBLAS is using, e.g. "SkylakeX", "Haswell", "Prescott".
std::string BlasCoreName();

// The OPENBLAS_CORETYPE this CPU deserves when OpenBLAS fell back to a generic kernel even
// though the CPU has AVX2 or AVX-512 ("SkylakeX" or "Haswell"); empty when
// OpenBLAS chose well or OPENBLAS_CORETYPE is already set.
std::string PreferredBlasCoreType();

// If PreferredBlasCoreType() is not empty, re-executes this program (/proc/self/exe with
// `argv`) with OPENBLAS_CORETYPE set to it. Returns only when no re-exec was needed or it
// failed (the program then runs on the slower kernels).
void MaybeReexecForBlas(char** argv);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_BLAS_H_
