// common/socket_io.h's SocketReader: small frames and a large payload sent together come out
// whole and in order, however the bytes arrive; a timeout, a deadline and a closed peer are
// told apart.

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "common/socket_io.h"
#include "gtest/gtest.h"

namespace kvcache {
namespace {

class SocketReaderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  void TearDown() override {
    if (fds_[0] >= 0) ::close(fds_[0]);
    if (fds_[1] >= 0) ::close(fds_[1]);
  }
  void CloseWriter() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  int reader_fd() const { return fds_[0]; }
  int writer_fd() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

// Two requests as a client sends them: op byte, a header, a payload larger than the reader's
// buffer, and the next op, all in one write.
std::string TwoRequests(size_t payload_bytes) {
  std::string out = "P";
  out += std::string(32, 'h');
  for (size_t i = 0; i < payload_bytes; ++i) out.push_back(static_cast<char>('a' + i % 26));
  out += "G";
  return out;
}

void ExpectTwoRequests(SocketReader* in, size_t payload_bytes, bool with_deadline) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto read = [&](void* dst, size_t n) {
    return with_deadline ? in->Read(dst, n, deadline) : in->Read(dst, n);
  };
  char op = 0;
  ASSERT_TRUE(read(&op, 1).ok());
  EXPECT_EQ(op, 'P');
  std::string head(32, '\0');
  ASSERT_TRUE(read(head.data(), head.size()).ok());
  EXPECT_EQ(head, std::string(32, 'h'));
  std::string payload(payload_bytes, '\0');
  ASSERT_TRUE(read(payload.data(), payload.size()).ok());
  EXPECT_EQ(payload, TwoRequests(payload_bytes).substr(33, payload_bytes));
  ASSERT_TRUE(read(&op, 1).ok());
  EXPECT_EQ(op, 'G');
}

TEST_F(SocketReaderTest, FramesAndALargePayloadSentTogetherComeOutInOrder) {
  for (size_t payload_bytes : {size_t{10}, size_t{4000}, size_t{4096}, size_t{100000}}) {
    for (bool with_deadline : {false, true}) {
      const std::string sent = TwoRequests(payload_bytes);
      std::thread writer(
          [&] { ASSERT_TRUE(WriteFull(writer_fd(), sent.data(), sent.size()).ok()); });
      SocketReader in(reader_fd());
      ExpectTwoRequests(&in, payload_bytes, with_deadline);
      writer.join();
    }
  }
}

TEST_F(SocketReaderTest, BytesTricklingInOneAtATimeComeOutWhole) {
  const std::string sent = TwoRequests(5000);
  std::thread writer([&] {
    for (char c : sent) ASSERT_TRUE(WriteFull(writer_fd(), &c, 1).ok());
  });
  SocketReader in(reader_fd());
  ExpectTwoRequests(&in, 5000, /*with_deadline=*/true);
  writer.join();
}

TEST_F(SocketReaderTest, ADeadlineATimeoutAndAClosedPeerAreToldApart) {
  SocketReader in(reader_fd());
  char byte = 0;
  absl::Status s = in.Read(&byte, 1, absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  SetSocketTimeout(reader_fd(), absl::Milliseconds(50));
  s = in.Read(&byte, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  // Part of a frame, then the peer goes: the frame is not whole.
  ASSERT_TRUE(WriteFull(writer_fd(), "ab", 2).ok());
  CloseWriter();
  char frame[4];
  s = in.Read(frame, sizeof(frame), absl::Now() + absl::Seconds(10));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("closed"), std::string::npos) << s;
}

}  // namespace
}  // namespace kvcache
