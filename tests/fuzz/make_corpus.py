#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into tests/fuzz/corpus/<target>/seed_*.

Seeds are small valid (and a few nearly valid) inputs, so the fuzzers start from the formats'
shapes instead of discovering them. Rerun after a format changes; commit the result. Inputs
that once crashed a target are kept beside them as crash_* (never regenerated here).
Usage: tests/fuzz/make_corpus.py
"""
import ctypes
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def xxh3(b):
    return _xxh.XXH3_64bits(b, len(b))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


KEY = bytes(range(32))
PARENT = bytes(range(32, 64))
NS = bytes(range(64, 96))
SHAPE = (1, 1, 2, 1, 4, 2)  # format 1, f32, 2 layers, 1 KV head, head_dim 4, 2 tokens
PAYLOAD = bytes(range(128))  # 2 layers * 2 (K,V) * 1 * 4 * 2 tokens * 4 bytes


def shape_bytes(shape=SHAPE):
    return struct.pack("<6I", *shape)


def block_header(payload=PAYLOAD, parent=PARENT):
    return (KEY + (parent or bytes(32)) + bytes([1 if parent else 0]) +
            struct.pack("<Q", xxh3(payload)) + shape_bytes() + struct.pack("<Q", len(payload)))


# --- data channel frames
write("fuzz_data_channel_wire", "hello", b"KVDC" + struct.pack("<I", 1) + KEY)
write("fuzz_data_channel_wire", "header_parent", block_header())
write("fuzz_data_channel_wire", "header_root", block_header(parent=None))
write("fuzz_data_channel_wire", "error_head", bytes([5]) + struct.pack("<I", 3))

# --- meta record: db key (ns || key) then the value
meta = (bytes([1, 1]) + PARENT + struct.pack("<Q", xxh3(PAYLOAD)) + shape_bytes() +
        struct.pack("<Qq", len(PAYLOAD), 1700000000000000))
write("fuzz_meta_record", "with_parent", NS + KEY + meta)
write("fuzz_meta_record", "root", NS + KEY + bytes([1, 0]) + meta[2:])


# --- gRPC requests: a selector byte (0 Lookup, 1 Get, 2 Put) then protobuf bytes
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def pb_shape():
    return b"".join(field_varint(i + 1, v) for i, v in enumerate(SHAPE))


def pb_block(payload=PAYLOAD, parent=PARENT):
    b = field_bytes(1, KEY)
    if parent:
        b += field_bytes(2, parent)
    b += field_bytes(3, payload) + varint(4 << 3 | 1) + struct.pack("<Q", xxh3(payload))
    return b + field_bytes(5, pb_shape())


keys = field_bytes(2, KEY) + field_bytes(2, PARENT)
write("fuzz_request", "lookup", b"\x00" + field_bytes(1, NS) + keys)
write("fuzz_request", "get", b"\x01" + field_bytes(1, NS) + keys)
write("fuzz_request", "put", b"\x02" + field_bytes(1, NS) + field_bytes(2, pb_block()))
write("fuzz_request", "put_bad_checksum",
      b"\x02" + field_bytes(1, NS) + field_bytes(2, pb_block()[:-3] + b"\x01\x02\x03"))

# --- data channel: mode byte (even: the server's hello first) then requests
put = b"\x02" + NS + block_header() + PAYLOAD
get = b"\x01" + NS + struct.pack("<I", 2) + KEY + PARENT
write("fuzz_data_channel", "put_get", b"\x00" + put + get)
write("fuzz_data_channel", "get_miss", b"\x00" + get)
write("fuzz_data_channel", "bad_op", b"\x00" + b"\x07" + NS)
write("fuzz_data_channel", "hello_only", b"\x01" + b"KVDC" + struct.pack("<I", 1) + KEY)


# --- safetensors
def safetensors(header, data):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


write("fuzz_safetensors", "two_tensors", safetensors(
    {"__metadata__": {"format": "pt"},
     "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
     "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
     "c": {"dtype": "I64", "shape": [1], "data_offsets": [22, 30]}},
    bytes(range(30))))
write("fuzz_safetensors", "f16", safetensors(
    {"h": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, bytes(range(8))))

# --- config.json
config = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "vocab_size": 256, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
          "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
          "hidden_act": "silu"}
write("fuzz_model_config", "llama", json.dumps(config, indent=2))
minimal = {k: config[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                  "num_attention_heads", "vocab_size",
                                  "max_position_embeddings", "rms_norm_eps")}
write("fuzz_model_config", "minimal", json.dumps(minimal))

# --- traces (the Mooncake FAST'25 JSONL)
write("fuzz_trace", "three", "\n".join(json.dumps(r) for r in [
    {"timestamp": 0, "input_length": 1200, "output_length": 10, "hash_ids": [0, 1, 2]},
    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [0, 1, 46]},
    {"timestamp": 27490, "input_length": 10, "output_length": 1, "hash_ids": []}]) + "\n\n")
