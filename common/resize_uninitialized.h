// Growing a std::string without zero-filling its new bytes, for buffers about to be
// overwritten whole (a payload received from a socket or copied out of shared memory).
// std::string::resize writes every new byte, a full extra pass over memory that cost 15% of a
// Put (docs/benchmarks.md); C++23's resize_and_overwrite is the standard cure. Here, with
// libstdc++, the string's length is set directly after a reserve; elsewhere it falls back to
// resize.
//
// The new bytes' contents are unspecified: the caller must overwrite them all before anyone
// reads them (or throw the string away).
//
// Thread safety: as std::string.

#ifndef KVCACHE_COMMON_RESIZE_UNINITIALIZED_H_
#define KVCACHE_COMMON_RESIZE_UNINITIALIZED_H_

#include <cstddef>
#include <string>

namespace kvcache {

// Makes `s` exactly `n` bytes long; bytes past its old size are left unwritten.
void ResizeUninitialized(std::string* s, size_t n);

}  // namespace kvcache

#endif  // KVCACHE_COMMON_RESIZE_UNINITIALIZED_H_
