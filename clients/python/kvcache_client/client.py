"""Lookup / Get / Put against one kvcache server or a cluster of them.

    client = kvcache_client.connect("127.0.0.1:50051", timeout=2.0)
    client.lookup(ns, keys)  -> LookupResult(num_present, num_in_ram)
    client.get(ns, keys)     -> [Block, ...]   the leading run of keys the cache holds
    client.put(ns, blocks)   -> PutResult(stored, already_present, not_admitted)

Thread safety: a client may be used from many threads at once (gRPC channels are).
Errors: KvcacheError subclasses (errors.py) naming the call, the node and the gRPC code; a
miss is never an error (lookup says 0, get returns fewer blocks). Callers that can recompute
should treat UnavailableError and DeadlineExceededError as a miss.

The cluster client follows the C++ one (client/cluster_client.h) for placement (rendezvous,
R replicas), reads (each key asked of its first live owner, then the next on a miss or a
failure, all nodes in parallel) and failure (a failed node is skipped for a backoff that
doubles up to `breaker_max_backoff`; Lookup and Get never fail because of a node). It
differs in that Put writes all R copies before returning, DNS targets are re-resolved on
the first call after `resolve_interval`, and there are no hot-block read replicas or
background health checks.
"""

import concurrent.futures
import threading
import time
from collections import namedtuple
from dataclasses import dataclass
from typing import Optional

import grpc
import xxhash

from kvcache_client import errors
from kvcache_client._pb import pb, pb_grpc
from kvcache_client.rendezvous import parse_cluster_target, rendezvous_rank, \
    resolve_cluster_target

LookupResult = namedtuple("LookupResult", ["num_present", "num_in_ram"])
PutResult = namedtuple("PutResult", ["stored", "already_present", "not_admitted"])

DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 1, 2, 3


@dataclass
class TlsOptions:
    """TLS of every channel the client opens (C++ TlsClientOptions; docs/security.md).
    Setting any field turns TLS on; with no ca_file the system's roots are used."""
    ca_file: str = ""      # PEM CA bundle the server's certificate must chain to.
    cert_file: str = ""    # The client's certificate (mTLS); with key_file.
    key_file: str = ""
    server_name: str = ""  # Name to check the server's certificate against.

    @property
    def enabled(self):
        return bool(self.ca_file or self.cert_file or self.key_file or self.server_name)


@dataclass
class BlockShape:
    """The tensors a payload holds (kvcache.v1.BlockShape)."""
    format_version: int = 1
    dtype: int = DTYPE_F32
    num_layers: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    num_tokens: int = 0


@dataclass
class Block:
    """One KV block. `checksum` (XXH3-64 of the payload) is filled by put and checked by get."""
    key: bytes
    payload: bytes
    parent: Optional[bytes] = None  # The key before it in the chain; None for the first.
    shape: Optional[BlockShape] = None
    checksum: int = 0


def payload_checksum(payload):
    """XXH3-64, seed 0, of a payload: the checksum the server verifies."""
    return xxhash.xxh3_64_intdigest(payload)


def chained_blocks(chain, payloads, first=0, shape=None):
    """Blocks for chain[first:], each with its key, its parent (the key before it; None for
    chain[0]) and payloads[i - first]: what put takes for the uncached part of a chain."""
    out = []
    for i in range(first, len(chain)):
        out.append(Block(key=chain[i], payload=payloads[i - first],
                         parent=chain[i - 1] if i > 0 else None, shape=shape))
    return out


def _read_pem(path, option):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT,
                               f"tls.{option}: cannot read {path}: {e.strerror}") from None


def _channel(target, tls, max_message_bytes):
    options = [("grpc.max_send_message_length", max_message_bytes),
               ("grpc.max_receive_message_length", max_message_bytes)]
    if not tls or not tls.enabled:
        return grpc.insecure_channel(target, options=options)
    if bool(tls.cert_file) != bool(tls.key_file):
        raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT,
                               "tls.cert_file and tls.key_file go together (both or neither)")
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read_pem(tls.ca_file, "ca_file") if tls.ca_file else None,
        private_key=_read_pem(tls.key_file, "key_file") if tls.key_file else None,
        certificate_chain=_read_pem(tls.cert_file, "cert_file") if tls.cert_file else None)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.secure_channel(target, creds, options=options)


class CacheClient:
    """What both clients offer. Use connect() to make one."""

    def lookup(self, ns, keys, timeout=None):
        """How many leading `keys` of namespace `ns` the cache holds (and of those, how many
        leading ones are in RAM). Raises InvalidArgumentError, UnavailableError,
        DeadlineExceededError (a cluster: only InvalidArgumentError and the like)."""
        raise NotImplementedError

    def get(self, ns, keys, timeout=None):
        """The leading run of `keys` the cache holds, as Blocks in order (possibly none). A
        block whose checksum fails on arrival ends the run there, as a miss."""
        raise NotImplementedError

    def put(self, ns, blocks, timeout=None):
        """Publishes `blocks` (checksums computed here). Idempotent. Raises
        InvalidArgumentError, ResourceExhaustedError (a block over the server's limit),
        UnavailableError, DeadlineExceededError."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NodeClient(CacheClient):
    """A client of one server (gRPC only: the C++ client's bulk data channel is not used)."""

    def __init__(self, target, timeout=5.0, tls=None, token=None,
                 max_message_bytes=80 << 20):
        """target: "host:port" (any single gRPC target). timeout: seconds, the deadline of
        each call unless the call gives its own. tls: TlsOptions or None (plaintext).
        token: sent as `authorization: Bearer <token>` on every call when set."""
        if not target:
            raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT, "cache target is empty")
        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._channel = _channel(target, tls, max_message_bytes)
        self._stub = pb_grpc.CacheServiceStub(self._channel)
        self._admin = pb_grpc.AdminServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def _deadline(self, timeout):
        return self.timeout if timeout is None else timeout

    def lookup(self, ns, keys, timeout=None):
        req = pb.LookupRequest(namespace_id=bytes(ns), keys=[bytes(k) for k in keys])
        try:
            resp = self._stub.Lookup(req, timeout=self._deadline(timeout),
                                     metadata=self._metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, "Lookup", self.target) from None
        return LookupResult(resp.num_present, resp.num_in_ram)

    def get(self, ns, keys, timeout=None):
        keys = [bytes(k) for k in keys]
        if not keys:
            return []
        req = pb.GetRequest(namespace_id=bytes(ns), keys=keys)
        out = []
        call = self._stub.Get(req, timeout=self._deadline(timeout), metadata=self._metadata)
        try:
            for resp in call:
                b = resp.block
                if (resp.index != len(out) or b.key != keys[len(out)]
                        or payload_checksum(b.payload) != b.checksum):
                    call.cancel()  # Out of order or corrupt in flight: a miss from here.
                    break
                s = b.shape
                out.append(Block(
                    key=b.key, payload=b.payload, parent=b.parent_key or None,
                    checksum=b.checksum,
                    shape=BlockShape(s.format_version, s.dtype, s.num_layers, s.num_kv_heads,
                                     s.head_dim, s.num_tokens) if b.HasField("shape") else None))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and len(out) < len(keys):
                return out
            raise errors.from_rpc_error(e, "Get", self.target) from None
        return out

    def put(self, ns, blocks, timeout=None):
        blocks = list(blocks)
        if not blocks:
            return PutResult(0, 0, 0)

        def requests():
            for i, b in enumerate(blocks):
                msg = pb.Block(key=bytes(b.key), parent_key=bytes(b.parent or b""),
                               payload=bytes(b.payload), checksum=payload_checksum(b.payload))
                if b.shape is not None:
                    s = b.shape
                    msg.shape.CopyFrom(pb.BlockShape(
                        format_version=s.format_version, dtype=s.dtype,
                        num_layers=s.num_layers, num_kv_heads=s.num_kv_heads,
                        head_dim=s.head_dim, num_tokens=s.num_tokens))
                yield pb.PutRequest(namespace_id=bytes(ns) if i == 0 else b"", blocks=[msg])

        try:
            resp = self._stub.Put(requests(), timeout=self._deadline(timeout),
                                  metadata=self._metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, "Put", self.target) from None
        return PutResult(resp.stored, resp.already_present, resp.not_admitted)

    def stats(self, timeout=None):
        """The server's GetStats answer (kvcache.v1.GetStatsResponse), for operators."""
        try:
            return self._admin.GetStats(pb.GetStatsRequest(), timeout=self._deadline(timeout),
                                        metadata=self._metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, "GetStats", self.target) from None


# Codes after which a node is skipped for a while (C++: they count towards its breaker).
_NODE_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


class _Node:
    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.down_until = 0.0  # monotonic seconds; skipped while now < down_until.
        self.backoff = 0.0
        self.last_error = ""

    def live(self, now):
        with self.lock:
            return now >= self.down_until

    def record(self, error, initial, maximum):
        with self.lock:
            if error is None:
                self.backoff = 0.0
                self.down_until = 0.0
                return
            self.backoff = initial if self.backoff == 0.0 else min(self.backoff * 2, maximum)
            self.down_until = time.monotonic() + self.backoff
            self.last_error = str(error)


class ClusterClient(CacheClient):
    """A client of N nodes with rendezvous placement and R replicas (see the module doc)."""

    _MAX_ROUNDS = 8

    def __init__(self, target, timeout=5.0, lookup_timeout=0.25, replicas=1, tls=None,
                 token=None, max_message_bytes=80 << 20, resolve_interval=30.0,
                 breaker_initial_backoff=0.5, breaker_max_backoff=30.0):
        """target: "host:port,host:port,..." or "dns:///name:port" (a list of one works too).
        timeout: seconds per node call and per client call; lookup_timeout: of a Lookup.
        replicas: R, the copies of each block. Other arguments as NodeClient."""
        try:
            self._target = parse_cluster_target(target)
        except ValueError as e:
            raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        if replicas < 1:
            raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"replicas must be at least 1, got {replicas}")
        self.timeout = timeout
        self.lookup_timeout = lookup_timeout
        self.replicas = replicas
        self._node_args = dict(timeout=timeout, tls=tls, token=token,
                               max_message_bytes=max_message_bytes)
        self._resolve_interval = resolve_interval
        self._backoff = (breaker_initial_backoff, breaker_max_backoff)
        self._lock = threading.Lock()
        self._names = []
        self._nodes = {}
        self._resolved_at = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16,
                                                           thread_name_prefix="kvcache")
        self._resolve()

    def _resolve(self):
        try:
            names = resolve_cluster_target(self._target)
        except (ConnectionError, ValueError):
            names = []  # Every call is a miss until the next resolution (as in C++).
        with self._lock:
            self._resolved_at = time.monotonic()
            for name in names:
                if name not in self._nodes:
                    self._nodes[name] = _Node(NodeClient(name, **self._node_args))
            for name in set(self._nodes) - set(names):
                self._nodes.pop(name).client.close()
            self._names = names

    def members(self):
        """The current node addresses, in a stable order."""
        with self._lock:
            return list(self._names)

    def node(self, address):
        """The NodeClient of one member (for per-node inspection)."""
        with self._lock:
            return self._nodes[address].client

    def _view(self):
        if (self._target.is_dns
                and time.monotonic() - self._resolved_at >= self._resolve_interval):
            self._resolve()
        with self._lock:
            names = list(self._names)
            nodes = [self._nodes[n] for n in names]
        now = time.monotonic()
        return names, nodes, [n.live(now) for n in nodes]

    def _live_rank(self, view, ns, key, count):
        names, _, live = view
        return [i for i in rendezvous_rank(names, ns, key) if live[i]][:count]

    def _call_all(self, view, calls, deadline, what):
        """Runs calls [(node index, fn)] in parallel; returns per call the result, an
        exception, or None when it did not finish by `deadline`. Records node outcomes."""
        _, nodes, _ = view
        futures = [self._pool.submit(fn) for _, fn in calls]
        done, _ = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        out = []
        for (i, _), f in zip(calls, futures):
            if f not in done:
                nodes[i].record(f"{what}: no answer in time", *self._backoff)
                out.append(None)
                continue
            e = f.exception()
            if e is None:
                nodes[i].record(None, *self._backoff)
                out.append(f.result())
            else:
                if isinstance(e, errors.KvcacheError) and e.code in _NODE_FAILURES:
                    nodes[i].record(e, *self._backoff)
                out.append(e)
        return out

    @staticmethod
    def _group(first, limit, done, candidates, nxt):
        groups = {}
        for i in range(first, limit):
            if not done[i]:
                groups.setdefault(candidates[i][nxt[i]], []).append(i)
        return sorted(groups.items())

    @staticmethod
    def _missed_at(idx, c, candidates, nxt):
        if c >= len(idx):
            return
        nxt[idx[c]] += 1
        for j in idx[c + 1:]:
            cand, at = candidates[j], nxt[j]
            cand[at:] = cand[at + 1:] + cand[at:at + 1]  # This node last for the rest.

    def _rounds(self, view, ns, keys, timeout, ask, what):
        """The C++ cluster client's read loop: ask each key's next candidate, grouped by node,
        until the prefix is decided. ask(node_index, [key indices]) -> (count, values)."""
        n = len(keys)
        candidates = [self._live_rank(view, ns, k, self.replicas) for k in keys]
        nxt = [0] * n
        got = [None] * n
        limit = n
        deadline = time.monotonic() + timeout
        for round_no in range(self._MAX_ROUNDS):
            first = 0
            while first < limit and got[first] is not None:
                first += 1
            for i in range(first, limit):
                if got[i] is None and nxt[i] >= len(candidates[i]):
                    limit = i
                    break
            if first >= limit or (round_no > 0 and time.monotonic() >= deadline):
                break
            done = [g is not None for g in got]
            asked = self._group(first, limit, done, candidates, nxt)
            results = self._call_all(
                view, [(node, (lambda node=node, idx=idx: ask(node, idx))) for node, idx in asked],
                deadline, what)
            for (node, idx), r in zip(asked, results):
                if r is None or isinstance(r, Exception):
                    if isinstance(r, errors.KvcacheError) and r.code in errors.CALLER_ERRORS:
                        raise r
                    if isinstance(r, Exception) and not isinstance(r, errors.KvcacheError):
                        raise r
                    for i in idx:
                        nxt[i] += 1  # Failed or too slow: vouches for nothing.
                    continue
                values = r
                for j, v in enumerate(values[:len(idx)]):
                    got[idx[j]] = v
                self._missed_at(idx, min(len(values), len(idx)), candidates, nxt)
        out = []
        while len(out) < n and got[len(out)] is not None:
            out.append(got[len(out)])
        return out

    def lookup(self, ns, keys, timeout=None):
        keys = [bytes(k) for k in keys]
        if not keys:
            raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT, "Lookup: no keys")
        view = self._view()
        timeout = self.lookup_timeout if timeout is None else timeout

        def ask(node, idx):
            r = view[1][node].client.lookup(ns, [keys[i] for i in idx], timeout=timeout)
            c = min(r.num_present, len(idx))
            return [j < r.num_in_ram for j in range(c)]

        present = self._rounds(view, ns, keys, timeout, ask, "Lookup")
        in_ram = 0
        while in_ram < len(present) and present[in_ram]:
            in_ram += 1
        return LookupResult(len(present), in_ram)

    def get(self, ns, keys, timeout=None):
        keys = [bytes(k) for k in keys]
        if not keys:
            return []
        view = self._view()
        timeout = self.timeout if timeout is None else timeout

        def ask(node, idx):
            sub = [keys[i] for i in idx]
            blocks = view[1][node].client.get(ns, sub, timeout=timeout)
            j = 0
            while j < len(blocks) and j < len(sub) and blocks[j].key == sub[j]:
                j += 1
            return blocks[:j]

        return self._rounds(view, ns, keys, timeout, ask, "Get")

    def put(self, ns, blocks, timeout=None):
        blocks = list(blocks)
        if not blocks:
            return PutResult(0, 0, 0)
        view = self._view()
        names, nodes, live = view
        if not any(live):
            raise errors.error_for(grpc.StatusCode.UNAVAILABLE,
                                   "Put: no cache node is in use (all down or none listed)")
        timeout = self.timeout if timeout is None else timeout
        # One call per (node, first copy or replica), so that the result counts first copies
        # only and reads as for one node.
        per_call = {}
        for b in blocks:
            for r, node in enumerate(self._live_rank(view, ns, b.key, self.replicas)):
                per_call.setdefault((node, r == 0), []).append(b)
        keys = sorted(per_call)
        calls = [(node, (lambda bs=per_call[(node, f)], node=node:
                         nodes[node].client.put(ns, bs, timeout))) for node, f in keys]
        results = self._call_all(view, calls, time.monotonic() + timeout, "Put")
        stored = already = not_admitted = 0
        any_ok, failure = False, None
        for (node, first_copy), r in zip(keys, results):
            if r is None:
                failure = errors.error_for(grpc.StatusCode.DEADLINE_EXCEEDED,
                                           "no answer in time", "Put", names[node])
                continue
            if isinstance(r, Exception):
                if not isinstance(r, errors.KvcacheError) or r.code in errors.CALLER_ERRORS:
                    raise r
                failure = r
                continue
            if first_copy:
                any_ok = True
                stored += r.stored
                already += r.already_present
                not_admitted += r.not_admitted
        if not any_ok and failure is not None:
            raise errors.error_for(grpc.StatusCode.UNAVAILABLE,
                                   f"Put: no cache node took the blocks; last error: {failure}")
        return PutResult(stored, already, not_admitted)

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for node in self._nodes.values():
                node.client.close()


def connect(target, **options):
    """A client for `target`: a NodeClient for one "host:port", a ClusterClient for a list
    ("host:port,host:port") or "dns:///name:port". Options as the classes take them
    (timeout, tls, token, replicas, ...). Raises InvalidArgumentError for a bad target."""
    try:
        parsed = parse_cluster_target(target)
    except ValueError as e:
        raise errors.error_for(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
    if parsed.is_cluster:
        return ClusterClient(target, **options)
    for cluster_only in ("lookup_timeout", "replicas", "resolve_interval",
                         "breaker_initial_backoff", "breaker_max_backoff"):
        options.pop(cluster_only, None)
    return NodeClient(parsed.addresses[0], **options)
