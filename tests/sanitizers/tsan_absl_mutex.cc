// ThreadSanitizer builds only (KVCACHE_SANITIZE=thread): tells TSan about absl::Mutex.
//
// Debian's Abseil is a shared library built without -fsanitize=thread, so absl::Mutex's
// lock and unlock are atomics TSan never sees: every field guarded by an absl::Mutex would be
// reported as a race. This file, linked into each executable of a TSan build, interposes the
// Mutex and CondVar entry points our code calls: each calls Abseil's own (found with
// dlsym(RTLD_NEXT)) and reports the acquire or release to TSan with its mutex annotations,
// which is what an instrumented Abseil does itself (ABSL_TSAN_MUTEX_* in mutex.cc).
// Await and CondVar waits release and retake the lock inside Abseil: they are reported as a
// release before the call and an acquire after it (reporting the release late would leave
// TSan believing the waiter holds the lock while another thread takes it).

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"

#define KVCACHE_STR2(x) #x
#define KVCACHE_STR(x) KVCACHE_STR2(x)

namespace {

// "_ZN4absl<inline namespace>" + rest: the mangled name of an absl::<rest> entry point.
void* Real(const char* rest) {
  const std::string ns = KVCACHE_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = "_ZN4absl" + std::to_string(ns.size()) + ns + rest;
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: no %s in Abseil\n", name.c_str());
    std::abort();
  }
  return f;
}

template <typename Fn>
Fn RealFn(const char* rest) {
  return reinterpret_cast<Fn>(Real(rest));
}

// Abseil's entry points call one another (WaitWithTimeout calls WaitWithDeadline through
// the interposed symbol): only the outermost call on a thread reports to TSan.
thread_local int depth = 0;
struct Outer {
  Outer() : outer(depth++ == 0) {}
  ~Outer() { --depth; }
  const bool outer;
};

void Acquired(void* mu, unsigned flags = 0) {
  __tsan_mutex_pre_lock(mu, flags);
  __tsan_mutex_post_lock(mu, flags, 0);
}
void Released(void* mu, unsigned flags = 0) {
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
}

// A Condition is evaluated with the lock held, though the waiter's call has released it
// (from TSan's view): possibly in another thread, the one unlocking. The wrapper reports
// the hold around each evaluation.
struct Held {
  const absl::Condition* cond;
  absl::Mutex* mu;
};
bool EvalHeld(Held* h) {
  Acquired(h->mu);
  const bool r = h->cond->Eval();
  Released(h->mu);
  return r;
}

using MutexFn = void (*)(absl::Mutex*);
using MutexTryFn = bool (*)(absl::Mutex*);
using MutexCondFn = void (*)(absl::Mutex*, const absl::Condition&);
using MutexCondTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using CondVarWaitFn = void (*)(absl::CondVar*, absl::Mutex*);
using MutexCondDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);
using CondVarWaitTimeoutFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Duration);
using CondVarWaitDeadlineFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Time);

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto real = RealFn<MutexFn>("5Mutex4LockEv");
  const Outer o;
  if (o.outer) __tsan_mutex_pre_lock(this, 0);
  real(this);
  if (o.outer) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::Unlock() {
  static const auto real = RealFn<MutexFn>("5Mutex6UnlockEv");
  const Outer o;
  if (o.outer) __tsan_mutex_pre_unlock(this, 0);
  real(this);
  if (o.outer) __tsan_mutex_post_unlock(this, 0);
}

bool Mutex::TryLock() {
  static const auto real = RealFn<MutexTryFn>("5Mutex7TryLockEv");
  const Outer o;
  if (o.outer) __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool ok = real(this);
  if (o.outer) __tsan_mutex_post_lock(this, __tsan_mutex_try_lock | (ok ? 0 : __tsan_mutex_try_lock_failed),
                         0);
  return ok;
}

void Mutex::ReaderLock() {
  static const auto real = RealFn<MutexFn>("5Mutex10ReaderLockEv");
  const Outer o;
  if (o.outer) __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  if (o.outer) __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

void Mutex::ReaderUnlock() {
  static const auto real = RealFn<MutexFn>("5Mutex12ReaderUnlockEv");
  const Outer o;
  if (o.outer) __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  if (o.outer) __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

void Mutex::Await(const Condition& cond) {
  static const auto real = RealFn<MutexCondFn>("5Mutex5AwaitERKNS0_9ConditionE");
  const Outer o;
  if (o.outer) Released(this);
  Held held{&cond, this};
  const Condition wrapped(&EvalHeld, &held);  // Only the outermost call wraps.
  real(this, o.outer ? wrapped : cond);
  if (o.outer) Acquired(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real =
      RealFn<MutexCondTimeoutFn>("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outer o;
  if (o.outer) Released(this);
  Held held{&cond, this};
  const Condition wrapped(&EvalHeld, &held);  // Only the outermost call wraps.
  const bool ok = real(this, o.outer ? wrapped : cond, timeout);
  if (o.outer) Acquired(this);
  return ok;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real =
      RealFn<MutexCondDeadlineFn>("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outer o;
  if (o.outer) Released(this);
  Held held{&cond, this};
  const Condition wrapped(&EvalHeld, &held);  // Only the outermost call wraps.
  const bool ok = real(this, o.outer ? wrapped : cond, deadline);
  if (o.outer) Acquired(this);
  return ok;
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = RealFn<MutexCondFn>("5Mutex8LockWhenERKNS0_9ConditionE");
  const Outer o;
  if (o.outer) __tsan_mutex_pre_lock(this, 0);
  Held held{&cond, this};
  const Condition wrapped(&EvalHeld, &held);  // Only the outermost call wraps.
  real(this, o.outer ? wrapped : cond);
  if (o.outer) __tsan_mutex_post_lock(this, 0, 0);
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = RealFn<CondVarWaitFn>("7CondVar4WaitEPNS0_5MutexE");
  const Outer o;
  if (o.outer) Released(mu);
  real(this, mu);
  if (o.outer) Acquired(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real =
      RealFn<CondVarWaitTimeoutFn>("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  const Outer o;
  if (o.outer) Released(mu);
  const bool timed_out = real(this, mu, timeout);
  if (o.outer) Acquired(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real =
      RealFn<CondVarWaitDeadlineFn>("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  const Outer o;
  if (o.outer) Released(mu);
  const bool timed_out = real(this, mu, deadline);
  if (o.outer) Acquired(mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
