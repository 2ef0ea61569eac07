#include "common/resize_uninitialized.h"

namespace kvcache {

#if defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
namespace {

// libstdc++'s basic_string::_M_set_length (sets the length and writes the terminating NUL)
// is private; an explicit instantiation may name a private member ([temp.spec]/6), which
// lets this one file reach it. Defined once here, never in a header.
void SetLength(std::string* s, size_t n);

template <void (std::string::*SetLengthMember)(size_t)>
struct LengthSetter {
  friend void SetLength(std::string* s, size_t n) { (s->*SetLengthMember)(n); }
};
template struct LengthSetter<&std::string::_M_set_length>;

}  // namespace

void ResizeUninitialized(std::string* s, size_t n) {
  if (n <= s->size()) {
    s->resize(n);  // Shrinking writes only the terminator.
    return;
  }
  s->reserve(n);
  SetLength(s, n);
}
#else
void ResizeUninitialized(std::string* s, size_t n) { s->resize(n); }
#endif

}  // namespace kvcache
