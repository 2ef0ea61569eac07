#include "client/rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kvcache {

uint64_t RendezvousScore(absl::string_view node, const Key& ns, const Key& key) {
  const uint64_t seed = XXH3_64bits(node.data(), node.size());
  uint8_t buf[2 * kKeyBytes];
  std::memcpy(buf, ns.bytes.data(), kKeyBytes);
  std::memcpy(buf + kKeyBytes, key.bytes.data(), kKeyBytes);
  return XXH3_64bits_withSeed(buf, sizeof(buf), seed);
}

std::vector<size_t> RendezvousRank(absl::Span<const std::string> nodes, const Key& ns,
                                   const Key& key, size_t count) {
  std::vector<std::pair<uint64_t, size_t>> scored;
  scored.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    scored.emplace_back(RendezvousScore(nodes[i], ns, key), i);
  }
  count = std::min(count, scored.size());
  auto better = [](const std::pair<uint64_t, size_t>& a, const std::pair<uint64_t, size_t>& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  };
  std::partial_sort(scored.begin(), scored.begin() + count, scored.end(), better);
  std::vector<size_t> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(scored[i].second);
  return out;
}

std::vector<std::string> LocateOwners(absl::Span<const std::string> nodes, const Key& ns,
                                      const Key& key) {
  std::vector<std::string> out;
  for (size_t i : RendezvousRank(nodes, ns, key, nodes.size())) out.push_back(nodes[i]);
  return out;
}

absl::StatusOr<ClusterTarget> ParseClusterTarget(absl::string_view target) {
  ClusterTarget out;
  target = absl::StripAsciiWhitespace(target);
  if (target.empty()) return absl::InvalidArgumentError("cache target is empty");
  absl::string_view dns = target;
  if (absl::ConsumePrefix(&dns, "dns:///") || absl::ConsumePrefix(&dns, "dns:")) {
    const size_t colon = dns.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == dns.size() ||
        dns.find(',') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache target '", target, "': expected dns:///name:port"));
    }
    absl::string_view host = dns.substr(0, colon);
    if (absl::ConsumePrefix(&host, "[")) host = absl::StripSuffix(host, "]");
    out.dns_host = std::string(host);
    out.dns_port = std::string(dns.substr(colon + 1));
    return out;
  }
  std::set<std::string> seen;
  for (absl::string_view part : absl::StrSplit(target, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache target '", target, "': empty entry in the node list"));
    }
    if (seen.insert(std::string(part)).second) out.addresses.emplace_back(part);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ResolveClusterTarget(const ClusterTarget& target) {
  if (!target.is_dns()) return target.addresses;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(target.dns_host.c_str(), target.dns_port.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolving ", target.dns_host, ": ",
                                               gai_strerror(rc)));
  }
  std::set<std::string> found;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, ip, sizeof(ip));
      found.insert(absl::StrCat(ip, ":", target.dns_port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, ip,
                sizeof(ip));
      found.insert(absl::StrCat("[", ip, "]:", target.dns_port));
    }
  }
  freeaddrinfo(res);
  if (found.empty()) {
    return absl::UnavailableError(absl::StrCat("resolving ", target.dns_host, ": no address"));
  }
  return std::vector<std::string>(found.begin(), found.end());
}

absl::StatusOr<std::vector<std::string>> ResolveClusterTarget(absl::string_view target) {
  absl::StatusOr<ClusterTarget> parsed = ParseClusterTarget(target);
  if (!parsed.ok()) return parsed.status();
  return ResolveClusterTarget(*parsed);
}

}  // namespace kvcache
