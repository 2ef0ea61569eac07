#include "worker/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the worker assumes a little-endian host");

namespace kvcache {
namespace {

// Headers larger than this are rejected as corrupt (real ones are a few hundred KiB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

absl::Status Invalid(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

}  // namespace

std::optional<DType> DTypeFromSafetensorsName(absl::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return std::nullopt;
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "f32" || lower == "float32" || lower == "float") return DType::kF32;
  if (lower == "f16" || lower == "float16" || lower == "half") return DType::kF16;
  if (lower == "bf16" || lower == "bfloat16") return DType::kBF16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", name, "\" (expected f32, f16 or bf16)"));
}

const char* SafetensorsName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

const char* ShortName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
  }
  return "?";
}

const char* TorchName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
  }
  return "?";
}

size_t ElementBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24.
    const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) return BitsFloat(sign | 0x7f800000u | (mant << 13));  // Inf / NaN.
  return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t FloatToHalf(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Inf or NaN.
    return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // Rounds to >= 65520: overflow to Inf.
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): value / 2^-24, rounded to nearest even.
    const float scaled = BitsFloat(abs) * 16777216.0f;
    const float rounded = __builtin_nearbyintf(scaled);  // Default mode: nearest even.
    return sign | static_cast<uint16_t>(rounded);
  }
  // Normal: rebias the exponent, round the mantissa to 10 bits (nearest even).
  const uint32_t rebased = abs - (112u << 23);
  const uint32_t lsb = (rebased >> 13) & 1;
  const uint32_t rounded = rebased + 0xfff + lsb;
  return sign | static_cast<uint16_t>(rounded >> 13);
}

float BFloat16ToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToBFloat16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN.
  const uint32_t lsb = (u >> 16) & 1;
  return static_cast<uint16_t>((u + 0x7fff + lsb) >> 16);
}

void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst) {
  const uint8_t* bytes = static_cast<const uint8_t*>(src);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = HalfToFloat(h);
      }
      return;
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t b;
        std::memcpy(&b, bytes + 2 * i, 2);
        dst[i] = BFloat16ToFloat(b);
      }
      return;
  }
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": fstat: ", std::strerror(err)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ < 8) {
    ::close(fd);
    return Invalid(path, absl::StrCat("truncated: ", file->size_,
                                      " bytes, less than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    file->size_ = 0;
    return absl::InternalError(absl::StrCat(path, ": mmap: ", std::strerror(map_err)));
  }
  file->map_ = map;
  const uint8_t* base = static_cast<const uint8_t*>(map);

  uint64_t header_len;
  std::memcpy(&header_len, base, 8);
  if (header_len > kMaxHeaderBytes || header_len > file->size_ - 8) {
    return Invalid(
        path, absl::StrCat("truncated or corrupt: header length ", header_len, " but the file has ",
                           file->size_ - 8, " bytes after the length"));
  }
  const size_t data_start = 8 + header_len;
  const size_t data_size = file->size_ - data_start;

  nlohmann::json header = nlohmann::json::parse(reinterpret_cast<const char*>(base + 8),
                                                reinterpret_cast<const char*>(base + data_start),
                                                /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Invalid(path, "header is not a JSON object");
  }
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const nlohmann::json& entry = it.value();
    auto bad = [&](absl::string_view what) {
      return Invalid(path, absl::StrCat("tensor ", name, ": ", what));
    };
    if (!entry.is_object()) return bad("entry is not an object");
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) return bad("missing \"dtype\"");
    if (shape_it == entry.end() || !shape_it->is_array()) return bad("missing \"shape\"");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      return bad("missing or malformed \"data_offsets\"");
    }
    TensorInfo info;
    info.dtype_name = dtype_it->get<std::string>();
    info.dtype = DTypeFromSafetensorsName(info.dtype_name);
    uint64_t count = 1;
    for (const nlohmann::json& dim : *shape_it) {
      if (!dim.is_number_unsigned()) return bad("shape has a non-integer or negative dimension");
      const uint64_t d = dim.get<uint64_t>();
      if (d != 0 && count > (uint64_t{1} << 48) / d) return bad("shape is too large");
      count *= d;
      info.shape.push_back(static_cast<int64_t>(d));
    }
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      return bad(absl::StrCat("data_offsets [", begin, ", ", end, ") run past the end of the ",
                              data_size, " data bytes (truncated file?)"));
    }
    if (info.dtype.has_value() && end - begin != count * ElementBytes(*info.dtype)) {
      return bad(absl::StrCat("holds ", end - begin, " bytes but its shape and dtype ",
                              info.dtype_name, " need ", count * ElementBytes(*info.dtype)));
    }
    info.data = base + data_start + begin;
    info.num_bytes = end - begin;
    file->tensors_.emplace(name, std::move(info));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

absl::Status WriteSafetensors(
    const std::string& path, absl::Span<const TensorSpec> specs,
    const std::function<void(size_t index, std::vector<float>* data)>& fill) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::vector<uint64_t> counts;
  uint64_t offset = 0;
  for (const TensorSpec& spec : specs) {
    uint64_t count = 1;
    for (int64_t d : spec.shape) count *= static_cast<uint64_t>(d);
    counts.push_back(count);
    const uint64_t bytes = count * ElementBytes(spec.dtype);
    header[spec.name] = {{"dtype", SafetensorsName(spec.dtype)},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::InternalError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  }
  auto fail = [&](absl::string_view what) {
    std::fclose(f);
    return absl::InternalError(absl::StrCat(path, ": ", what));
  };
  const uint64_t header_len = text.size();
  if (std::fwrite(&header_len, 8, 1, f) != 1 ||
      std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
    return fail("write failed");
  }
  std::vector<float> data;
  std::vector<uint16_t> half;
  for (size_t i = 0; i < specs.size(); ++i) {
    data.clear();
    fill(i, &data);
    if (data.size() != counts[i]) {
      std::fclose(f);
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", specs[i].name, ": got ",
                                                     data.size(), " values, shape needs ",
                                                     counts[i]));
    }
    size_t written;
    if (specs[i].dtype == DType::kF32) {
      written = std::fwrite(data.data(), sizeof(float), data.size(), f);
    } else {
      half.resize(data.size());
      for (size_t j = 0; j < data.size(); ++j) {
        half[j] = specs[i].dtype == DType::kF16 ? FloatToHalf(data[j]) : FloatToBFloat16(data[j]);
      }
      written = std::fwrite(half.data(), sizeof(uint16_t), half.size(), f);
    }
    if (written != data.size()) return fail("write failed (disk full?)");
  }
  if (std::fclose(f) != 0) {
    return absl::InternalError(absl::StrCat(path, ": close failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace kvcache
