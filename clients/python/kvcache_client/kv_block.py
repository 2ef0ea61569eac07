"""kvcache-worker's block payload (docs/worker.md, "KV pages and block payloads"): a 32-byte
header (magic KVB1, format_version, dtype, num_layers, num_kv_heads, head_dim, num_tokens,
reserved; u32 little-endian each) and then, for layer 0..L-1, K [num_tokens][num_kv_heads]
[head_dim] and then V of the same shape, as little-endian f32."""

import array
import struct
import sys
from dataclasses import dataclass

MAGIC = b"KVB1"
HEADER = struct.Struct("<4s7I")


@dataclass
class KvPage:
    format_version: int
    dtype: int
    num_layers: int
    num_kv_heads: int
    head_dim: int
    num_tokens: int
    values: array.array  # f32, in the payload's order.

    def at(self, layer, kv, token, head, d):
        """Element (layer, K=0 / V=1, token, KV head, d)."""
        i = (((layer * 2 + kv) * self.num_tokens + token) * self.num_kv_heads + head)
        return self.values[i * self.head_dim + d]


def decode_kv_block(payload):
    """A KvPage from a worker block payload. Raises ValueError for a payload that is not one
    (bad magic, not f32, a size that does not match its header)."""
    if len(payload) < HEADER.size:
        raise ValueError(f"payload of {len(payload)} bytes is shorter than the header")
    magic, version, dtype, layers, kv_heads, head_dim, tokens, _ = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if dtype != 1:
        raise ValueError(f"dtype {dtype} is not f32 (1)")
    floats = layers * 2 * tokens * kv_heads * head_dim
    if len(payload) != HEADER.size + 4 * floats:
        raise ValueError(f"payload of {len(payload)} bytes, header says "
                         f"{HEADER.size + 4 * floats}")
    values = array.array("f")
    values.frombytes(bytes(payload[HEADER.size:]))
    if sys.byteorder != "little":
        values.byteswap()
    return KvPage(version, dtype, layers, kv_heads, head_dim, tokens, values)


def encode_kv_block(num_layers, num_kv_heads, head_dim, num_tokens, values):
    """A worker block payload (f32) from `values`, the page's floats in payload order. Raises
    ValueError when there are not num_layers * 2 * num_tokens * num_kv_heads * head_dim."""
    floats = num_layers * 2 * num_tokens * num_kv_heads * head_dim
    values = array.array("f", values)
    if len(values) != floats:
        raise ValueError(f"{len(values)} values, the shape needs {floats}")
    if sys.byteorder != "little":
        values.byteswap()
    return HEADER.pack(MAGIC, 1, 1, num_layers, num_kv_heads, head_dim, num_tokens, 0) + \
        values.tobytes()
