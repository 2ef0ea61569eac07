"""Builds kvcache_client with its kvcache.v1 stubs generated from the checkout's proto/
folder (or $KVCACHE_PROTO_DIR) by Debian's protoc and grpc_python_plugin; metadata is in
pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

_spec = importlib.util.spec_from_file_location(
    "_kvcache_codegen", Path(__file__).resolve().parent / "kvcache_client" / "_codegen.py")
_codegen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_codegen)


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        out = Path(self.build_lib) / "kvcache_client" / "_gen"
        _codegen.generate(out)
        self.announce(f"generated kvcache.v1 stubs in {out}", level=2)


setup(cmdclass={"build_py": BuildPyWithStubs})
