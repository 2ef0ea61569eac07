// `kvcache-bench memory`: what writing into memory costs on this machine, by how recently
// the memory was written: the first touch of fresh pages, a second touch at once, and a
// touch after --idle without one (docs/benchmarks.md, "Put into an empty vs a full RAM
// tier"). One byte is written per 4 KiB page, so the figures are the cost of making a page
// writable, not of moving bytes.
//
// Then what reading one random cache line of --memory-bytes costs, as an index of that size
// does (docs/benchmarks.md, "Index cost per block"): each read waiting on the one before (a
// pointer chase: the latency a lookup's chain of misses pays per step) and reads that do not
// wait on one another (what overlapped misses cost each). Huge pages are advised, as for
// the RAM tier's index.

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
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

// Prints what a random read of one 64-byte line of `bytes` costs: dependent and independent.
void RandomReads(size_t bytes) {
  constexpr size_t kLine = 64, kHuge = size_t{2} << 20;
  const size_t lines = bytes / kLine;
  if (lines < 2 || lines > UINT32_MAX) return;
  void* mapped = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return;
  char* base = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(mapped) + kHuge - 1) & ~uintptr_t{kHuge - 1});
  ::madvise(base, bytes, MADV_HUGEPAGE);  // Advice only, as the index's.
  // One cycle through every line in random order (Sattolo): each line holds the next's offset.
  std::vector<uint32_t> order(lines);
  for (size_t i = 0; i < lines; ++i) order[i] = static_cast<uint32_t>(i);
  std::mt19937_64 rng(42);
  for (size_t i = lines - 1; i > 0; --i) {
    std::swap(order[i], order[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
  }
  for (size_t i = 0; i < lines; ++i) {
    *reinterpret_cast<uint64_t*>(base + size_t{order[i]} * kLine) =
        size_t{order[(i + 1) % lines]} * kLine;
  }
  const size_t reads = std::min<size_t>(lines, 4u << 20);
  uint64_t at = 0;
  absl::Time start = absl::Now();
  for (size_t i = 0; i < reads; ++i) at = *reinterpret_cast<volatile uint64_t*>(base + at);
  const double dependent = absl::ToDoubleSeconds(absl::Now() - start) / reads * 1e9;
  // The same lines, in the cycle's order but each address known in advance.
  start = absl::Now();
  for (size_t i = 0; i < reads; ++i) {
    (void)*reinterpret_cast<volatile uint64_t*>(base + size_t{order[i]} * kLine);  // Volatile: done.
  }
  const double independent = absl::ToDoubleSeconds(absl::Now() - start) / reads * 1e9;
  std::printf("%-28s %8.1f ns a read (%s of random 64-byte lines)\n", "random read, dependent",
              dependent, FormatBytes(bytes).c_str());
  std::printf("%-28s %8.1f ns a read\n", "random reads, independent", independent);
  ::munmap(mapped, bytes + kHuge);
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
  RandomReads(n);
  return 0;
}

}  // namespace kvcache
