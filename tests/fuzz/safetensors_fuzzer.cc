// Fuzzes SafetensorsFile::Open (worker/safetensors.h) with any file: it must answer a file
// whose every tensor lies inside the mapping, or INVALID_ARGUMENT. Tensors of a dtype the
// worker reads are converted whole, so a range that ran past the mapping would fault.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "worker/safetensors.h"

namespace {

// One scratch file per process, rewritten by each input.
const std::string& ScratchPath() {
  static const std::string* const path = [] {
    const char* dir = std::getenv("TMPDIR");
    std::string p = std::string(dir != nullptr ? dir : "/tmp") + "/kvcache_fuzz_XXXXXX";
    const int fd = ::mkstemp(p.data());
    if (fd < 0) std::abort();
    ::close(fd);
    return new std::string(p);
  }();
  return *path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = ScratchPath();
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);

  absl::StatusOr<std::unique_ptr<kvcache::SafetensorsFile>> file =
      kvcache::SafetensorsFile::Open(path);
  if (!file.ok()) {
    if (file.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const absl::string_view bytes = (*file)->bytes();
  const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  std::vector<float> floats;
  for (const auto& [name, t] : (*file)->tensors()) {
    if (t.data < begin || t.data + t.num_bytes > begin + bytes.size()) std::abort();
    if (!t.dtype) continue;
    const size_t count = t.num_bytes / kvcache::ElementBytes(*t.dtype);
    floats.resize(count);
    kvcache::ConvertToFloat(*t.dtype, t.data, count, floats.data());
  }
  return 0;
}
