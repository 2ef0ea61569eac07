// The progress meter: what it draws, that it stays silent off a terminal or when disabled,
// and that it erases its line when done.

#include "common/progress.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace kvcache {
namespace {

// Everything written to a pipe's write end, once it is closed.
std::string Drain(int read_fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(read_fd, buf, sizeof(buf))) > 0;) out.append(buf, n);
  return out;
}

TEST(ProgressTest, RendersCountsPercentAndTimeLeft) {
  ProgressOptions o;
  o.label = "fill";
  o.total = 1024ull << 20;
  o.unit = "MiB";
  o.unit_scale = 1 << 20;
  EXPECT_EQ(ProgressMeter::Render(o, 256ull << 20, absl::Seconds(1)),
            "fill: 256/1024 MiB   25%  1.0 s, about 3.0 s left");
  EXPECT_EQ(ProgressMeter::Render(o, 2048ull << 20, absl::Seconds(4)),
            "fill: 1024/1024 MiB  100%  4.0 s");  // Never past 100%.
  ProgressOptions unknown;
  unknown.label = "replay";
  unknown.unit = "requests";
  EXPECT_EQ(ProgressMeter::Render(unknown, 12, absl::Milliseconds(500)),
            "replay: 12 requests  0.5 s");
}

TEST(ProgressTest, SilentWhenNotATerminalOrDisabled) {
  for (bool enabled : {true, false}) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    {
      ProgressOptions o;
      o.total = 10;
      o.fd = fds[1];
      o.enabled = enabled;
      o.force = !enabled;  // Disabled wins even over force.
      o.interval = absl::Milliseconds(1);
      ProgressMeter meter(o);
      EXPECT_FALSE(meter.shown());
      meter.Add(5);
      absl::SleepFor(absl::Milliseconds(20));
    }
    ::close(fds[1]);
    EXPECT_EQ(Drain(fds[0]), "") << enabled;
    ::close(fds[0]);
  }
}

TEST(ProgressTest, DrawsFromManyThreadsAndErasesItsLine) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ProgressOptions o;
  o.label = "replay";
  o.total = 4000;
  o.unit = "requests";
  o.fd = fds[1];
  o.force = true;
  o.interval = absl::Milliseconds(5);
  {
    ProgressMeter meter(o);
    ASSERT_TRUE(meter.shown());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) meter.Add();
      });
    }
    for (std::thread& t : threads) t.join();
    absl::SleepFor(absl::Milliseconds(50));
    meter.Finish();
    meter.Finish();  // Idempotent.
  }
  ::close(fds[1]);
  const std::string out = Drain(fds[0]);
  ::close(fds[0]);
  EXPECT_NE(out.find("replay: 4000/4000 requests  100%"), std::string::npos) << out;
  // Ends by erasing the line, so what the command prints next starts clean.
  ASSERT_GE(out.size(), 4u);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\033[K");
}

}  // namespace
}  // namespace kvcache
