#!/usr/bin/python3
"""Publishes and fetches the KV of a prompt, as an inference engine would.

    /usr/bin/python3 clients/python/examples/publish_fetch.py --cache=127.0.0.1:50051 \
        --model=models/tiny --prompt-text="Once upon a time, ..."

1. Derives the prompt's block keys in Python (byte-level tokens, the model folder's namespace:
   the same keys kvcache-worker derives, so blocks either of them published are shared).
2. Looks up how many leading blocks the cache holds.
3. Publishes the blocks it lacks. An engine puts its real K and V here; this example has no
   model to run, so it writes stand-in values (each element = layer + token / 1000) in the
   worker's block layout. Blocks the worker already published are left as they are.
4. Fetches every block back and prints, per block, its key, parent, size and first K value.

Without --model a made-up namespace (1 layer, 1 KV head, head_dim 4) is used.
Exit status: 0 when every full block of the prompt was fetched back, 1 otherwise, 2 for a bad
command line.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Run from a checkout too.

import kvcache_client as kc  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default="127.0.0.1:50051",
                   help="host:port, a list host:port,host:port, or dns:///name:port")
    p.add_argument("--model", help="model folder (config.json + *.safetensors) the KV is of")
    p.add_argument("--prompt-text", default="The quick brown fox jumps over the lazy dog. " * 3)
    p.add_argument("--block-size", type=int, default=16, help="tokens per block")
    p.add_argument("--cache-salt", default="", help="tenant salt, as kvcache-worker's")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per call")
    p.add_argument("--tls-ca", default="", help="PEM CA bundle: turns TLS on")
    p.add_argument("--tls-cert", default="", help="client certificate (mutual TLS)")
    p.add_argument("--tls-key", default="", help="client key (mutual TLS)")
    p.add_argument("--token", help="bearer token sent as `authorization: Bearer ...`")
    args = p.parse_args()
    if args.block_size < 1:
        p.error("--block-size must be at least 1")

    if args.model:
        desc = kc.model_namespace(args.model, args.block_size, args.cache_salt)
    else:
        desc = kc.NamespaceDescription(weights_digest="0" * 64, num_layers=1, num_kv_heads=1,
                                       head_dim=4, block_size=args.block_size,
                                       cache_salt=args.cache_salt.encode())
    ns = kc.namespace_id(desc)
    tokens = kc.text_tokens(args.prompt_text)
    keys = kc.block_keys(ns, tokens, args.block_size)
    print(f"namespace {ns.hex()}: {len(tokens)} tokens, {len(keys)} full blocks of "
          f"{args.block_size}")
    if not keys:
        print("the prompt is shorter than one block: nothing to cache")
        return 1

    tls = kc.TlsOptions(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key)
    try:
        with kc.connect(args.cache, timeout=args.timeout, tls=tls, token=args.token) as client:
            have = client.lookup(ns, keys)
            print(f"lookup: {have.num_present} leading blocks cached "
                  f"({have.num_in_ram} in RAM)")
            if have.num_present < len(keys):
                shape = kc.BlockShape(num_layers=desc.num_layers,
                                      num_kv_heads=desc.num_kv_heads,
                                      head_dim=desc.head_dim, num_tokens=args.block_size)
                per_token = desc.num_kv_heads * desc.head_dim
                payloads = []
                for b in range(have.num_present, len(keys)):
                    values = [layer + (b * args.block_size + t) / 1000.0
                              for layer in range(desc.num_layers) for _kv in range(2)
                              for t in range(args.block_size) for _ in range(per_token)]
                    payloads.append(kc.encode_kv_block(desc.num_layers, desc.num_kv_heads,
                                                       desc.head_dim, args.block_size, values))
                r = client.put(ns, kc.chained_blocks(keys, payloads, have.num_present, shape))
                print(f"put: {r.stored} stored, {r.already_present} already there, "
                      f"{r.not_admitted} not admitted")
            blocks = client.get(ns, keys)
    except kc.KvcacheError as e:
        print(f"publish_fetch: {e}", file=sys.stderr)
        return 1

    print(f"get: {len(blocks)} of {len(keys)} blocks")
    for i, b in enumerate(blocks):
        page = kc.decode_kv_block(b.payload)
        parent = b.parent.hex()[:12] if b.parent else "-"
        print(f"  block {i}: key {b.key.hex()[:12]}  parent {parent:12}  "
              f"{len(b.payload):7} bytes  K[0][0][0][0] = {page.at(0, 0, 0, 0, 0):+.6f}")
    return 0 if len(blocks) == len(keys) else 1


if __name__ == "__main__":
    sys.exit(main())
