#include <grpcpp/security/auth_context.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "services/access_grpc.h"

namespace kvcache {

absl::StatusOr<Principal> AuthenticateCall(const AccessControl& access,
                                           const grpc::ServerContextBase& ctx) {
  if (!access.enabled()) return access.Authenticate(std::nullopt, {});
  std::optional<absl::string_view> bearer;
  const auto& metadata = ctx.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    const absl::string_view value(it->second.data(), it->second.size());
    constexpr absl::string_view kScheme = "bearer ";
    if (value.size() <= kScheme.size() ||
        !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
      return absl::UnauthenticatedError(
          "the authorization metadata must be 'Bearer <token>'");
    }
    bearer = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  }
  std::vector<std::string> identities;
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property : {"x509_subject_alternative_name", "x509_common_name"}) {
      for (const grpc::string_ref& v : auth->FindPropertyValues(property)) {
        identities.emplace_back(v.data(), v.size());
      }
    }
  }
  return access.Authenticate(bearer, identities);
}

}  // namespace kvcache
