"""kvcache_client: the Python client of the kvcache KV-cache block service (kvcache.v1).

    import kvcache_client as kc
    ns = kc.namespace_id(kc.model_namespace("models/tiny", block_size=16))
    keys = kc.block_keys(ns, kc.text_tokens("a prompt ..."), 16)
    with kc.connect("127.0.0.1:50051") as client:
        n = client.lookup(ns, keys).num_present
        blocks = client.get(ns, keys[:n])

Keys and placements are identical to the C++ client's (tests/data/block_key_vectors.json).
See clients/python/README.md.
"""

from kvcache_client.client import (DTYPE_BF16, DTYPE_F16, DTYPE_F32, Block, BlockShape,
                                   CacheClient, ClusterClient, LookupResult, NodeClient,
                                   PutResult, TlsOptions, chained_blocks, connect,
                                   payload_checksum)
from kvcache_client.errors import (DeadlineExceededError, InvalidArgumentError, KvcacheError,
                                   PermissionDeniedError, ResourceExhaustedError,
                                   UnauthenticatedError, UnavailableError)
from kvcache_client.keys import (KEY_BYTES, NamespaceDescription, block_keys,
                                 canonical_namespace, model_namespace, namespace_id,
                                 text_tokens, weights_digest)
from kvcache_client.kv_block import KvPage, decode_kv_block, encode_kv_block
from kvcache_client.rendezvous import (ClusterTarget, locate_owners, parse_cluster_target,
                                       rendezvous_rank, rendezvous_score,
                                       resolve_cluster_target)

__version__ = "0.1.0"
