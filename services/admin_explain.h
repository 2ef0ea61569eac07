// kvcache-admin's `events` and `explain` commands (docs/events.md, docs/operations.md).
//
//   events [--from=SEQ] [--snapshot] [--count=N] [--json]
//       Tails each node's KV events (SubscribeEvents), one line per event (or one JSON
//       object per line with --json), prefixed by the node when the target is a cluster.
//       --from resumes at a sequence (the server replays from its ring, or says it cannot
//       and sends a snapshot); --snapshot starts with the blocks held; --count stops after
//       N events (0: never).
//
//   explain (--model=DIR | --namespace=HEX) [--block-size=N] [--cache-salt=S]
//           (--prompt-ids=1,2,3 | --prompt-text=TEXT | --prompt-file=PATH) [--json]
//       For each full block of the prompt: its key, where it is stored (node, tier), and
//       where the chain breaks and why: never stored, evicted (or erased, corrupt, flushed),
//       or stored under a different namespace (with --model: which namespace fields differ).
//       Reads every node's blocks (a snapshot) and its ring of recent events.
//
// Thread safety: one command at a time (flags are global).

#ifndef KVCACHE_SERVICES_ADMIN_EXPLAIN_H_
#define KVCACHE_SERVICES_ADMIN_EXPLAIN_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/tls_options.h"

namespace kvcache {

// `nodes`: the resolved addresses of the target (one for a single node). `cluster`: whether
// the target named a cluster (lines then say which node).
//   OK                   --count events printed.
//   INVALID_ARGUMENT     a bad flag (a usage error).
//   FAILED_PRECONDITION  a node runs without events.
//   UNAVAILABLE          a node cannot be reached or ended the stream.
absl::Status RunEventsCommand(const std::vector<std::string>& nodes, bool cluster,
                              const TlsClientOptions& tls, absl::Duration timeout,
                              std::ostream& out);

//   OK                   the report is printed (a miss is not an error).
//   INVALID_ARGUMENT     a bad flag (a usage error), or a model folder that does not load.
//   FAILED_PRECONDITION  a node runs without events (explain needs them).
//   UNAVAILABLE          a node cannot be reached.
absl::Status RunExplainCommand(const std::vector<std::string>& nodes, const TlsClientOptions& tls,
                               absl::Duration timeout, std::ostream& out);

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_ADMIN_EXPLAIN_H_
