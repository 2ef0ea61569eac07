"""Real kvcache binaries for the Python client's tests: a kvcache-server on 127.0.0.1:0 (its
address read back from its first line), kvcache-worker runs, TLS certificates made with the
openssl command. KVCACHE_BIN_DIR names the binaries' folder (ctest sets it)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(SOURCE_DIR / "clients" / "python"))

BIN_DIR = Path(os.environ.get("KVCACHE_BIN_DIR", SOURCE_DIR / "build" / "bin"))
VECTORS = SOURCE_DIR / "tests" / "data" / "block_key_vectors.json"


def binary(name):
    path = BIN_DIR / name
    if not path.exists():
        raise unittest.SkipTest(f"{path} not built")
    return str(path)


class Server:
    """A kvcache-server process on a free loopback port (RAM + a small disk tier in `tmp`)."""

    def __init__(self, tmp, *extra):
        self.dir = Path(tempfile.mkdtemp(dir=tmp, prefix="server."))
        args = [binary("kvcache-server"), "--listen=127.0.0.1:0", "--ram-bytes=32MiB",
                f"--disk-path={self.dir / 'disk'}", "--disk-bytes=64MiB",
                "--metrics-listen=", "--shutdown-grace=0s", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines = []
        self.address = None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r" listening on (\S+)", line)
            if m:
                self.address = m.group(1)
                break
        if self.address is None:
            self.proc.wait()
            raise RuntimeError(f"kvcache-server did not start: {''.join(self.lines)}")
        # Keep reading so that the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class ServerTestCase(unittest.TestCase):
    """Each test gets its own temporary folder; servers started with start_server() stop at
    the end of the test. Servers a class shares (start_class_server(), from setUpClass) stop
    after its last test: its tests keep apart by using keys of their own."""

    @classmethod
    def setUpClass(cls):
        cls.class_tmp = Path(tempfile.mkdtemp(prefix="kvcache_py_class."))
        cls.addClassCleanup(shutil.rmtree, cls.class_tmp, True)

    @classmethod
    def start_class_server(cls, *extra):
        server = Server(cls.class_tmp, *extra)
        cls.addClassCleanup(server.stop)
        return server

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="kvcache_py_test."))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start_server(self, *extra):
        server = Server(self.tmp, *extra)
        self.addCleanup(server.stop)
        return server


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def worker_generate(model, cache, prompt, *extra):
    """kvcache-worker generate --json: its JSON answer."""
    r = run([binary("kvcache-worker"), "generate", f"--model={model}", f"--cache={cache}",
             f"--prompt-text={prompt}", "--max-new-tokens=2", "--json", *extra])
    if r.returncode != 0:
        raise AssertionError(f"kvcache-worker generate failed: {r.stdout}{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def make_certs(folder):
    """A CA, a server certificate for 127.0.0.1 / localhost and a client certificate, with
    the openssl command (EC P-256 keys: fast). Returns {name: path}."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise unittest.SkipTest("no openssl command (apt-get install openssl)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    p = {n: str(folder / n) for n in
         ["ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"]}
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def ok(args):
        r = run([openssl, *args], cwd=folder)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr}")

    ok(["req", "-x509", *key, "-keyout", p["ca.key"], "-out", p["ca.pem"], "-days", "2",
        "-subj", "/CN=kvcache-test-ca"])
    for who, san in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                     ("client", "subjectAltName=DNS:kvcache-test-client")):
        csr = str(folder / f"{who}.csr")
        ok(["req", *key, "-keyout", p[f"{who}.key"], "-out", csr, "-subj", f"/CN={who}"])
        ext = folder / f"{who}.ext"
        ext.write_text(san + "\n")
        ok(["x509", "-req", "-in", csr, "-CA", p["ca.pem"], "-CAkey", p["ca.key"],
            "-CAcreateserial", "-out", p[f"{who}.pem"], "-days", "2", "-extfile", str(ext)])
    return p
