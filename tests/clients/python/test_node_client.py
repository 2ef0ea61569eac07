"""The node client against a real kvcache-server on loopback: round trips, misses, errors with
the right exception, deadlines, TLS and mutual TLS, the bearer token option."""

import socket
import time
import unittest

from kvcache_test_util import ServerTestCase, make_certs

import kvcache_client as kc

NS = kc.namespace_id(kc.NamespaceDescription(weights_digest="ab" * 32, num_layers=1,
                                             num_kv_heads=1, head_dim=2, block_size=4))


def chain(n, seed=0):
    keys = kc.block_keys(NS, [seed * 1000 + t for t in range(4 * n)], 4)
    payloads = [kc.encode_kv_block(1, 1, 2, 4, [seed + i + j / 16 for j in range(16)])
                for i in range(n)]
    return keys, kc.chained_blocks(keys, payloads, shape=kc.BlockShape(
        num_layers=1, num_kv_heads=1, head_dim=2, num_tokens=4))


class NodeClientTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()

    def setUp(self):
        super().setUp()
        self.client = kc.connect(self.server.address, timeout=5.0)
        self.addCleanup(self.client.close)
        self.assertIsInstance(self.client, kc.NodeClient)

    def test_put_lookup_get_round_trip(self):
        keys, blocks = chain(5)
        before = self.client.stats().ram.blocks
        self.assertEqual(self.client.lookup(NS, keys), kc.LookupResult(0, 0))
        self.assertEqual(self.client.get(NS, keys), [])  # A miss is not an error.
        r = self.client.put(NS, blocks[:3])
        self.assertEqual((r.stored, r.already_present), (3, 0))
        self.assertEqual(self.client.put(NS, blocks[:3]).already_present, 3)  # Idempotent.
        self.assertEqual(self.client.lookup(NS, keys).num_present, 3)
        got = self.client.get(NS, keys)
        self.assertEqual([b.key for b in got], keys[:3])
        self.assertEqual([b.payload for b in got], [b.payload for b in blocks[:3]])
        self.assertEqual([b.parent for b in got], [None, keys[0], keys[1]])
        self.assertEqual(got[2].checksum, kc.payload_checksum(blocks[2].payload))
        self.assertEqual(got[1].shape, blocks[1].shape)
        self.assertEqual(kc.decode_kv_block(got[2].payload).at(0, 1, 3, 0, 1), 2 + 15 / 16)
        # Another namespace shares nothing.
        other = bytes(32)
        self.assertEqual(self.client.lookup(other, keys).num_present, 0)
        self.assertEqual(self.client.stats().ram.blocks, before + 3)

    def test_lookup_stops_at_the_first_gap(self):
        keys, blocks = chain(4, seed=1)
        self.client.put(NS, [blocks[0], blocks[2], blocks[3]])
        self.assertEqual(self.client.lookup(NS, keys).num_present, 1)
        self.assertEqual(len(self.client.get(NS, keys)), 1)

    def test_bad_requests_raise_invalid_argument(self):
        keys, blocks = chain(1, seed=2)
        with self.assertRaises(kc.InvalidArgumentError) as e:
            self.client.lookup(b"x" * 31, keys)
        self.assertIn("namespace", str(e.exception))
        self.assertIn(self.server.address, str(e.exception))
        self.assertIn("Lookup", str(e.exception))
        with self.assertRaises(kc.InvalidArgumentError):
            self.client.get(NS, [b"k" * 33])
        with self.assertRaises(kc.InvalidArgumentError):
            self.client.put(NS, [kc.Block(key=b"k" * 5, payload=b"x")])
        with self.assertRaises(kc.InvalidArgumentError):
            self.client.put(NS, [kc.Block(key=keys[0], payload=b"")])
        # An InvalidArgumentError is also a ValueError.
        with self.assertRaises(ValueError):
            self.client.lookup(b"", keys)

    def test_a_block_over_the_server_limit_is_resource_exhausted(self):
        server = self.start_server("--max-block-bytes=1KiB")
        with kc.connect(server.address) as client:
            keys, _ = chain(1, seed=3)
            with self.assertRaises(kc.ResourceExhaustedError):
                client.put(NS, [kc.Block(key=keys[0], payload=b"x" * 4096)])
            # A payload that does not match its shape is the caller's error.
            with self.assertRaisesRegex(kc.InvalidArgumentError, "shape"):
                client.put(NS, [kc.Block(key=keys[0], payload=b"x" * 100,
                                         shape=kc.BlockShape(1, 1, 1, 1, 2, 4))])

    def test_token_is_accepted_by_a_server_without_auth(self):
        keys, blocks = chain(2, seed=4)
        with kc.connect(self.server.address, token="s3cret") as client:
            self.assertEqual(client.put(NS, blocks).stored, 2)
            self.assertEqual(client.lookup(NS, keys).num_present, 2)


class AuthTest(ServerTestCase):
    """Against a real server with --auth-tokens: the token picks the tenant and the role."""

    def test_tokens_pick_tenant_and_role(self):
        tokens = self.tmp / "tokens"
        tokens.write_text("token writer-a-0123456789abcdef tenant=a role=writer\n"
                          "token reader-a-0123456789abcdef tenant=a role=reader\n"
                          "token writer-b-0123456789abcdef tenant=b role=writer\n")
        server = self.start_server(f"--auth-tokens={tokens}")
        keys, blocks = chain(3, seed=7)
        with kc.connect(server.address, timeout=5.0) as anonymous:
            with self.assertRaises(kc.UnauthenticatedError):
                anonymous.lookup(NS, keys)
        with kc.connect(server.address, token="writer-a-0123456789abcdef") as a:
            self.assertEqual(a.put(NS, blocks).stored, 3)
        with kc.connect(server.address, token="reader-a-0123456789abcdef") as reader:
            self.assertEqual(reader.lookup(NS, keys).num_present, 3)
            self.assertEqual([b.payload for b in reader.get(NS, keys)],
                             [b.payload for b in blocks])
            with self.assertRaises(kc.PermissionDeniedError):
                reader.put(NS, blocks)
        with kc.connect(server.address, token="writer-b-0123456789abcdef") as b:
            # Tenant b, a's exact namespace id and keys: nothing to see.
            self.assertEqual(b.lookup(NS, keys).num_present, 0)
            self.assertEqual(b.get(NS, keys), [])


class TokenTest(unittest.TestCase):
    """The bearer token goes out as `authorization: Bearer <token>` on every call: a small
    gRPC server records what arrives (AuthTest checks what the real server makes of it)."""

    def test_every_call_carries_the_token(self):
        import concurrent.futures

        import grpc
        from kvcache_client._pb import pb, pb_grpc

        seen = []

        class Recorder(pb_grpc.CacheServiceServicer):
            def Lookup(self, request, context):
                seen.append(("Lookup", dict(context.invocation_metadata())))
                return pb.LookupResponse(num_present=len(request.keys))

            def Get(self, request, context):
                seen.append(("Get", dict(context.invocation_metadata())))
                return iter(())

            def Put(self, request_iterator, context):
                n = sum(len(r.blocks) for r in request_iterator)
                seen.append(("Put", dict(context.invocation_metadata())))
                return pb.PutResponse(stored=n)

        server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_CacheServiceServicer_to_server(Recorder(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, None)
        keys, blocks = chain(2, seed=6)
        with kc.connect(f"127.0.0.1:{port}", token="s3cret") as client:
            self.assertEqual(client.lookup(NS, keys).num_present, 2)
            self.assertEqual(client.get(NS, keys), [])
            self.assertEqual(client.put(NS, blocks).stored, 2)
        self.assertEqual([call for call, _ in seen], ["Lookup", "Get", "Put"])
        for _, metadata in seen:
            self.assertEqual(metadata.get("authorization"), "Bearer s3cret")
        seen.clear()
        with kc.connect(f"127.0.0.1:{port}") as client:  # No token: no header.
            client.lookup(NS, keys)
        self.assertNotIn("authorization", seen[0][1])


class FailureTest(ServerTestCase):
    def test_a_closed_port_is_unavailable(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with kc.connect(f"127.0.0.1:{port}", timeout=3.0) as client:
            with self.assertRaises(kc.UnavailableError) as e:
                client.lookup(NS, [bytes(32)])
            self.assertIsInstance(e.exception, ConnectionError)

    def test_a_silent_server_hits_the_deadline(self):
        # A listener that never answers: the TCP handshake completes, HTTP/2 never does.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        self.addCleanup(s.close)
        address = "127.0.0.1:%d" % s.getsockname()[1]
        with kc.connect(address, timeout=0.3) as client:
            start = time.monotonic()
            with self.assertRaises(kc.DeadlineExceededError):
                client.lookup(NS, [bytes(32)])
            self.assertLess(time.monotonic() - start, 3.0)
            with self.assertRaises(kc.DeadlineExceededError):
                client.get(NS, [bytes(32)], timeout=0.2)  # A per-call deadline.

    def test_bad_targets_and_options_are_invalid_argument(self):
        with self.assertRaises(kc.InvalidArgumentError):
            kc.connect("")
        with self.assertRaises(kc.InvalidArgumentError):
            kc.connect("a:1,,b:2")
        with self.assertRaises(kc.InvalidArgumentError):
            kc.connect("a:1,b:2", replicas=0)
        with self.assertRaisesRegex(kc.InvalidArgumentError, "tls.ca_file"):
            kc.connect("a:1", tls=kc.TlsOptions(ca_file=str(self.tmp / "missing.pem")))
        with self.assertRaisesRegex(kc.InvalidArgumentError, "go together"):
            kc.connect("a:1", tls=kc.TlsOptions(cert_file="c.pem"))


class TlsTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.certs = make_certs(self.tmp / "certs")

    def test_tls_and_mutual_tls(self):
        c = self.certs
        server = self.start_server(f"--tls-cert={c['server.pem']}",
                                   f"--tls-key={c['server.key']}")
        keys, blocks = chain(2, seed=5)
        with kc.connect(server.address, tls=kc.TlsOptions(ca_file=c["ca.pem"])) as client:
            self.assertEqual(client.put(NS, blocks).stored, 2)
            self.assertEqual(client.lookup(NS, keys).num_present, 2)
        # Plaintext to a TLS server fails, as does TLS checked against another name.
        with kc.connect(server.address, timeout=5.0) as client:
            with self.assertRaises(kc.UnavailableError):
                client.lookup(NS, keys)
        tls = kc.TlsOptions(ca_file=c["ca.pem"], server_name="not-the-server")
        with kc.connect(server.address, timeout=5.0, tls=tls) as client:
            with self.assertRaises(kc.UnavailableError):
                client.lookup(NS, keys)

        mtls = self.start_server(f"--tls-cert={c['server.pem']}",
                                 f"--tls-key={c['server.key']}",
                                 f"--tls-client-ca={c['ca.pem']}")
        with kc.connect(mtls.address, timeout=5.0,
                        tls=kc.TlsOptions(ca_file=c["ca.pem"])) as client:
            with self.assertRaises(kc.UnavailableError):
                client.lookup(NS, keys)  # No client certificate.
        tls = kc.TlsOptions(ca_file=c["ca.pem"], cert_file=c["client.pem"],
                            key_file=c["client.key"])
        with kc.connect(mtls.address, tls=tls) as client:
            self.assertEqual(client.put(NS, blocks).stored, 2)
            self.assertEqual(len(client.get(NS, keys)), 2)


if __name__ == "__main__":
    unittest.main()
