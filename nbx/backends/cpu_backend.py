"""The cpu target: emit with CpuEmitter, write the module under its hash, import its entry."""

from __future__ import annotations

import importlib
import os
import threading

from .base import CodeBuilder, import_module, write_module
from .cpu import CpuEmitter
from .wrapper import emit_fast_call

_SERIALIZE: bool | None = None   # decided once, at the first load
_CALL_LOCK = threading.Lock()


def _safe_layer_available() -> bool:
    """Whether Numba can load TBB or OpenMP here, tested as its own layer selection does."""
    from numba.np.ufunc import parallel
    try:
        getattr(parallel, "_check_tbb_version_compatible", lambda: None)()
        importlib.import_module("numba.np.ufunc.tbbpool")
        return True
    except ImportError:
        pass
    try:
        importlib.import_module("numba.np.ufunc.omppool")
        return True
    except ImportError:
        return False


def _configure_threading() -> bool:
    """Numba's default layer falls back to workqueue, which aborts the process on concurrent
    parallel calls: ask for a thread-safe one (TBB, else OpenMP) before the first parallel
    function runs. Where neither loads ("threadsafe" would then fail every call), or the user
    chose workqueue, keep it and serialise nbx's calls instead. True if calls need the lock."""
    global _SERIALIZE
    if _SERIALIZE is not None:
        return _SERIALIZE
    import numba
    layer = str(numba.config.THREADING_LAYER).lower()
    if "NUMBA_THREADING_LAYER" not in os.environ and layer == "default":
        layer = "threadsafe" if _safe_layer_available() else "workqueue"
        numba.config.THREADING_LAYER = layer
    _SERIALIZE = layer == "workqueue" or (layer == "default" and not _safe_layer_available())
    return _SERIALIZE


def _serialized(entry):
    """The entry point behind a process-wide lock (for the workqueue layer only)."""
    def call(*args):
        with _CALL_LOCK:
            return entry(*args)
    call.__wrapped__ = entry
    return call


def emit(plan, *, origin: str, fastmath: bool, parallel: bool, cache: bool) -> str:
    emitter = CpuEmitter(plan, fastmath=fastmath, parallel=parallel, cache=cache, origin=origin)
    b = CodeBuilder()
    b.line("")
    b.line("")
    emit_fast_call(b, plan, emitter.entry_name, emitter.serial_entry_name, emitter.param,
                   emitter.length)
    return emitter.module() + b.text()


def load(source: str, plan, *, cache: bool):
    serialize = _configure_threading()
    path = write_module(source, cache)
    module = import_module(path)
    entry = getattr(module, f"kernel_{plan.kernel.name}")
    fast = getattr(module, f"fast_{plan.kernel.name}")
    if serialize:
        return path, _serialized(entry), _serialized(fast)
    return path, entry, fast
