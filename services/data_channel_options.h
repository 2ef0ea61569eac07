// The data channel's limits, as a plain options struct (so ServerOptions can hold them without
// the data channel's internals). See services/data_channel_server.h and docs/data-channel.md.

#ifndef KVCACHE_SERVICES_DATA_CHANNEL_OPTIONS_H_
#define KVCACHE_SERVICES_DATA_CHANNEL_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace kvcache {

// Limits that keep slow or many peers from taking every connection thread (one thread per
// connection). Each deadline is absolute for its phase: bytes trickling in do not extend it.
struct DataChannelOptions {
  // Most connections served at once; more are closed at accept (counted as refused, reason
  // "total"). Default: 256 (--data-max-connections).
  int max_connections = 256;
  // Most connections at once from one peer IP address; more are closed at accept (reason
  // "peer"), so one host cannot take every slot. Default: 32
  // (--data-max-connections-per-peer).
  int max_connections_per_peer = 32;
  // The hello (token) must arrive whole within this long of the accept. Default: 10 s.
  absl::Duration hello_deadline = absl::Seconds(10);
  // A connection that starts no request for this long is closed. Default: 5 min.
  absl::Duration idle_timeout = absl::Minutes(5);
  // Once a request's first byte arrives, the rest of its header (namespace, then a Get's key
  // count and keys or a Put's block header) must arrive within this long. Default: 10 s.
  absl::Duration header_deadline = absl::Seconds(10);
  // A Put's payload must arrive whole, and each block of a Get's reply must be taken by the
  // client, within this long of the header. Default: 60 s (16 MiB at 280 KB/s).
  absl::Duration payload_deadline = absl::Seconds(60);
  // After accept(2) fails for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
  // listener waits this long before it tries again, rather than spinning a core on a
  // connection it cannot take. Default: 100 ms.
  absl::Duration accept_backoff = absl::Milliseconds(100);

  // The same-host path (docs/data-channel.md, "Same-host path"): a Unix socket whose
  // connections get a shared-memory region each, advertised to clients together with this
  // machine's identity. "" or "off": none; "auto": an abstract socket with a random name
  // (no file; reachable from the same network namespace); else a socket file path.
  // Default: "" (the server binary's --local-listen defaults to auto).
  std::string local_listen;
  // Bytes of each same-host connection's region; 0 picks max(16 MiB, the store's
  // max_block_bytes). A region must hold the largest block. Default: 0.
  uint64_t local_region_bytes = 0;
  // Most bytes of all same-host regions at once: a same-host connection that would pass it
  // is closed at hello, and its client uses the TCP data channel (counted as a region
  // failure), so the server's memory stays bounded however many local clients connect.
  // Default: 256 MiB.
  uint64_t local_regions_max_bytes = 256ull << 20;
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_DATA_CHANNEL_OPTIONS_H_
