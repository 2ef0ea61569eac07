"""The cluster client over three real servers: each block lands on the node the rendezvous
order (the same as the C++ client's, see test_keys.py) names, replicas go to the next ones,
and a node that is down costs misses, never errors."""

import socket
import unittest

from kvcache_test_util import ServerTestCase, binary, run
from test_node_client import NS, chain

import kvcache_client as kc


class ClusterClientTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nodes = [cls.start_class_server().address for _ in range(3)]

    def setUp(self):
        super().setUp()
        self.singles = [kc.connect(a) for a in self.nodes]
        for c in self.singles:
            self.addCleanup(c.close)

    def holders(self, key):
        return [a for a, c in zip(self.nodes, self.singles)
                if c.lookup(NS, [key]).num_present == 1]

    def test_blocks_land_on_their_rendezvous_owners(self):
        with kc.connect(",".join(self.nodes), timeout=5.0, lookup_timeout=2.0) as client:
            self.assertIsInstance(client, kc.ClusterClient)
            self.assertEqual(client.members(), self.nodes)
            keys, blocks = chain(12, seed=10)
            self.assertEqual(client.put(NS, blocks).stored, 12)
            for key in keys:
                self.assertEqual(self.holders(key), [kc.locate_owners(self.nodes, NS, key)[0]])
            self.assertGreater(len({kc.locate_owners(self.nodes, NS, k)[0] for k in keys}), 1)
            self.assertEqual(client.lookup(NS, keys), kc.LookupResult(12, 12))
            got = client.get(NS, keys)
            self.assertEqual([b.payload for b in got], [b.payload for b in blocks])

    def test_blocks_the_cpp_client_placed_are_where_python_looks(self):
        # kvcache-admin put (the C++ cluster client) places; Python finds each block on the
        # node its own rendezvous order names, and reads the chain back through the cluster.
        keys, blocks = chain(6, seed=13)
        for b in blocks:
            payload = self.tmp / "payload"
            payload.write_bytes(b.payload)
            args = [binary("kvcache-admin"), f"--server={','.join(self.nodes)}", "put",
                    f"--namespace={NS.hex()}", f"--key={b.key.hex()}", f"--file={payload}"]
            if b.parent:
                args.append(f"--parent={b.parent.hex()}")
            r = run(args)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for key in keys:
            self.assertEqual(self.holders(key), [kc.locate_owners(self.nodes, NS, key)[0]])
        with kc.connect(",".join(self.nodes), lookup_timeout=2.0) as client:
            self.assertEqual([b.payload for b in client.get(NS, keys)],
                             [b.payload for b in blocks])

    def test_replicas_go_to_the_next_owners(self):
        with kc.connect(",".join(self.nodes), replicas=2, lookup_timeout=2.0) as client:
            keys, blocks = chain(6, seed=11)
            r = client.put(NS, blocks)
            self.assertEqual(r.stored, 6)  # First copies only.
            for key in keys:
                self.assertEqual(sorted(self.holders(key)),
                                 sorted(kc.locate_owners(self.nodes, NS, key)[:2]))

    def test_a_node_down_costs_misses_not_errors(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = "127.0.0.1:%d" % s.getsockname()[1]
        s.close()
        nodes = self.nodes + [dead]
        with kc.connect(",".join(nodes), timeout=2.0, lookup_timeout=2.0,
                        breaker_initial_backoff=60.0) as client:
            # A chain of which the dead node owns a block. (Its port is random: with one seed,
            # none of 16 keys was its in about 1 run of 100, as (3/4)^16 says.)
            for seed in range(12, 112):
                keys, blocks = chain(16, seed=seed)
                owners = [kc.locate_owners(nodes, NS, k)[0] for k in keys]
                if dead in owners:
                    break
            self.assertIn(dead, owners)
            client.put(NS, blocks)  # The dead node's blocks are not stored anywhere.
            first_dead = owners.index(dead)
            self.assertEqual(client.lookup(NS, keys).num_present, first_dead)
            self.assertEqual(len(client.get(NS, keys)), first_dead)
            # The failed node is now skipped: live nodes own what it would have.
            client.put(NS, blocks)
            self.assertEqual(client.lookup(NS, keys).num_present, 16)

    def test_caller_errors_are_raised(self):
        with kc.connect(",".join(self.nodes), lookup_timeout=2.0) as client:
            with self.assertRaises(kc.InvalidArgumentError):
                client.lookup(b"short", [bytes(32)])
            with self.assertRaises(kc.InvalidArgumentError):
                client.lookup(NS, [])


if __name__ == "__main__":
    unittest.main()
