// A one-line progress meter on stderr for long runs (kvcache-bench fills and trace replays,
// kvcache-worker make-model):
//
//   fill: 412/1024 MiB  40%  1.2 s, about 1.8 s left
//
// Shown only on a terminal: when the file descriptor (stderr) is not a TTY, or the caller
// turns it off (--json), nothing is ever written, so logs, pipes and JSON output stay clean.
// A background thread redraws the line at most every `interval` from a counter any thread
// may advance; Finish() (or the destructor) erases the line, so the command's own output
// starts on a clean one.
//
// Thread safety: Add and Set may be called from any thread at once; Finish and the
// destructor by the owner only.

#ifndef KVCACHE_COMMON_PROGRESS_H_
#define KVCACHE_COMMON_PROGRESS_H_

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kvcache {

struct ProgressOptions {
  // Printed before the counts ("fill", "replay", "make-model"). Default: empty.
  std::string label;
  // The count at which the work is done; 0 when unknown (no percentage). Default: 0.
  uint64_t total = 0;
  // What is counted, after dividing by `unit_scale` ("requests", "MiB"). Default: empty.
  std::string unit;
  // Counts are shown divided by this (1 << 20 for bytes shown as MiB). Default: 1.
  uint64_t unit_scale = 1;
  // False turns the meter off whatever the terminal (--json). Default: true.
  bool enabled = true;
  // Where to draw; shown only if it is a terminal (or `force`). Default: stderr.
  int fd = STDERR_FILENO;
  // Draw even when `fd` is not a terminal (tests). Default: false.
  bool force = false;
  // Least time between redraws. Default: 100 ms.
  absl::Duration interval = absl::Milliseconds(100);
};

class ProgressMeter final {
 public:
  explicit ProgressMeter(ProgressOptions options);
  ~ProgressMeter();  // Finish().
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  // Advances the count by `n`, or sets it. Never blocks.
  void Add(uint64_t n = 1) { done_.fetch_add(n, std::memory_order_relaxed); }
  void Set(uint64_t done) { done_.store(done, std::memory_order_relaxed); }
  // Replaces ProgressOptions::total, for work whose size is learnt once it has started.
  void SetTotal(uint64_t total) { total_.store(total, std::memory_order_relaxed); }

  // Stops redrawing and erases the line. Idempotent.
  void Finish();

  // Whether the meter draws at all (enabled, and on a terminal or forced).
  bool shown() const { return shown_; }

  // The text of the line (without terminal control codes), for `done` after `elapsed`.
  static std::string Render(const ProgressOptions& options, uint64_t done,
                            absl::Duration elapsed);

 private:
  void Loop();
  void Draw() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const ProgressOptions options_;
  const absl::Time start_;
  const bool shown_;

  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Redraws; joined by Finish (owner only).
};

}  // namespace kvcache

#endif  // KVCACHE_COMMON_PROGRESS_H_
