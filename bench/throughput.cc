#include "bench/throughput.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/flags.h"
#include "bench/latency.h"
#include "bench/throughput_index.h"
#include "bench/throughput_targets.h"
#include "client/cache_client.h"
#include "common/byte_size.h"
#include "common/process_tuning.h"
#include "common/progress.h"
#include "common/tls_flags.h"
#include "nlohmann/json.hpp"

// The subcommand's own flags (--json is shared: bench/flags.h). Value sizes take byte
// sizes ("256KiB"); --blocks a count ("1000000", "100K" or "1M": see ParseBlockCount).
ABSL_FLAG(std::string, target, "kvcache",
          "store to drive: kvcache (the same-host path when the server is on this machine, "
          "else the TCP data channel), kvcache-tcp (the TCP data channel forced), "
          "kvcache-grpc (kvcache without the data channel), redis, memcached or rawtcp");
ABSL_FLAG(std::string, addr, "", "the store's host:port (required but for --op=index-scale)");
ABSL_FLAG(std::string, op, "get", "get, put, fill, lookup (kvcache only) or index-scale");
ABSL_FLAG(std::string, value_bytes, "",
          "bytes per value; none: 256KiB for get/put, 1MiB for fill, 4KiB for lookup, 64 for "
          "index-scale");
ABSL_FLAG(int, clients, 1, "client threads, each with its own connection (1 to 1024)");
ABSL_FLAG(double, seconds, 3.0, "measured seconds");
ABSL_FLAG(double, warmup_seconds, 0.5, "seconds run before the measured window");
ABSL_FLAG(double, rate, 0,
          "get, put, lookup: operations per second offered by all clients together, each "
          "paced to its share, latency counted from each operation's scheduled start (so a "
          "stall is not hidden); 0: as fast as each client can");
ABSL_FLAG(uint64_t, keys, 0, "get: keys in the key set; 0: about 256 MiB of values (16 to 1024)");
ABSL_FLAG(uint64_t, nonce, 0, "names this run's keys; 0: random (reuse with --populate=false)");
ABSL_FLAG(int, chain, 64, "lookup: keys in the chain looked up");
ABSL_FLAG(int, get_keys, 1,
          "get: keys fetched by one Get, consecutive ids as a prompt's blocks are (kvcache "
          "targets; 1 to 64)");
ABSL_FLAG(std::string, blocks, "100000", "index-scale: blocks to store (1M = 10^6, 100K = 10^5)");
ABSL_FLAG(std::string, key_pattern, "random",
          "index-scale: random keys, or colliding (all share their first 16 bytes: a "
          "hash-flooding attempt)");
ABSL_FLAG(bool, ram_arena, true,
          "index-scale: payloads in the RAM tier's arena, as the server's --ram-arena (false: "
          "on the heap)");
ABSL_FLAG(bool, served, false,
          "index-scale: also measure Get and Lookup through a kvcache server in this process "
          "(loopback), --clients CacheClients");
ABSL_FLAG(int, server_pid, 0, "the server's pid, to report its CPU seconds; 0: not reported");
ABSL_FLAG(int, verify_every, 32, "get: check every Nth value in full (all: the first 8 bytes)");
ABSL_FLAG(std::string, fill_bytes, "1GiB", "fill: bytes of fresh values to write");
ABSL_FLAG(bool, populate, true,
          "get: write the key set first (false: an earlier run with this --nonce did)");
ABSL_FLAG(std::string, tune_malloc, "auto",
          "tune glibc malloc for large buffers: auto (kvcache targets only), true or false");
ABSL_FLAG(bool, serve_rawtcp, false, "serve the raw TCP ceiling on --listen until killed");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "--serve-rawtcp: address to listen on");

namespace kvcache {
namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;  // Fields in the order written, as people read them.

enum class Op { kGet, kPut, kFill, kLookup, kIndexScale };

struct Options {
  TargetKind target = TargetKind::kKvcache;
  std::string addr;
  Op op = Op::kGet;
  uint64_t value_bytes = 256 << 10;
  bool value_bytes_set = false;
  int clients = 1;
  double seconds = 3.0;
  double warmup_seconds = 0.5;
  double rate = 0;  // Offered operations per second, all clients; 0: unpaced.
  uint64_t keys = 0;  // 0: about 256 MiB of values, within [16, 1024].
  int verify_every = 32;
  uint64_t nonce = 0;  // 0: random.
  int chain = 64;
  int get_keys = 1;  // Keys a Get fetches (kvcache targets).
  uint64_t blocks = 100000;
  std::string key_pattern = "random";
  uint64_t fill_bytes = 1ull << 30;
  int server_pid = 0;
  bool populate = true;  // Get: write the key set first (false: an earlier run with the
                         // same --nonce, --keys and --value-bytes did).
  int tune_malloc = -1;  // -1: auto (on for kvcache, as kvcache-worker does; off for peers).
  bool json = false;
};

// A block count: digits, or a number with a K (10^3) or M (10^6) suffix ("100K", "1M",
// "1.5M"); other byte-size spellings ("64KiB") count as ParseByteSize reads them.
// INVALID_ARGUMENT otherwise.
absl::StatusOr<uint64_t> ParseBlockCount(absl::string_view text) {
  absl::StatusOr<uint64_t> n = ParseByteSize(text, "--blocks");
  if (!n.ok()) return n.status();
  const char suffix = text.empty() ? '\0' : absl::ascii_tolower(text.back());
  if (suffix != 'k' && suffix != 'm') return *n;
  double count = 0;
  if (!absl::SimpleAtod(text.substr(0, text.size() - 1), &count) || count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--blocks=", text, " is not a count"));
  }
  return static_cast<uint64_t>(count * (suffix == 'k' ? 1e3 : 1e6) + 0.5);
}

// Reads the flags into Options, checking what their types cannot.
absl::Status ToOptions(Options* o) {
  auto bad = [](const char* name, const std::string& v) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, "=", v, " is not valid"));
  };
  absl::StatusOr<TargetKind> target = ParseTargetKind(absl::GetFlag(FLAGS_target));
  if (!target.ok()) return target.status();
  o->target = *target;
  o->addr = absl::GetFlag(FLAGS_addr);
  const std::string op = absl::GetFlag(FLAGS_op);
  if (op == "get") o->op = Op::kGet;
  else if (op == "put") o->op = Op::kPut;
  else if (op == "fill") o->op = Op::kFill;
  else if (op == "lookup") o->op = Op::kLookup;
  else if (op == "index-scale") o->op = Op::kIndexScale;
  else return bad("op", op);
  if (const std::string v = absl::GetFlag(FLAGS_value_bytes); !v.empty()) {
    absl::StatusOr<uint64_t> n = ParseByteSize(v, "--value-bytes");
    if (!n.ok()) return n.status();
    if (*n == 0) return bad("value-bytes", v);
    o->value_bytes = *n;
    o->value_bytes_set = true;
  }
  o->keys = absl::GetFlag(FLAGS_keys);
  absl::StatusOr<uint64_t> blocks = ParseBlockCount(absl::GetFlag(FLAGS_blocks));
  if (!blocks.ok() || *blocks == 0) return bad("blocks", absl::GetFlag(FLAGS_blocks));
  o->blocks = *blocks;
  o->key_pattern = absl::GetFlag(FLAGS_key_pattern);
  if (o->key_pattern != "random" && o->key_pattern != "colliding") {
    return bad("key-pattern", o->key_pattern);
  }
  absl::StatusOr<uint64_t> fill = ParseByteSize(absl::GetFlag(FLAGS_fill_bytes), "--fill-bytes");
  if (!fill.ok()) return fill.status();
  o->fill_bytes = *fill;
  o->nonce = absl::GetFlag(FLAGS_nonce);
  o->clients = absl::GetFlag(FLAGS_clients);
  if (o->clients < 1 || o->clients > 1024) return bad("clients", absl::StrCat(o->clients));
  o->chain = absl::GetFlag(FLAGS_chain);
  if (o->chain < 1) return bad("chain", absl::StrCat(o->chain));
  o->get_keys = absl::GetFlag(FLAGS_get_keys);
  if (o->get_keys < 1 || o->get_keys > 64) return bad("get-keys", absl::StrCat(o->get_keys));
  if (o->get_keys > 1 && !IsKvcache(o->target)) {
    return absl::InvalidArgumentError("--get-keys above 1 is for the kvcache targets");
  }
  o->verify_every = absl::GetFlag(FLAGS_verify_every);
  if (o->verify_every < 1) return bad("verify-every", absl::StrCat(o->verify_every));
  o->server_pid = absl::GetFlag(FLAGS_server_pid);
  o->seconds = absl::GetFlag(FLAGS_seconds);
  if (!(o->seconds > 0)) return bad("seconds", absl::StrCat(o->seconds));
  o->warmup_seconds = absl::GetFlag(FLAGS_warmup_seconds);
  if (!(o->warmup_seconds >= 0)) return bad("warmup-seconds", absl::StrCat(o->warmup_seconds));
  o->rate = absl::GetFlag(FLAGS_rate);
  if (!(o->rate >= 0)) return bad("rate", absl::StrCat(o->rate));
  o->json = absl::GetFlag(FLAGS_json);
  o->populate = absl::GetFlag(FLAGS_populate);
  const std::string tune = absl::GetFlag(FLAGS_tune_malloc);
  o->tune_malloc = tune == "auto" ? -1 : (tune == "true" || tune == "1" || tune == "yes") ? 1 : 0;
  if (o->op != Op::kIndexScale && o->addr.empty()) {
    return absl::InvalidArgumentError("--addr=HOST:PORT is required");
  }
  if (o->op == Op::kLookup && !IsKvcache(o->target)) {
    return absl::InvalidArgumentError("--op=lookup is for --target=kvcache only");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Values: word 0 names the value (a hash of the run's nonce and the key id), word j is
// word 0 + j * phi, so a value's bytes show which key they belong to and where they sit.

constexpr uint64_t kPhi = 0x9e3779b97f4a7c15ull;

uint64_t Tag(uint64_t nonce, uint64_t id) {
  uint64_t x = nonce * 0xd1b54a32d192ed03ull + id + 1;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void FillValue(uint64_t tag, std::string* value) {
  const size_t words = value->size() / 8;
  char* p = value->data();
  for (size_t j = 0; j < words; ++j) {
    const uint64_t w = tag + j * kPhi;
    std::memcpy(p + 8 * j, &w, 8);
  }
  for (size_t i = words * 8; i < value->size(); ++i) p[i] = static_cast<char>(tag >> (i % 8));
}

bool HeadMatches(uint64_t tag, absl::string_view v) {
  if (v.size() < 8) return true;
  uint64_t w;
  std::memcpy(&w, v.data(), 8);
  return w == tag;
}

bool FullMatches(uint64_t tag, absl::string_view v) {
  const size_t words = v.size() / 8;
  const char* p = v.data();
  for (size_t j = 0; j < words; ++j) {
    uint64_t w;
    std::memcpy(&w, p + 8 * j, 8);
    if (w != tag + j * kPhi) return false;
  }
  for (size_t i = words * 8; i < v.size(); ++i) {
    if (p[i] != static_cast<char>(tag >> (i % 8))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Measurement.

struct ThreadResult {
  std::vector<uint32_t> latency_ns;  // Operations inside the window (capped at ~4.29 s).
  uint64_t errors = 0;
  uint64_t verify_failures = 0;
  uint64_t verified_full = 0;
  std::string first_error;
};

double CpuSecondsSelf() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime + stime of another process, from /proc/PID/stat; -1 if unreadable.
double CpuSecondsOf(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields;
  std::string cur;
  for (size_t i = close + 2; i < stat.size(); ++i) {
    if (stat[i] == ' ') {
      fields.push_back(cur);
      cur.clear();
    } else {
      cur += stat[i];
    }
  }
  if (fields.size() < 13) return -1;  // fields[11] utime, fields[12] stime (fields 14, 15).
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

struct Summary {
  LatencySummary latency;  // Of the operations inside the window.
  uint64_t errors = 0, verify_failures = 0, verified_full = 0;
  std::string first_error;
};

Summary Summarize(std::vector<ThreadResult>& results) {
  Summary s;
  std::vector<double> us;
  for (ThreadResult& r : results) {
    for (uint32_t ns : r.latency_ns) us.push_back(ns / 1e3);
    s.errors += r.errors;
    s.verify_failures += r.verify_failures;
    s.verified_full += r.verified_full;
    if (s.first_error.empty()) s.first_error = r.first_error;
  }
  s.latency = SummarizeLatencies(us);
  return s;
}

// CPU seconds of this process and (when server_pid > 0) of the server during the window.
struct CpuMeter {
  int server_pid = 0;
  double client_s = 0;
  double server_s = -1;
};

// Runs `op(thread, n, result)` (returning whether it succeeded) in a loop on each of
// o.clients threads, counting operations that start and end inside [start, start +
// o.seconds], where start is o.warmup_seconds after all threads began. With o.rate each
// thread starts its operations on a schedule of o.rate / o.clients a second and a latency
// runs from the scheduled start (a thread behind schedule does not sleep). A sampler thread
// reads CPU times at the window's edges.
template <typename OpFn>
void RunWindow(const Options& o, std::vector<ThreadResult>* results, CpuMeter* cpu, OpFn op) {
  const int threads = o.clients;
  const double warmup_s = o.warmup_seconds, seconds = o.seconds;
  const std::chrono::nanoseconds interval(
      o.rate > 0 ? static_cast<int64_t>(1e9 * threads / o.rate) : 0);
  results->assign(static_cast<size_t>(threads), ThreadResult());
  const Clock::time_point begin =
      Clock::now() + std::chrono::milliseconds(20);  // Let every thread get going.
  const Clock::time_point start =
      begin + std::chrono::microseconds(static_cast<int64_t>(warmup_s * 1e6));
  const Clock::time_point end =
      start + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  std::thread sampler([&] {
    std::this_thread::sleep_until(start);
    const double c0 = CpuSecondsSelf(), s0 = CpuSecondsOf(cpu->server_pid);
    std::this_thread::sleep_until(end);
    const double c1 = CpuSecondsSelf(), s1 = CpuSecondsOf(cpu->server_pid);
    cpu->client_s = c1 - c0;
    cpu->server_s = (s0 >= 0 && s1 >= 0) ? s1 - s0 : -1;
  });
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ThreadResult& r = (*results)[static_cast<size_t>(t)];
      r.latency_ns.reserve(1 << 16);
      std::this_thread::sleep_until(begin);
      uint64_t n = 0;
      // Threads start their schedules spread over one interval.
      Clock::time_point scheduled = begin + interval * t / threads;
      while (true) {
        if (interval.count() > 0) {
          std::this_thread::sleep_until(scheduled);
          scheduled += interval;
        }
        const Clock::time_point t0 =
            interval.count() > 0 ? scheduled - interval : Clock::now();
        if (t0 >= end) break;
        const bool ok = op(t, n++, &r);
        const Clock::time_point t1 = Clock::now();
        if (ok && t0 >= start && t1 <= end) {
          const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
          r.latency_ns.push_back(static_cast<uint32_t>(std::min<int64_t>(ns, UINT32_MAX)));
        }
        if (r.errors > 1000) break;  // The target is gone; stop hammering it.
      }
    });
  }
  for (std::thread& th : pool) th.join();
  sampler.join();
}

void Fail(ThreadResult* r, const absl::Status& s) {
  ++r->errors;
  if (r->first_error.empty()) r->first_error = std::string(s.message());
}

bool g_malloc_tuned = false;

// Prints the result of a get, put or lookup run: one JSON object (--json) or a line, and
// the first error if any. Returns the exit status: 1 after errors, failed checks or no
// operation at all.
int Report(const Options& o, const char* op_name, const Summary& s, const CpuMeter& cpu,
           uint64_t keys, const json& extra) {
  const uint64_t ops = s.latency.count;
  const uint64_t per_op = o.op == Op::kGet ? static_cast<uint64_t>(o.get_keys) : 1;
  const uint64_t bytes = o.op == Op::kLookup ? 0 : ops * per_op * o.value_bytes;
  const double gbps = static_cast<double>(bytes) / o.seconds / 1e9;
  const double ops_per_s = static_cast<double>(ops) / o.seconds;
  if (o.json) {
    json j = {{"target", TargetName(o.target)},
              {"op", op_name},
              {"addr", o.addr},
              {"value_bytes", o.value_bytes},
              {"clients", o.clients},
              {"seconds", o.seconds},
              {"rate", o.rate},
              {"keys", keys},
              {"keys_per_get", per_op},
              {"ops", ops},
              {"bytes", bytes},
              {"gbps", gbps},
              {"ops_per_s", ops_per_s},
              {"p50_us", s.latency.p50_us},
              {"p90_us", s.latency.p90_us},
              {"p99_us", s.latency.p99_us},
              {"p999_us", s.latency.p999_us},
              {"max_us", s.latency.max_us},
              {"mean_us", s.latency.mean_us},
              {"errors", s.errors},
              {"verify_failures", s.verify_failures},
              {"verified_full", s.verified_full},
              {"client_cpu_s", cpu.client_s},
              {"server_cpu_s", cpu.server_s},  // -1: not measured (no --server-pid).
              {"client_malloc_tuned", g_malloc_tuned}};
    j.update(extra);
    if (!s.first_error.empty()) j["first_error"] = s.first_error;
    std::cout << j.dump() << std::endl;
  } else {
    std::string server_cpu;
    if (cpu.server_s >= 0) server_cpu = absl::StrFormat(", server cpu %.2f s", cpu.server_s);
    const std::string batch = per_op > 1 ? absl::StrCat(" (", per_op, " keys a Get)") : "";
    std::cout << absl::StrFormat(
                     "%s %s %s%s x%d: %.3f GB/s, %.0f ops/s, p50 %.1f us, p99 %.1f us "
                     "(%d ops, %d errors, %d check failures, client cpu %.2f s%s)",
                     TargetName(o.target), op_name, FormatBytes(o.value_bytes), batch,
                     o.clients, gbps,
                     ops_per_s, s.latency.p50_us, s.latency.p99_us, ops, s.errors,
                     s.verify_failures, cpu.client_s, server_cpu)
              << std::endl;
    if (!s.first_error.empty()) std::cout << "first error: " << s.first_error << std::endl;
  }
  return (s.errors > 0 || s.verify_failures > 0 || ops == 0) ? 1 : 0;
}

// Random in [0, n) per thread, cheap (xorshift64*).
struct Rng {
  uint64_t s;
  uint64_t Next(uint64_t n) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return (s * 0x2545f4914f6cdd1dull) % n;
  }
};

// Writes fresh values until `fill_bytes` have been stored, from all clients at once.
int RunFill(const Options& o) {
  const KeySpace ks{o.nonce};
  const uint64_t value_bytes = o.value_bytes_set ? o.value_bytes : (1 << 20);
  const uint64_t total = (o.fill_bytes + value_bytes - 1) / value_bytes;
  std::atomic<uint64_t> next{0}, errors{0};
  std::string first_error;
  ProgressOptions po;  // On a terminal only, and not with --json (common/progress.h).
  po.label = "fill";
  po.total = total * value_bytes;
  po.unit = "MiB";
  po.unit_scale = 1 << 20;
  po.enabled = !o.json;
  ProgressMeter progress(po);
  const Clock::time_point begin = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < o.clients; ++t) {
    pool.emplace_back([&, t] {
      absl::StatusOr<std::unique_ptr<TargetConnection>> c = 
          ConnectTarget(o.target, o.addr, ks, TlsClientOptionsFromFlags());
      if (!c.ok()) {
        if (errors++ == 0) first_error = std::string(c.status().message());
        return;
      }
      std::string v(value_bytes, '\0');
      FillValue(Tag(o.nonce, static_cast<uint64_t>(t)), &v);
      for (uint64_t id = next++; id < total && errors.load() < 100; id = next++) {
        const uint64_t tag = Tag(o.nonce, id + (1ull << 50));
        std::memcpy(v.data(), &tag, std::min<size_t>(8, v.size()));
        absl::Status s = (*c)->Put(id + (1ull << 50), &v);
        if (!s.ok() && errors++ == 0) first_error = std::string(s.message());
        progress.Add(value_bytes);
      }
    });
  }
  for (std::thread& th : pool) th.join();
  progress.Finish();
  const double secs = std::chrono::duration<double>(Clock::now() - begin).count();
  json j = {{"target", TargetName(o.target)},
            {"op", "fill"},
            {"bytes", total * value_bytes},
            {"seconds", secs},
            {"gbps", static_cast<double>(total * value_bytes) / secs / 1e9},
            {"errors", errors.load()}};
  if (!first_error.empty()) j["first_error"] = first_error;
  std::cout << j.dump() << std::endl;
  return errors.load() == 0 ? 0 : 1;
}

int RunGetPut(const Options& o) {
  const KeySpace ks{o.nonce};
  std::vector<std::unique_ptr<TargetConnection>> conns;
  for (int t = 0; t < o.clients; ++t) {
    absl::StatusOr<std::unique_ptr<TargetConnection>> c = 
          ConnectTarget(o.target, o.addr, ks, TlsClientOptionsFromFlags());
    if (!c.ok()) {
      std::cerr << "kvcache-bench throughput: " << c.status().message() << std::endl;
      return 1;
    }
    conns.push_back(*std::move(c));
  }
  std::vector<std::string> values(static_cast<size_t>(o.clients),
                                  std::string(o.value_bytes, '\0'));

  uint64_t keys = o.keys;
  if (keys == 0) keys = std::clamp<uint64_t>((256ull << 20) / o.value_bytes, 16, 1024);
  keys = std::max<uint64_t>(keys, static_cast<uint64_t>(o.get_keys));
  if (o.op == Op::kGet && o.populate) {  // Write the key set, in parallel.
    std::vector<std::thread> pool;
    std::atomic<int> failures{0};
    std::string first_error;
    for (int t = 0; t < o.clients; ++t) {
      pool.emplace_back([&, t] {
        std::string& v = values[static_cast<size_t>(t)];
        for (uint64_t id = static_cast<uint64_t>(t); id < keys;
             id += static_cast<uint64_t>(o.clients)) {
          FillValue(Tag(o.nonce, id), &v);
          absl::Status s = conns[static_cast<size_t>(t)]->Put(id, &v);
          if (!s.ok() && failures++ == 0) first_error = std::string(s.message());
        }
      });
    }
    for (std::thread& th : pool) th.join();
    if (failures > 0) {
      std::cerr << "kvcache-bench throughput: populating " << keys << " keys failed "
                << failures.load() << " times: " << first_error << std::endl;
      return 1;
    }
  } else {
    for (int t = 0; t < o.clients; ++t) {
      FillValue(Tag(o.nonce, static_cast<uint64_t>(t) << 40), &values[static_cast<size_t>(t)]);
    }
  }

  std::vector<Rng> rngs;
  for (int t = 0; t < o.clients; ++t) rngs.push_back(Rng{Tag(o.nonce, 7777 + t) | 1});
  std::vector<ThreadResult> results;
  CpuMeter cpu{o.server_pid};
  std::vector<std::vector<uint64_t>> get_ids(static_cast<size_t>(o.clients),
                                             std::vector<uint64_t>(o.get_keys));
  if (o.op == Op::kGet) {
    RunWindow(o, &results, &cpu,
              [&](int t, uint64_t n, ThreadResult* r) {
                // --get-keys consecutive ids from a random one (wrapping): a prompt's blocks.
                const uint64_t first = rngs[static_cast<size_t>(t)].Next(keys);
                std::vector<uint64_t>& ids = get_ids[static_cast<size_t>(t)];
                for (size_t i = 0; i < ids.size(); ++i) ids[i] = (first + i) % keys;
                absl::StatusOr<std::vector<absl::string_view>> got =
                    conns[static_cast<size_t>(t)]->GetMany(ids, o.value_bytes);
                if (!got.ok()) {
                  Fail(r, got.status());
                  return false;
                }
                const bool content = conns[static_cast<size_t>(t)]->StoresValues();
                for (size_t i = 0; i < ids.size(); ++i) {
                  const absl::string_view v = i < got->size() ? (*got)[i] : absl::string_view();
                  const uint64_t tag = Tag(o.nonce, ids[i]);
                  bool good = v.size() == o.value_bytes && (!content || HeadMatches(tag, v));
                  if (good && content && i == 0 &&
                      n % static_cast<uint64_t>(o.verify_every) == 0) {
                    good = FullMatches(tag, v);
                    ++r->verified_full;
                  }
                  if (!good) {
                    ++r->verify_failures;
                    if (r->first_error.empty()) {
                      r->first_error = absl::StrCat("value of key ", ids[i],
                                                    " has wrong bytes (", v.size(), " bytes)");
                    }
                    return false;
                  }
                }
                return true;
              });
  } else {
    RunWindow(o, &results, &cpu,
              [&](int t, uint64_t n, ThreadResult* r) {
                const uint64_t id = (static_cast<uint64_t>(t + 1) << 40) | n;
                std::string& v = values[static_cast<size_t>(t)];
                const uint64_t tag = Tag(o.nonce, id);
                std::memcpy(v.data(), &tag, std::min<size_t>(8, v.size()));
                absl::Status s = conns[static_cast<size_t>(t)]->Put(id, &v);
                if (!s.ok()) {
                  Fail(r, s);
                  return false;
                }
                return true;
              });
  }
  Summary s = Summarize(results);
  return Report(o, o.op == Op::kGet ? "get" : "put", s, cpu, o.op == Op::kGet ? keys : 0,
                json::object());
}

// Lookup of one chain of --chain keys, all stored, by every client over and over.
int RunLookup(const Options& o) {
  const KeySpace ks{o.nonce};
  Key ns;
  std::memcpy(ns.bytes.data(), KvcacheNamespaceBytes(ks).data(), kKeyBytes);
  std::vector<Key> chain(static_cast<size_t>(o.chain));
  for (size_t i = 0; i < chain.size(); ++i) {
    std::memcpy(chain[i].bytes.data(), KvcacheKeyBytes(ks, i).data(), kKeyBytes);
  }
  std::vector<CacheBlock> blocks = ChainedBlocks(chain, 0);
  const uint64_t value_bytes = o.value_bytes_set ? o.value_bytes : 4096;
  for (size_t i = 0; i < blocks.size(); ++i) {
    blocks[i].payload.assign(value_bytes, '\0');
    FillValue(Tag(o.nonce, i), &blocks[i].payload);
  }
  std::vector<std::unique_ptr<CacheClient>> clients;
  for (int t = 0; t < o.clients; ++t) {
    CacheClientOptions co;
    co.target = o.addr;
    co.tls = TlsClientOptionsFromFlags();
    absl::StatusOr<std::unique_ptr<CacheClient>> c = NewCacheClient(co);
    if (!c.ok()) {
      std::cerr << "kvcache-bench throughput: " << c.status().message() << std::endl;
      return 1;
    }
    clients.push_back(*std::move(c));
  }
  absl::StatusOr<CachePutResult> put = clients[0]->Put(ns, blocks);
  if (!put.ok() || put->stored + put->already_present != chain.size()) {
    std::cerr << "kvcache-bench throughput: storing the chain failed: "
              << (put.ok() ? "not all blocks stored" : put.status().message()) << std::endl;
    return 1;
  }
  std::vector<ThreadResult> results;
  CpuMeter cpu{o.server_pid};
  RunWindow(o, &results, &cpu,
            [&](int t, uint64_t, ThreadResult* r) {
              absl::StatusOr<CacheLookup> l = clients[static_cast<size_t>(t)]->Lookup(ns, chain);
              if (!l.ok()) {
                Fail(r, l.status());
                return false;
              }
              if (l->num_present != chain.size()) {
                ++r->verify_failures;
                if (r->first_error.empty()) {
                  r->first_error = absl::StrCat("Lookup found ", l->num_present, " of ",
                                                chain.size(), " keys");
                }
                return false;
              }
              return true;
            });
  Summary s = Summarize(results);
  Options shown = o;
  shown.value_bytes = value_bytes;
  return Report(shown, "lookup", s, cpu, chain.size(), {{"chain", chain.size()}});
}

}  // namespace

const FlagScope kThroughputFlags = {
    "usage: kvcache-bench throughput --target=kvcache|kvcache-tcp|kvcache-grpc|redis|\n"
    "         memcached|rawtcp\n"
    "         --addr=HOST:PORT --op=get|put|lookup --value-bytes=256KiB --clients=4\n"
    "         --seconds=3 [--json] [--warmup-seconds=0.5] [--keys=N] [--verify-every=32]\n"
    "         [--chain=64] [--server-pid=PID] [--nonce=N --populate=false]\n"
    "         [--tune-malloc=auto|true|false] [--tls-ca=PEM [--tls-cert=PEM --tls-key=PEM]] [--token-file=PATH]\n"
    "       kvcache-bench throughput --target=... --addr=... --op=fill --fill-bytes=1GiB\n"
    "         [--value-bytes=1MiB --clients=4]  (writes fresh keys: brings a store to its\n"
    "         memory limit, so that later puts measure a full cache that evicts)\n"
    "       kvcache-bench throughput --op=index-scale --blocks=N [--value-bytes=64] [--eviction=lru]\n"
    "         [--ram-arena=false] [--served] [--json]\n"
    "       kvcache-bench throughput --serve-rawtcp [--listen=127.0.0.1:0]\n",
    "bench/throughput.cc", "json,eviction,tls_ca,tls_cert,tls_key,tls_server_name,token_file"};

int RunThroughput(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  if (args.size() > 1 && std::strcmp(args[1], "throughput") == 0) args.erase(args.begin() + 1);
  std::vector<std::string> positional =
      ParseFlags(static_cast<int>(args.size()), args.data(), kThroughputFlags);
  positional.erase(positional.begin());  // The program's name.
  auto usage_error = [](absl::string_view what) {
    std::cerr << "kvcache-bench throughput: " << what << "\n" << kThroughputFlags.usage;
    return 2;
  };
  if (!positional.empty()) {
    return usage_error(absl::StrCat("unexpected argument '", positional[0], "'"));
  }
  if (absl::GetFlag(FLAGS_serve_rawtcp)) {
    absl::Status s = ServeRawTcp(absl::GetFlag(FLAGS_listen));
    std::cerr << "kvcache-bench throughput: " << s.message() << std::endl;
    return 1;
  }
  Options o;
  if (absl::Status s = ToOptions(&o); !s.ok()) return usage_error(s.message());
  // Each client runs as its users run it: kvcache's like kvcache-worker, which raises glibc's
  // mmap/trim thresholds so large buffers are reused rather than mmap'd and faulted in
  // afresh; hiredis and libmemcached with glibc's defaults (measured here: the tuning does
  // not help Redis and costs memcached ~15% at 256 KiB, whose client grows its value
  // buffer by realloc, which mremap makes cheap for mmap'd chunks).
  const bool kvcache_target = IsKvcache(o.target);
  const bool tune = o.tune_malloc == 1 || (o.tune_malloc == -1 && kvcache_target);
  if (tune) TuneMallocForLargeBuffers();
  g_malloc_tuned = tune;
  if (o.nonce == 0) o.nonce = std::random_device()() | (uint64_t{std::random_device()()} << 32);
  switch (o.op) {
    case Op::kGet:
    case Op::kPut:
      return RunGetPut(o);
    case Op::kFill:
      return RunFill(o);
    case Op::kLookup:
      return RunLookup(o);
    case Op::kIndexScale: {
      IndexScaleOptions io;
      io.blocks = o.blocks;
      io.value_bytes = o.value_bytes_set ? o.value_bytes : 64;
      io.clients = o.clients;
      io.seconds = o.seconds;
      io.colliding_keys = o.key_pattern == "colliding";
      io.eviction = absl::GetFlag(FLAGS_eviction);
      io.arena = absl::GetFlag(FLAGS_ram_arena);
      io.served = absl::GetFlag(FLAGS_served);
      return RunIndexScale(io, o.json);
    }
  }
  return 2;
}

}  // namespace bench
}  // namespace kvcache
