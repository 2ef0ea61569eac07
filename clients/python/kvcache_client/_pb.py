"""The generated kvcache.v1 modules: from the installed package (setup.py generated them into
_gen/ at build time) or, in a checkout that was not installed, generated now into a
temporary folder."""

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from kvcache_client import _codegen

_GEN = Path(__file__).resolve().parent / "_gen"

if not (_GEN / "kvcache" / "v1" / "cache_pb2.py").exists():
    _GEN = Path(tempfile.mkdtemp(prefix="kvcache_client_stubs."))
    atexit.register(shutil.rmtree, _GEN, True)
    _codegen.generate(_GEN)

# The generated stubs import each other as `kvcache.v1.*`.
if str(_GEN) not in sys.path:
    sys.path.insert(0, str(_GEN))

from kvcache.v1 import cache_pb2 as pb  # noqa: E402
from kvcache.v1 import cache_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["pb", "pb_grpc"]
