"""The cpu target: emit with CpuEmitter, write the module under its hash, import its entry."""

from __future__ import annotations

from .base import import_module, write_module
from .cpu import CpuEmitter

_THREADING_CONFIGURED = False


def _configure_threading() -> None:
    """Numba's default layer (workqueue) aborts on concurrent parallel calls: ask for a
    thread-safe one (TBB, else OpenMP) before the first parallel function runs."""
    global _THREADING_CONFIGURED
    if _THREADING_CONFIGURED:
        return
    import os

    import numba
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "threadsafe"
    _THREADING_CONFIGURED = True


def emit(plan, *, origin: str, fastmath: bool, parallel: bool, cache: bool) -> str:
    return CpuEmitter(plan, fastmath=fastmath, parallel=parallel, cache=cache,
                      origin=origin).module()


def load(source: str, plan, *, cache: bool):
    _configure_threading()
    path = write_module(source, cache)
    module = import_module(path)
    return path, getattr(module, f"kernel_{plan.kernel.name}")
