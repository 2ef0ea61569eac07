// Running the real binaries from tests: start a long-running server and read its address
// from its first line, or run a command to completion and capture its output.

#ifndef KVCACHE_TESTS_PROCESS_H_
#define KVCACHE_TESTS_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

extern char** environ;

namespace kvcache {
namespace testing {

// The directory holding the built binaries (set by ctest; falls back to ./bin).
inline std::string BinDir() {
  const char* dir = std::getenv("KVCACHE_BIN_DIR");
  return dir ? dir : "bin";
}

inline std::string Bin(const std::string& name) { return BinDir() + "/" + name; }

// Starts `argv` with stdout and stderr on a pipe.
class Process {
 public:
  explicit Process(std::vector<std::string> argv) {
    int fds[2];
    if (pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    fd_ = fds[0];
  }
  ~Process() {
    Kill(SIGKILL);
    if (fd_ >= 0) close(fd_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Reads output until a line contains `needle` (returning that line) or `timeout_s` pass
  // (returning "").
  std::string WaitForLine(const std::string& needle, int timeout_s = 30) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        output_ += line + "\n";
        if (line.find(needle) != std::string::npos) return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        char buf[4096];
        const ssize_t n = read(fd_, buf, sizeof(buf));
        if (n <= 0) return "";
        buffer_.append(buf, n);
      }
    }
    return "";
  }

  // Everything read so far.
  const std::string& output() const { return output_; }

  void Kill(int sig) {
    if (pid_ > 0) {
      kill(pid_, sig);
      if (sig == SIGKILL) Wait();
    }
  }

  // Reads the rest of the output, then waits for exit; returns the exit status, or
  // 128+signal.
  int Wait() {
    if (pid_ <= 0) return exit_status_;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd_, buf, sizeof(buf))) > 0) buffer_.append(buf, n);
    output_ += buffer_;
    buffer_.clear();
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int exit_status_ = -1;
  std::string buffer_;
  std::string output_;
};

struct CommandResult {
  int exit_status = -1;
  std::string output;  // stdout and stderr together.
};

// Runs `argv` to completion.
inline CommandResult Run(std::vector<std::string> argv) {
  Process p(std::move(argv));
  CommandResult r;
  r.exit_status = p.Wait();
  r.output = p.output();
  return r;
}

// The "HOST:PORT" after "listening on " in a server's first line.
inline std::string ListenAddress(const std::string& line) {
  const std::string marker = "listening on ";
  const size_t at = line.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return line.substr(start, line.find(' ', start) - start);
}

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_PROCESS_H_
