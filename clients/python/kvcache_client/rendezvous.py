"""Placement of blocks on the nodes of a cluster and the cluster target syntax, identical to
the C++ client's (client/rendezvous.h, docs/cluster.md):

    score(node, ns, key) = XXH3-64( ns || key , seed = XXH3-64(node) )

`node` is the address exactly as listed; the R highest scores own the block (ties to the
lower index).
"""

import ipaddress
import socket
from dataclasses import dataclass, field

import xxhash


def rendezvous_score(node, ns, key):
    """The rendezvous score (an int in [0, 2**64)) of `node` for block (ns, key)."""
    seed = xxhash.xxh3_64_intdigest(node.encode())
    return xxhash.xxh3_64_intdigest(bytes(ns) + bytes(key), seed=seed)


def rendezvous_rank(nodes, ns, key, count=None):
    """Indices into `nodes` of the `count` best nodes for (ns, key), best first (all of them
    when count is None or >= len(nodes))."""
    order = sorted(range(len(nodes)), key=lambda i: (-rendezvous_score(nodes[i], ns, key), i))
    return order if count is None else order[:count]


def locate_owners(nodes, ns, key):
    """Every node in rendezvous order for (ns, key): the first R are the block's owners."""
    return [nodes[i] for i in rendezvous_rank(nodes, ns, key)]


@dataclass
class ClusterTarget:
    addresses: list = field(default_factory=list)  # The nodes listed, or none for DNS.
    dns_host: str = ""
    dns_port: str = ""

    @property
    def is_dns(self):
        return bool(self.dns_host)

    @property
    def is_cluster(self):
        return self.is_dns or len(self.addresses) > 1


def parse_cluster_target(target):
    """Parses "host:port", "host:port,host:port,..." (duplicates dropped) or
    "dns:///name:port" (also "dns:name:port"). Raises ValueError as the C++ client returns
    INVALID_ARGUMENT."""
    target = target.strip()
    if not target:
        raise ValueError("cache target is empty")
    for prefix in ("dns:///", "dns:"):
        if target.startswith(prefix):
            rest = target[len(prefix):]
            colon = rest.rfind(":")
            if colon <= 0 or colon + 1 == len(rest) or "," in rest:
                raise ValueError(f"cache target '{target}': expected dns:///name:port")
            host = rest[:colon]
            if host.startswith("["):
                host = host[1:].removesuffix("]")
            return ClusterTarget(dns_host=host, dns_port=rest[colon + 1:])
    out = ClusterTarget()
    for part in target.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"cache target '{target}': empty entry in the node list")
        if part not in out.addresses:
            out.addresses.append(part)
    return out


def resolve_cluster_target(target):
    """The node addresses of a ClusterTarget (or target string) now: the listed ones, or the
    DNS name's addresses ("ip:port", IPv6 as "[ip]:port"), sorted as the C++ client sorts
    them (bytewise). Raises ValueError (bad target) or ConnectionError (does not resolve)."""
    if isinstance(target, str):
        target = parse_cluster_target(target)
    if not target.is_dns:
        return list(target.addresses)
    try:
        infos = socket.getaddrinfo(target.dns_host, target.dns_port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConnectionError(f"resolving {target.dns_host}: {e.strerror}") from None
    found = set()
    for family, _, _, _, sockaddr in infos:
        ip = sockaddr[0]
        if family == socket.AF_INET6:
            found.add(f"[{ipaddress.ip_address(ip.split('%')[0])}]:{target.dns_port}")
        elif family == socket.AF_INET:
            found.add(f"{ip}:{target.dns_port}")
    if not found:
        raise ConnectionError(f"resolving {target.dns_host}: no address")
    return sorted(found, key=str.encode)
