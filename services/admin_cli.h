// kvcache-admin's commands, over the AdminClient and CacheClient. kvcache-admin's main
// parses flags and calls RunAdminCommand; the flags themselves are defined in admin_cli.cc.
//
//   kvcache-admin [--server=TARGET] health | stats [--json] | put ... | get ... | ls ... |
//                 inspect ... | evict ... | flush ... | config | cluster | locate ...
//
// TARGET is what the client library takes (client/rendezvous.h, ParseClusterTarget):
// "host:port" is one node, and every command behaves as it always has; a list
// "host:port,host:port,..." or "dns:///name:port" is a cluster, and health, stats, ls,
// inspect, evict, flush and config visit every node (services/admin_cluster.h); put and get
// go through the cluster client. `cluster` and `locate` take either (one node is a cluster
// of one). A malformed target is a usage error; a DNS name that does not resolve, a failure.
//
// Output goes to `out`; on any error one line "kvcache-admin: <reason>" goes to `err` and
// the return value (the exit status) is non-zero: 2 for a usage error, 1 otherwise.

#ifndef KVCACHE_SERVICES_ADMIN_CLI_H_
#define KVCACHE_SERVICES_ADMIN_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace kvcache {

// `args` are the positional arguments after flag parsing, argv[0] first.
int RunAdminCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// The usage text.
std::string AdminUsage();

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_ADMIN_CLI_H_
