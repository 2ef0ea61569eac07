#include "common/progress.h"

#include <unistd.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvcache {
namespace {

// Carriage return, the line, and "erase to end of line" (for a line shorter than the last).
constexpr char kEraseLine[] = "\r\033[K";

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;  // A terminal that went away: drop the meter's output.
    off += static_cast<size_t>(n);
  }
}

std::string Count(uint64_t n, uint64_t scale) {
  if (scale <= 1) return absl::StrCat(n);
  return absl::StrFormat("%.0f", static_cast<double>(n) / static_cast<double>(scale));
}

}  // namespace

ProgressMeter::ProgressMeter(ProgressOptions options)
    : options_(std::move(options)),
      start_(absl::Now()),
      shown_(options_.enabled && (options_.force || ::isatty(options_.fd) == 1)),
      total_(options_.total) {
  if (shown_) thread_ = std::thread([this] { Loop(); });
}

ProgressMeter::~ProgressMeter() { Finish(); }

void ProgressMeter::Finish() {
  if (!shown_) return;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  thread_.join();
  WriteAll(options_.fd, kEraseLine);
}

void ProgressMeter::Loop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval)) Draw();
}

void ProgressMeter::Draw() {
  ProgressOptions now = options_;
  now.total = total_.load(std::memory_order_relaxed);
  const std::string line = Render(now, done_.load(std::memory_order_relaxed), absl::Now() - start_);
  WriteAll(options_.fd, absl::StrCat(kEraseLine, line));
}

std::string ProgressMeter::Render(const ProgressOptions& o, uint64_t done,
                                  absl::Duration elapsed) {
  std::string out = o.label.empty() ? "" : absl::StrCat(o.label, ": ");
  const std::string unit = o.unit.empty() ? "" : absl::StrCat(" ", o.unit);
  const double secs = absl::ToDoubleSeconds(elapsed);
  if (o.total == 0) {
    absl::StrAppend(&out, Count(done, o.unit_scale), unit, absl::StrFormat("  %.1f s", secs));
    return out;
  }
  if (done > o.total) done = o.total;
  const double fraction = static_cast<double>(done) / static_cast<double>(o.total);
  absl::StrAppend(&out, Count(done, o.unit_scale), "/", Count(o.total, o.unit_scale), unit,
                  // Floored: 100% only when done.
                  absl::StrFormat("  %3.0f%%  %.1f s", std::floor(100 * fraction), secs));
  if (done > 0 && done < o.total) {
    absl::StrAppendFormat(&out, ", about %.1f s left", secs * (1 - fraction) / fraction);
  }
  return out;
}

}  // namespace kvcache
