"""The Python half of the vectors shared with the C++ tests (tests/data/block_key_vectors.json;
the C++ half is tests/client/shared_vectors_test.cc), and key derivation's edges."""

import json
import unittest

from kvcache_test_util import VECTORS

import kvcache_client as kc


class SharedVectorsTest(unittest.TestCase):
    vectors = json.loads(VECTORS.read_text())

    def test_block_keys_match_the_cpp_client(self):
        self.assertGreaterEqual(len(self.vectors["block_keys"]), 5)
        for v in self.vectors["block_keys"]:
            with self.subTest(v["name"]):
                d = dict(v["description"])
                d["cache_salt"] = d["cache_salt"].encode()
                desc = kc.NamespaceDescription(**d)
                self.assertEqual(kc.canonical_namespace(desc), v["canonical"].encode())
                ns = kc.namespace_id(desc)
                self.assertEqual(ns.hex(), v["namespace_id"])
                keys = kc.block_keys(ns, v["tokens"], desc.block_size)
                self.assertEqual([k.hex() for k in keys], v["keys"])

    def test_placements_match_the_cpp_client(self):
        nodes = self.vectors["placement_nodes"]
        self.assertGreaterEqual(len(self.vectors["placements"]), 10)
        for p in self.vectors["placements"]:
            ns, key = bytes.fromhex(p["namespace_id"]), bytes.fromhex(p["key"])
            self.assertEqual(["%016x" % kc.rendezvous_score(n, ns, key) for n in nodes],
                             p["scores"])
            self.assertEqual(kc.rendezvous_rank(nodes, ns, key), p["order"])
            self.assertEqual(kc.locate_owners(nodes, ns, key), [nodes[i] for i in p["order"]])
            self.assertEqual(kc.rendezvous_rank(nodes, ns, key, 2), p["order"][:2])


class KeysTest(unittest.TestCase):
    ns = kc.namespace_id(kc.NamespaceDescription(weights_digest="0" * 64, num_layers=3,
                                                 num_kv_heads=2, head_dim=16))

    def test_keys_commit_to_the_whole_prefix(self):
        t = [7] * 48
        base = kc.block_keys(self.ns, t, 16)
        t[3] = 8
        changed = kc.block_keys(self.ns, t, 16)
        self.assertTrue(all(a != b for a, b in zip(base, changed)))
        t[3], t[40] = 7, 9
        tail = kc.block_keys(self.ns, t, 16)
        self.assertEqual(base[:2], tail[:2])
        self.assertNotEqual(base[2], tail[2])

    def test_a_str_salt_is_its_utf8_bytes(self):
        a = kc.NamespaceDescription(cache_salt="tenant-\u03b2")
        b = kc.NamespaceDescription(cache_salt="tenant-\u03b2".encode())
        self.assertEqual(kc.namespace_id(a), kc.namespace_id(b))

    def test_bad_input_is_a_clear_error(self):
        with self.assertRaisesRegex(ValueError, "32 bytes"):
            kc.block_keys(b"short", [1, 2], 1)
        with self.assertRaisesRegex(ValueError, "block_size"):
            kc.block_keys(self.ns, [1, 2], 0)
        with self.assertRaisesRegex(ValueError, "token id -1"):
            kc.block_keys(self.ns, [1, -1], 2)
        with self.assertRaisesRegex(ValueError, "token id 4294967296"):
            kc.block_keys(self.ns, [2**32], 1)

    def test_cluster_targets_parse_as_in_cpp(self):
        t = kc.parse_cluster_target(" a:1 , b:2,a:1 ")
        self.assertEqual(t.addresses, ["a:1", "b:2"])
        self.assertTrue(t.is_cluster)
        self.assertFalse(kc.parse_cluster_target("a:1").is_cluster)
        d = kc.parse_cluster_target("dns:///kvcache.default.svc:50051")
        self.assertEqual((d.dns_host, d.dns_port), ("kvcache.default.svc", "50051"))
        self.assertTrue(d.is_cluster)
        self.assertEqual(kc.parse_cluster_target("dns:[::1]:7").dns_host, "::1")
        for bad, why in (("", "empty"), ("a:1,,b:2", "empty entry"),
                         ("dns:///nopport", "dns:///name:port"), ("dns:///a:1,b:2", "dns")):
            with self.subTest(bad), self.assertRaisesRegex(ValueError, why):
                kc.parse_cluster_target(bad)
        self.assertEqual(kc.resolve_cluster_target("dns:///localhost:9"),
                         sorted(kc.resolve_cluster_target("dns:///localhost:9")))
        self.assertIn("127.0.0.1:9", kc.resolve_cluster_target("dns:///localhost:9"))


if __name__ == "__main__":
    unittest.main()
