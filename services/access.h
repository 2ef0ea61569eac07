// Who may do what on a kvcache server: callers, tenants, roles and quotas, from the file
// given by --auth-tokens (docs/security.md has its format), reloaded on SIGHUP.
//
// - A caller is authenticated by a bearer token (`authorization: Bearer <token>` metadata)
//   or by the identity of its client certificate (mTLS), and gets a tenant and a role.
//   Roles are ordered: reader (Lookup, Get) < writer (+ Put) < admin (+ AdminService).
// - The server binds blocks to tenants: the namespace a block is stored under is derived
//   from the caller's tenant and the namespace id it sent (StoredNamespace), so no id a
//   client chooses reaches another tenant's blocks.
// - With no file (auth off) every caller is the anonymous admin of tenant "" and namespaces
//   are stored as sent; the server allows that only on loopback or with --allow-anonymous.
// - The data channel's tokens are issued per call of OpenDataChannel and carry the caller's
//   principal; a reload that removes or changes a caller revokes the tokens issued to it.
//
// No gRPC in here (services/grpc_access_internal.h reads a call's credentials).
//
// Thread safety: every method is safe to call from many threads at once, Reload included.

#ifndef KVCACHE_SERVICES_ACCESS_H_
#define KVCACHE_SERVICES_ACCESS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/key.h"

namespace kvcache {

enum class Role : uint8_t { kReader = 1, kWriter = 2, kAdmin = 3 };

// "reader", "writer", "admin".
absl::string_view RoleName(Role role);

struct Principal {
  std::string tenant;  // "" is the anonymous tenant of a server without --auth-tokens.
  Role role = Role::kReader;
  // Who, for logs and conflict records, safe to show: "token:1a2b3c4d" (the start of the
  // token's SHA-256), "cert:worker-1", "anonymous".
  std::string name;
  // The credential this came from: "sha256:<hex of the token's SHA-256>", "cert:<identity>",
  // or "" for the anonymous caller.
  std::string credential;
};

// Byte quotas of one tenant per tier; 0 is no limit.
struct TenantQuota {
  uint64_t ram_bytes = 0;
  uint64_t disk_bytes = 0;
};

// The namespace blocks of `tenant` sent under `ns` are stored under: `ns` itself for the
// anonymous tenant; otherwise the tenant's 8-byte tag followed by 24 bytes of
// SHA-256("kvcache-tenant-v1" | u32 len | tenant | ns). Deterministic across restarts and
// nodes, so a tenant's blocks stay its own on disk and across a cluster.
Key StoredNamespace(absl::string_view tenant, const Key& ns);

// The first 8 bytes of every namespace stored for `tenant` (not for "").
uint64_t TenantTag(absl::string_view tenant);

// The rule for a service without an --auth-tokens file, whose every caller is anonymous:
// allowed on a loopback `address`, elsewhere only with `allow_anonymous`. `anyone_could`
// says what an anonymous caller could do ("run inference"). OK comes with the warning
// `program` prints at start.
//   INVALID_ARGUMENT (a usage error)  not loopback and not allow_anonymous.
absl::Status CheckAnonymousPolicy(absl::string_view program, absl::string_view address,
                                  absl::string_view anyone_could, bool allow_anonymous,
                                  std::string* warning);

class AccessControl {
 public:
  // Auth off: every caller is the anonymous admin.
  AccessControl();
  // Reads `path`. INVALID_ARGUMENT (with file and line) for a malformed file, NOT_FOUND for
  // a missing one.
  static absl::StatusOr<std::unique_ptr<AccessControl>> Load(const std::string& path);

  AccessControl(const AccessControl&) = delete;
  AccessControl& operator=(const AccessControl&) = delete;

  // Whether a file is in use.
  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // Re-reads the file. On an error the table in use is kept and the error returned.
  // Tokens of the data channel issued to callers that changed or went away are revoked.
  absl::Status Reload();

  // The caller with `bearer` (the token after "Bearer ", nullopt when none was sent) or a
  // client certificate with one of `cert_identities` (its SANs and common name), the token
  // winning when both are given.
  //   UNAUTHENTICATED  no credentials, an unknown or expired token, an unknown certificate.
  absl::StatusOr<Principal> Authenticate(std::optional<absl::string_view> bearer,
                                         absl::Span<const std::string> cert_identities) const;

  // OK when `who` has `role` or a higher one; PERMISSION_DENIED naming `what` otherwise.
  static absl::Status Require(const Principal& who, Role role, absl::string_view what);

  // The tenant a stored namespace belongs to: "" for the anonymous tenant and for
  // namespaces of tenants no longer in the file.
  std::string TenantOfStored(const Key& stored_ns) const;

  // The tenants named in the file (sorted), and the quota of one (none: no limit).
  std::vector<std::string> Tenants() const;
  TenantQuota QuotaOf(absl::string_view tenant) const;

  // Data channel tokens: a fresh random token bound to `who`; the principal of a token
  // (nullopt: unknown, revoked, or pushed out by newer tokens: the most recent 65536 are
  // kept). INTERNAL when getrandom(2) fails.
  absl::StatusOr<Key> IssueDataToken(const Principal& who);
  std::optional<Principal> ResolveDataToken(const Key& token) const;

 private:
  struct Caller {
    Principal principal;
    std::optional<absl::Time> expires;
  };

  struct Table {
    absl::flat_hash_map<std::string, Caller> callers;  // By Principal::credential.
    absl::flat_hash_map<std::string, TenantQuota> quotas;
    absl::flat_hash_map<uint64_t, std::string> tenants_by_tag;
  };
  static absl::StatusOr<Table> Parse(const std::string& path);
  // The caller with `credential`, if it is in the table and has not expired.
  const Caller* Find(const std::string& credential, absl::Time now) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  Table table_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Principal> data_tokens_ ABSL_GUARDED_BY(mu_);
  std::vector<Key> data_token_order_ ABSL_GUARDED_BY(mu_);  // Ring of issue order.
  size_t data_token_next_ ABSL_GUARDED_BY(mu_) = 0;

  explicit AccessControl(std::string path, Table table);
};

}  // namespace kvcache

#endif  // KVCACHE_SERVICES_ACCESS_H_
