"""The package installs offline with Debian's pip and setuptools (the README's command), its
stubs generated at build time, and the installed copy talks to a real server."""

import os
import shutil
import subprocess
import sys

from kvcache_test_util import SOURCE_DIR, ServerTestCase


class InstallTest(ServerTestCase):
    def test_pip_install_offline_then_round_trip(self):
        # Build from a copy so that the checkout stays clean; the protos come from the
        # checkout through KVCACHE_PROTO_DIR.
        src = self.tmp / "src"
        shutil.copytree(SOURCE_DIR / "clients" / "python", src,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        target = self.tmp / "site"
        env = dict(os.environ, KVCACHE_PROTO_DIR=str(SOURCE_DIR / "proto"),
                   PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                            "--no-deps", f"--target={target}", str(src)],
                           capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue((target / "kvcache_client" / "_gen" / "kvcache" / "v1" /
                         "cache_pb2_grpc.py").exists())

        server = self.start_server()
        script = (
            "import kvcache_client as kc, kvcache_client._pb as p, sys\n"
            "assert str(p._GEN).startswith(sys.argv[1]), p._GEN\n"
            "ns = bytes(32)\n"
            "keys = kc.block_keys(ns, list(range(8)), 4)\n"
            "c = kc.connect(sys.argv[2])\n"
            "print(c.put(ns, kc.chained_blocks(keys, [b'a', b'b'])).stored,\n"
            "      c.lookup(ns, keys).num_present)\n")
        # Only the installed copy on the path (not the checkout's clients/python).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(target)
        r = subprocess.run([sys.executable, "-c", script, str(target), server.address],
                           capture_output=True, text=True, env=env, cwd=self.tmp, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["2", "2"])
