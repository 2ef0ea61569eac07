"""Generates the kvcache.v1 Python stubs from proto/kvcache/v1/*.proto with Debian's tools:
protoc (protobuf-compiler) for the messages, grpc_python_plugin (protobuf-compiler-grpc) for
the service stubs. Used by setup.py at build time and, in a checkout that was not installed,
by the package at import time (into a temporary folder).

Standard library only: setup.py imports this file by path.
"""

import os
import shutil
import subprocess
from pathlib import Path

GRPC_PLUGIN = "/usr/bin/grpc_python_plugin"


def find_proto_dir():
    """The folder holding kvcache/v1/*.proto: $KVCACHE_PROTO_DIR, or the checkout's proto/."""
    env = os.environ.get("KVCACHE_PROTO_DIR")
    if env:
        return Path(env)
    # clients/python/kvcache_client/_codegen.py -> <checkout>/proto
    return Path(__file__).resolve().parents[3] / "proto"


def generate(out_dir, proto_dir=None):
    """Writes kvcache/v1/<name>_pb2.py and <name>_pb2_grpc.py under out_dir.

    Raises RuntimeError (saying what is missing) when the protos, protoc or the plugin are not
    there, or protoc fails."""
    proto_dir = Path(proto_dir) if proto_dir else find_proto_dir()
    protos = sorted((proto_dir / "kvcache" / "v1").glob("*.proto"))
    if not protos:
        raise RuntimeError(
            f"no kvcache/v1/*.proto under {proto_dir}: set KVCACHE_PROTO_DIR to the "
            "checkout's proto/ folder")
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError("protoc not found: apt-get install protobuf-compiler")
    plugin = os.environ.get("KVCACHE_GRPC_PYTHON_PLUGIN", GRPC_PLUGIN)
    if not os.access(plugin, os.X_OK):
        raise RuntimeError(f"{plugin} not found: apt-get install protobuf-compiler-grpc")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [protoc, f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_out={out_dir}",
           f"--plugin=protoc-gen-grpc={plugin}"]
    cmd += [str(p.relative_to(proto_dir)) for p in protos]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"protoc failed ({' '.join(cmd)}): {run.stderr.strip()}")
    # Packages for the generated modules' absolute imports (`from kvcache.v1 import ...`).
    for pkg in (out_dir / "kvcache", out_dir / "kvcache" / "v1"):
        (pkg / "__init__.py").touch()
    return out_dir
