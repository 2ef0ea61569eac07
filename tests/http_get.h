// GET over a plain socket, for the tests that read a server's /metrics.

#ifndef KVCACHE_TESTS_HTTP_GET_H_
#define KVCACHE_TESTS_HTTP_GET_H_

#include <unistd.h>

#include <string>

#include "absl/time/time.h"
#include "common/socket_io.h"

namespace kvcache {
namespace testing {

// The whole response (status line, headers and body) to `GET path` at `address`
// (host:port); "" when it cannot connect.
inline std::string HttpGet(const std::string& address, const std::string& path = "/metrics") {
  absl::StatusOr<int> fd = ConnectTcp(address, absl::Seconds(5));
  if (!fd.ok()) return "";
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  std::string response;
  if (WriteFull(*fd, request.data(), request.size()).ok()) {
    char buf[4096];
    for (ssize_t n; (n = ::read(*fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  }
  ::close(*fd);
  return response;
}

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_HTTP_GET_H_
