"""The cuda target: emit with CudaEmitter, write the module under its hash, import its launcher.

nbx/backends/cuda_runtime.py does the rest of a call: device arrays in and out, `err`.
"""

from __future__ import annotations

from .base import import_module, write_module
from .cuda import CudaEmitter


def emit(plan, *, origin: str, fastmath: bool, parallel: bool, cache: bool) -> str:
    """A whole generated module for one specialisation (`parallel` is the cpu's option)."""
    return CudaEmitter(plan, fastmath=fastmath, cache=cache, origin=origin).module()


def load(source: str, plan, *, cache: bool):
    path, hit = write_module(source, cache)
    module = import_module(path)
    return path, getattr(module, f"launch_{plan.kernel.name}"), None, hit
