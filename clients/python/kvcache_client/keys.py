"""Block keys, identical to the C++ client's (client/block_keys.h, docs/block-keys.md):

    namespace_id = SHA-256( canonical_namespace(description) )
    key_0        = SHA-256( "kvcache-block-v1" || namespace_id || tokens_0 )
    key_i        = SHA-256( key_{i-1} || tokens_i )

each token id as 4 bytes little-endian, tokens_i the i-th run of block_size tokens; only full
blocks get keys. tests/data/block_key_vectors.json holds vectors that the C++ and the Python
tests both check.
"""

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32
_BLOCK_DOMAIN = b"kvcache-block-v1"


@dataclass
class NamespaceDescription:
    """Everything that changes the bytes of a block's K and V (C++ NamespaceDescription)."""
    architecture: str = "llama"
    weights_digest: str = ""   # Hex SHA-256 of the model's weights (and config).
    dtype: str = "f32"         # KV element type: f32, f16 or bf16.
    num_layers: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    rope_theta: float = 10000.0
    block_size: int = 16       # Tokens per block.
    cache_salt: bytes = b""    # Optional tenant salt (str is UTF-8 encoded).


def _text(value):
    return value if isinstance(value, bytes) else str(value).encode()


def canonical_namespace(d):
    """The canonical text hashed into the namespace id, as bytes."""
    fields = [
        ("architecture", d.architecture), ("weights_digest", d.weights_digest),
        ("dtype", d.dtype), ("num_layers", int(d.num_layers)),
        ("num_kv_heads", int(d.num_kv_heads)), ("head_dim", int(d.head_dim)),
        ("rope_theta", "%.17g" % float(d.rope_theta)), ("block_size", int(d.block_size)),
        ("cache_salt", d.cache_salt),
    ]
    out = b"kvcache-namespace-v1\n"
    for name, value in fields:
        out += name.encode() + b"=" + _text(value) + b"\n"
    return out


def namespace_id(description):
    """The 32-byte namespace id of a NamespaceDescription."""
    return hashlib.sha256(canonical_namespace(description)).digest()


def block_keys(ns, tokens, block_size):
    """The 32-byte keys of the full blocks of `tokens` (ints in [0, 2**32)), in chain order.

    Raises ValueError for a namespace id that is not 32 bytes, block_size < 1, or a token id
    out of range."""
    ns = bytes(ns)
    if len(ns) != KEY_BYTES:
        raise ValueError(f"namespace id must be {KEY_BYTES} bytes, got {len(ns)}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    tokens = list(tokens)
    keys = []
    for i in range(len(tokens) // block_size):
        h = hashlib.sha256(_BLOCK_DOMAIN + ns if i == 0 else keys[-1])
        chunk = tokens[i * block_size:(i + 1) * block_size]
        try:
            h.update(struct.pack(f"<{block_size}I", *chunk))
        except struct.error:
            bad = next(t for t in chunk if not 0 <= t < 2**32)
            raise ValueError(f"token id {bad} is not a uint32") from None
        keys.append(h.digest())
    return keys


def weights_digest(model_dir):
    """Hex SHA-256 of config.json and every *.safetensors file of a model folder, framed as
    the worker frames them (docs/block-keys.md, "The weights digest")."""
    model_dir = Path(model_dir)
    h = hashlib.sha256(b"kvcache-weights-v1\n")
    files = [model_dir / "config.json"]
    files += sorted((p for p in model_dir.iterdir()
                     if p.is_file() and p.name.endswith(".safetensors")
                     and len(p.name) > len(".safetensors")),
                    key=lambda p: p.name.encode())
    for f in files:
        size = f.stat().st_size
        h.update(f.name.encode() + b"\n" + str(size).encode() + b"\n")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_namespace(model_dir, block_size=16, cache_salt=b""):
    """The NamespaceDescription kvcache-worker uses for a Hugging Face style model folder
    (worker/model.cc Model::Namespace): the KV is f32, head_dim and num_kv_heads take
    LlamaConfig's defaults."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    heads = int(config["num_attention_heads"])
    return NamespaceDescription(
        architecture="llama",
        weights_digest=weights_digest(model_dir),
        dtype="f32",
        num_layers=int(config["num_hidden_layers"]),
        num_kv_heads=int(config.get("num_key_value_heads", heads)),
        head_dim=int(config.get("head_dim", int(config["hidden_size"]) // heads)),
        rope_theta=float(config.get("rope_theta", 10000.0)),
        block_size=int(block_size),
        cache_salt=_text(cache_salt),
    )


def text_tokens(text):
    """kvcache-worker's byte-level tokens of a prompt text: one id per UTF-8 byte."""
    return list(_text(text))
