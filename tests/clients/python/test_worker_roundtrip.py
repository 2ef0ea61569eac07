"""A prompt published by the real kvcache-worker (generated tiny model) is found and fetched
from Python with keys derived in Python; and blocks Python publishes under the worker's keys
are what the worker then reuses."""

import sys
import unittest

from kvcache_test_util import SOURCE_DIR, ServerTestCase, binary, run, worker_generate

import kvcache_client as kc

PROMPT = ("The kvcache service shares the attention keys and values of prompt prefixes "
          "between workers, so a prefix computed once is fetched instead of recomputed.")


class WorkerRoundTripTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.model = self.tmp / "model"
        r = run([binary("kvcache-worker"), "make-model", f"--out={self.model}",
                 "--preset=tiny"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.server = self.start_server()

    def test_a_worker_published_prompt_is_fetched_from_python(self):
        cold = worker_generate(self.model, self.server.address, PROMPT)
        ns = kc.namespace_id(kc.model_namespace(self.model, block_size=16))
        self.assertEqual(ns.hex(), cold["namespace"])
        tokens = kc.text_tokens(PROMPT)
        self.assertEqual(len(tokens), cold["prompt_tokens"])
        keys = kc.block_keys(ns, tokens, 16)
        self.assertEqual(len(keys), len(tokens) // 16)
        self.assertEqual(cold["published_blocks"], len(keys))

        with kc.connect(self.server.address) as client:
            self.assertEqual(client.lookup(ns, keys).num_present, len(keys))
            blocks = client.get(ns, keys)
            self.assertEqual([b.key for b in blocks], keys)
            self.assertEqual([b.parent for b in blocks], [None] + keys[:-1])
            for b in blocks:
                page = kc.decode_kv_block(b.payload)
                self.assertEqual((page.num_layers, page.num_kv_heads, page.head_dim,
                                  page.num_tokens), (3, 2, 16, 16))
                self.assertEqual(b.shape.num_tokens, 16)
            # Python-derived keys of a longer prompt with the same prefix hit its blocks.
            longer = kc.block_keys(ns, tokens + kc.text_tokens(" And more."), 16)
            self.assertEqual(longer[:len(keys)], keys)
            self.assertEqual(client.lookup(ns, longer).num_present, len(keys))

            # The worker reuses all of it.
            warm = worker_generate(self.model, self.server.address, PROMPT)
            self.assertEqual(warm["cached_tokens"], 16 * len(keys))
            self.assertEqual(warm["tokens"], cold["tokens"])

            # A salted worker has another namespace, which Python derives the same way.
            salted = worker_generate(self.model, self.server.address, PROMPT,
                                     "--cache-salt=tenant-a")
            ns_a = kc.namespace_id(kc.model_namespace(self.model, 16, cache_salt="tenant-a"))
            self.assertEqual(ns_a.hex(), salted["namespace"])
            self.assertEqual(salted["cached_tokens"], 0)

    def test_sharded_bf16_models_hash_the_same_in_python(self):
        # Two safetensors files (hashed in name order) and bf16 weights: the digest framing
        # and the KV dtype (always f32 in the worker) must match.
        model = self.tmp / "sharded"
        r = run([binary("kvcache-worker"), "make-model", f"--out={model}", "--preset=tiny",
                 "--dtype=bf16", "--shards=3", "--seed=7"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(list(model.glob("*.safetensors"))), 3)
        out = worker_generate(model, self.server.address, PROMPT, "--block-size=8")
        desc = kc.model_namespace(model, block_size=8)
        self.assertEqual(kc.namespace_id(desc).hex(), out["namespace"])
        self.assertEqual(desc.dtype, "f32")
        keys = kc.block_keys(kc.namespace_id(desc), kc.text_tokens(PROMPT), 8)
        with kc.connect(self.server.address) as client:
            self.assertEqual(client.lookup(kc.namespace_id(desc), keys).num_present, len(keys))

    def test_python_publishes_blocks_the_worker_reuses(self):
        # Blocks a first worker computed, fetched by Python and published again under the
        # same keys on a second server: a worker there starts warm.
        worker_generate(self.model, self.server.address, PROMPT)
        ns = kc.namespace_id(kc.model_namespace(self.model))
        keys = kc.block_keys(ns, kc.text_tokens(PROMPT), 16)
        other = self.start_server()
        with kc.connect(self.server.address) as src, kc.connect(other.address) as dst:
            blocks = src.get(ns, keys)
            self.assertEqual(dst.put(ns, blocks).stored, len(keys))
        warm = worker_generate(self.model, other.address, PROMPT)
        self.assertEqual(warm["cached_tokens"], 16 * len(keys))
        self.assertNotIn("cache_note", warm)

    def test_the_example_fetches_what_the_worker_published(self):
        worker_generate(self.model, self.server.address, PROMPT)
        example = SOURCE_DIR / "clients" / "python" / "examples" / "publish_fetch.py"
        longer = PROMPT + " The example publishes the rest."
        r = run([sys.executable, str(example), f"--cache={self.server.address}",
                 f"--model={self.model}", f"--prompt-text={longer}"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        worker_blocks = len(PROMPT.encode()) // 16
        total = len(longer.encode()) // 16
        self.assertIn(f"lookup: {worker_blocks} leading blocks cached", r.stdout)
        self.assertIn(f"put: {total - worker_blocks} stored", r.stdout)
        self.assertIn(f"get: {total} of {total} blocks", r.stdout)


if __name__ == "__main__":
    unittest.main()
