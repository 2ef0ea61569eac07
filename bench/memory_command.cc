// `kvcache-bench memory`: what writing into memory costs on this machine, by how recently
// the memory was written: the first touch of fresh pages, a second touch at once, and a
// touch after --idle without one (docs/benchmarks.md, "Put into an empty vs a full RAM
// tier"). One byte is written per 4 KiB page, so the figures are the cost of making a page
// writable, not of moving bytes.

#include <sys/mman.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/commands.h"
#include "common/byte_size.h"

ABSL_FLAG(std::string, memory_bytes, "512MiB", "memory: bytes of fresh anonymous memory to touch");
ABSL_FLAG(absl::Duration, idle, absl::Seconds(60),
          "memory: how long to leave the memory untouched before the last pass");

namespace kvcache {
namespace {

constexpr size_t kPage = 4096;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "kvcache-bench memory: %s\n", std::string(s.message()).c_str());
  return 2;
}

}  // namespace

const FlagScope kMemoryFlags = {
    "usage: kvcache-bench memory [--memory-bytes=512MiB] [--idle=60s]\n",
    "bench/memory_command.cc", ""};

int MemoryCommand(int argc, char** argv) {
  std::vector<std::string> rest = ParseFlags(argc, argv, kMemoryFlags);
  if (rest.size() > 1) return Fail(absl::InvalidArgumentError("unexpected argument " + rest[1]));
  absl::StatusOr<uint64_t> bytes = ParseByteSize(absl::GetFlag(FLAGS_memory_bytes),
                                                 "--memory-bytes");
  if (!bytes.ok()) return Fail(bytes.status());
  const absl::Duration idle = absl::GetFlag(FLAGS_idle);
  if (*bytes < kPage || idle < absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError("--memory-bytes must be >= 4KiB, --idle >= 0"));
  }
  const size_t n = *bytes / kPage * kPage;
  void* mapped = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return Fail(absl::ResourceExhaustedError("mmap failed"));
  volatile char* memory = static_cast<char*>(mapped);
  auto pass = [&](const char* what, char value) {
    const absl::Time start = absl::Now();
    for (size_t at = 0; at < n; at += kPage) memory[at] = value;
    const double s = absl::ToDoubleSeconds(absl::Now() - start);
    std::printf("%-28s %8.2f GB/s (%.0f pages/s)\n", what, n / s / 1e9, n / kPage / s);
    std::fflush(stdout);
  };
  pass("first touch", 1);
  pass("again at once", 2);
  absl::SleepFor(idle);
  pass(("after " + absl::FormatDuration(idle) + " untouched").c_str(), 3);
  pass("again at once", 4);
  ::munmap(mapped, n);
  return 0;
}

}  // namespace kvcache
