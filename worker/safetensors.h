// Safetensors files: read (memory-mapped) and write.
//
// A .safetensors file is an 8-byte little-endian header length N, then N bytes of JSON
// mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the end of the header), then the tensor bytes. An optional "__metadata__"
// entry holds string pairs. See https://github.com/huggingface/safetensors.
//
// Thread safety: a SafetensorsFile is immutable after Open and safe to read from many
// threads. The writer functions are reentrant.
// Ownership: TensorInfo::data points into the file's mapping and lives as long as the
// SafetensorsFile.

#ifndef KVCACHE_WORKER_SAFETENSORS_H_
#define KVCACHE_WORKER_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kvcache {

// The element types the worker reads and writes.
enum class DType { kF32, kF16, kBF16 };

// "F32", "F16", "BF16" (the safetensors spelling) → DType; anything else → nullopt.
std::optional<DType> DTypeFromSafetensorsName(absl::string_view name);
// "f32", "f16", "bf16" (flags and config spelling, case-insensitive; "float32", "float16"
// and "bfloat16" too) → DType. INVALID_ARGUMENT otherwise.
absl::StatusOr<DType> ParseDType(absl::string_view name);
const char* SafetensorsName(DType dtype);  // "F32", "F16", "BF16"
const char* ShortName(DType dtype);        // "f32", "f16", "bf16"
const char* TorchName(DType dtype);        // "float32", "float16", "bfloat16"
size_t ElementBytes(DType dtype);

// IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN).
float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float BFloat16ToFloat(uint16_t b);
uint16_t FloatToBFloat16(float f);

// Converts `count` elements of `dtype` at `src` (little-endian, any alignment) to floats.
void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst);

struct TensorInfo {
  std::string dtype_name;      // As written in the file, e.g. "BF16" or "I64".
  std::optional<DType> dtype;  // Empty for types the worker does not read.
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // Into the mapping.
  size_t num_bytes = 0;
};

class SafetensorsFile final {
 public:
  // Maps and parses `path`.
  //   NOT_FOUND         the file does not exist.
  //   INVALID_ARGUMENT  truncated file, bad header JSON, a tensor whose offsets or size do
  //                     not fit its shape and dtype, or run past the end of the file (the
  //                     message names the file and the tensor).
  //   INTERNAL          mmap failed.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  // The whole file's bytes (for digests).
  absl::string_view bytes() const {
    return absl::string_view(static_cast<const char*>(map_), size_);
  }

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

// One tensor to write.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

// Writes a safetensors file holding `specs` in order, without keeping more than one
// tensor in memory: `fill(i, data)` must resize `*data` to specs[i]'s element count and fill
// it (as floats; they are converted to the spec's dtype). The header is padded with spaces
// so that tensor data starts 8-byte aligned.
//   INVALID_ARGUMENT  fill produced the wrong element count.
//   INTERNAL          the file could not be written.
absl::Status WriteSafetensors(
    const std::string& path, absl::Span<const TensorSpec> specs,
    const std::function<void(size_t index, std::vector<float>* data)>& fill);

}  // namespace kvcache

#endif  // KVCACHE_WORKER_SAFETENSORS_H_
