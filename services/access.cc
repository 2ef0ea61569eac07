#include "services/access.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/byte_size.h"
#include "common/cli.h"
#include "common/little_endian.h"
#include "common/tls.h"

namespace kvcache {
namespace {

constexpr size_t kMaxDataTokens = 65536;
constexpr size_t kMinTokenChars = 16;
constexpr size_t kMaxTenantChars = 64;

Key Sha256Of(absl::string_view data) {
  Key out;
  EVP_Digest(data.data(), data.size(), out.bytes.data(), nullptr, EVP_sha256(), nullptr);
  return out;
}

std::string TokenCredential(absl::string_view token) {
  return absl::StrCat("sha256:", KeyToHex(Sha256Of(token)));
}

absl::Status CheckTenantName(absl::string_view tenant) {
  const bool ok = !tenant.empty() && tenant.size() <= kMaxTenantChars &&
                  std::all_of(tenant.begin(), tenant.end(), [](char c) {
                    return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "tenant '", tenant, "': 1 to ", kMaxTenantChars, " letters, digits, '-', '_' or '.'"));
}

// A certificate identity as written in the file: %XX stands for a byte (%20 a space).
absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= in.size() || !absl::ascii_isxdigit(in[i + 1]) ||
        !absl::ascii_isxdigit(in[i + 2]) || !absl::SimpleHexAtoi(in.substr(i + 1, 2), &value)) {
      return absl::InvalidArgumentError("'%' must be followed by two hex digits");
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

absl::StatusOr<Role> ParseRole(absl::string_view text) {
  if (text == "reader") return Role::kReader;
  if (text == "writer") return Role::kWriter;
  if (text == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("role '", text, "': reader, writer or admin"));
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader: return "reader";
    case Role::kWriter: return "writer";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

uint64_t TenantTag(absl::string_view tenant) {
  const Key digest = Sha256Of(absl::StrCat("kvcache-tenant-tag-v1", tenant));
  return GetLittleEndian<uint64_t>(reinterpret_cast<const char*>(digest.bytes.data()));
}

Key StoredNamespace(absl::string_view tenant, const Key& ns) {
  if (tenant.empty()) return ns;
  char len[4];
  PutLittleEndian(len, static_cast<uint32_t>(tenant.size()));
  const Key digest =
      Sha256Of(absl::StrCat("kvcache-tenant-v1", absl::string_view(len, 4), tenant, ns.view()));
  Key stored;
  PutLittleEndian(reinterpret_cast<char*>(stored.bytes.data()), TenantTag(tenant));
  std::copy(digest.bytes.begin(), digest.bytes.begin() + (kKeyBytes - 8),
            stored.bytes.begin() + 8);
  return stored;
}

absl::Status CheckAnonymousPolicy(absl::string_view program, absl::string_view address,
                                  absl::string_view anyone_could, bool allow_anonymous,
                                  std::string* warning) {
  warning->clear();
  const bool loopback = IsLoopbackAddress(address);
  if (!loopback && !allow_anonymous) {
    return UsageError(absl::StrCat(
        address, " is not a loopback address and there is no --auth-tokens file: anyone "
        "who reaches it could ", anyone_could, ". Give --auth-tokens=FILE (docs/security.md), "
        "or --allow-anonymous to accept that"));
  }
  *warning = absl::StrCat(program, ": warning: no --auth-tokens: every caller is anonymous",
                          loopback ? " (loopback only)" : " (--allow-anonymous)");
  return absl::OkStatus();
}

AccessControl::AccessControl() = default;

AccessControl::AccessControl(std::string path, Table table)
    : path_(std::move(path)), table_(std::move(table)) {}

absl::StatusOr<AccessControl::Table> AccessControl::Parse(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("--auth-tokens: cannot read '", path, "'"));
  }
  Table table;
  std::string line;
  int number = 0;
  auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-tokens: ", path, ":", number, ": ", why));
  };
  while (std::getline(in, line)) {
    ++number;
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    // Every field after the second is name=value.
    absl::flat_hash_map<std::string, std::string> attrs;
    for (size_t i = 2; i < fields.size(); ++i) {
      std::vector<std::string> kv = absl::StrSplit(fields[i], absl::MaxSplits('=', 1));
      if (kv.size() != 2 || kv[0].empty()) {
        return fail(absl::StrCat("'", fields[i], "' is not name=value"));
      }
      if (!attrs.emplace(kv[0], kv[1]).second) {
        return fail(absl::StrCat("'", kv[0], "' is given twice"));
      }
    }
    if (fields.size() < 2) return fail("a line is 'token|cert|quota <what> name=value...'");
    const std::string& kind = fields[0];
    if (kind == "quota") {
      if (absl::Status s = CheckTenantName(fields[1]); !s.ok()) return fail(s.message());
      TenantQuota quota;
      for (const auto& [name, value] : attrs) {
        uint64_t* field = name == "ram" ? &quota.ram_bytes
                          : name == "disk" ? &quota.disk_bytes
                                           : nullptr;
        if (field == nullptr) return fail(absl::StrCat("quota has ram= and disk=, not ", name));
        absl::StatusOr<uint64_t> bytes = ParseByteSize(value, name);
        if (!bytes.ok()) return fail(bytes.status().message());
        *field = *bytes;
      }
      if (!table.quotas.emplace(fields[1], quota).second) {
        return fail(absl::StrCat("a second quota for tenant '", fields[1], "'"));
      }
      continue;
    }
    if (kind != "token" && kind != "cert") {
      return fail(absl::StrCat("'", kind, "': a line starts with token, cert or quota"));
    }
    Caller caller;
    for (const auto& [name, value] : attrs) {
      if (name == "tenant") {
        if (absl::Status s = CheckTenantName(value); !s.ok()) return fail(s.message());
        caller.principal.tenant = value;
      } else if (name == "role") {
        absl::StatusOr<Role> role = ParseRole(value);
        if (!role.ok()) return fail(role.status().message());
        caller.principal.role = *role;
      } else if (name == "expires") {
        absl::Time t;
        std::string error;
        if (!absl::ParseTime(absl::RFC3339_full, value, &t, &error)) {
          return fail(absl::StrCat("expires=", value, ": not RFC 3339 (e.g. ",
                                   "2027-01-31T00:00:00Z): ", error));
        }
        caller.expires = t;
      } else {
        return fail(absl::StrCat("'", name, "': a caller has tenant=, role= and expires="));
      }
    }
    if (caller.principal.tenant.empty() || !attrs.contains("role")) {
      return fail("a caller needs tenant= and role=");
    }
    const std::string& what = fields[1];
    if (kind == "cert") {
      absl::StatusOr<std::string> identity = PercentDecode(what);
      if (!identity.ok()) return fail(identity.status().message());
      caller.principal.credential = absl::StrCat("cert:", *identity);
      caller.principal.name = caller.principal.credential;
    } else if (absl::StartsWith(what, "sha256:")) {
      std::string hex = absl::AsciiStrToLower(what.substr(7));
      absl::StatusOr<Key> digest = KeyFromHex(hex, "sha256:");
      if (!digest.ok()) return fail("sha256: takes the token's SHA-256 as 64 hex digits");
      caller.principal.credential = absl::StrCat("sha256:", hex);
    } else {
      if (what.size() < kMinTokenChars) {
        return fail(absl::StrCat("a token must have at least ", kMinTokenChars,
                                 " characters (scripts/make_token.sh makes one)"));
      }
      caller.principal.credential = TokenCredential(what);
    }
    if (kind == "token") {
      caller.principal.name = absl::StrCat("token:", caller.principal.credential.substr(7, 8));
    }
    const std::string tenant = caller.principal.tenant;
    if (!table.callers.emplace(caller.principal.credential, std::move(caller)).second) {
      return fail("this credential is listed twice");
    }
    auto [it, inserted] = table.tenants_by_tag.emplace(TenantTag(tenant), tenant);
    if (!inserted && it->second != tenant) {
      return fail(absl::StrCat("tenants '", it->second, "' and '", tenant,
                               "' share a tag: rename one"));
    }
  }
  for (const auto& [tenant, quota] : table.quotas) {
    if (!table.tenants_by_tag.contains(TenantTag(tenant))) {
      number = 0;
      return fail(absl::StrCat("quota for tenant '", tenant, "', which no caller has"));
    }
  }
  return table;
}

absl::StatusOr<std::unique_ptr<AccessControl>> AccessControl::Load(const std::string& path) {
  absl::StatusOr<Table> table = Parse(path);
  if (!table.ok()) return table.status();
  return std::unique_ptr<AccessControl>(new AccessControl(path, *std::move(table)));
}

absl::Status AccessControl::Reload() {
  if (!enabled()) return absl::OkStatus();
  absl::StatusOr<Table> table = Parse(path_);
  if (!table.ok()) return table.status();
  absl::MutexLock lock(&mu_);
  table_ = *std::move(table);
  return absl::OkStatus();
}

const AccessControl::Caller* AccessControl::Find(const std::string& credential,
                                                 absl::Time now) const {
  auto it = table_.callers.find(credential);
  if (it == table_.callers.end()) return nullptr;
  if (it->second.expires && *it->second.expires <= now) return nullptr;
  return &it->second;
}

absl::StatusOr<Principal> AccessControl::Authenticate(
    std::optional<absl::string_view> bearer,
    absl::Span<const std::string> cert_identities) const {
  if (!enabled()) return Principal{"", Role::kAdmin, "anonymous", ""};
  const absl::Time now = absl::Now();
  absl::ReaderMutexLock lock(&mu_);
  if (bearer) {
    const std::string credential = TokenCredential(*bearer);
    auto it = table_.callers.find(credential);
    if (it == table_.callers.end()) {
      return absl::UnauthenticatedError("unknown or revoked bearer token");
    }
    if (it->second.expires && *it->second.expires <= now) {
      return absl::UnauthenticatedError(
          absl::StrCat("bearer token ", it->second.principal.name, " expired at ",
                       absl::FormatTime(absl::RFC3339_sec, *it->second.expires,
                                        absl::UTCTimeZone())));
    }
    return it->second.principal;
  }
  for (const std::string& identity : cert_identities) {
    if (const Caller* caller = Find(absl::StrCat("cert:", identity), now)) {
      return caller->principal;
    }
  }
  if (!cert_identities.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "client certificate '", cert_identities.front(),
        "' is not listed in the server's --auth-tokens (or has expired)"));
  }
  return absl::UnauthenticatedError(
      "this server requires credentials: send 'authorization: Bearer <token>' (kvcache "
      "tools: --token-file) or a client certificate listed in its --auth-tokens");
}

absl::Status AccessControl::Require(const Principal& who, Role role, absl::string_view what) {
  if (static_cast<int>(who.role) >= static_cast<int>(role)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(what, " needs the ", RoleName(role),
                                                  " role; ", who.name, " of tenant '",
                                                  who.tenant, "' is a ", RoleName(who.role)));
}

std::string AccessControl::TenantOfStored(const Key& stored_ns) const {
  if (!enabled()) return "";
  const uint64_t tag =
      GetLittleEndian<uint64_t>(reinterpret_cast<const char*>(stored_ns.bytes.data()));
  absl::ReaderMutexLock lock(&mu_);
  auto it = table_.tenants_by_tag.find(tag);
  return it == table_.tenants_by_tag.end() ? "" : it->second;
}

std::vector<std::string> AccessControl::Tenants() const {
  std::vector<std::string> tenants;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [tag, tenant] : table_.tenants_by_tag) tenants.push_back(tenant);
  std::sort(tenants.begin(), tenants.end());
  return tenants;
}

TenantQuota AccessControl::QuotaOf(absl::string_view tenant) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = table_.quotas.find(tenant);
  return it == table_.quotas.end() ? TenantQuota{} : it->second;
}

absl::StatusOr<Key> AccessControl::IssueDataToken(const Principal& who) {
  Key token;
  if (absl::Status s = FillRandom(token.bytes.data(), kKeyBytes); !s.ok()) {
    return absl::InternalError(absl::StrCat("data channel token: ", s.message()));
  }
  absl::MutexLock lock(&mu_);
  if (data_token_order_.size() < kMaxDataTokens) {
    data_token_order_.push_back(token);
  } else {  // The oldest token makes room.
    data_tokens_.erase(data_token_order_[data_token_next_]);
    data_token_order_[data_token_next_] = token;
    data_token_next_ = (data_token_next_ + 1) % kMaxDataTokens;
  }
  data_tokens_[token] = who;
  return token;
}

std::optional<Principal> AccessControl::ResolveDataToken(const Key& token) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = data_tokens_.find(token);
  if (it == data_tokens_.end()) return std::nullopt;
  const Principal& issued = it->second;
  if (!enabled()) return issued;
  // Still the same caller: listed, unexpired, with the same tenant and role.
  const Caller* now = Find(issued.credential, absl::Now());
  if (now == nullptr || now->principal.tenant != issued.tenant ||
      now->principal.role != issued.role) {
    return std::nullopt;
  }
  return issued;
}

}  // namespace kvcache
