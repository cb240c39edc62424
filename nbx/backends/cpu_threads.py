"""The cpu target's threading layer choice, in one file that needs only Numba.

nbx runs it before its first parallel call, and `nbxc compile` copies this file verbatim into
standalone cpu modules, so that both run their kernels on the same, thread-safe layer.
"""

import importlib
import os
import threading


def safe_layer_available():
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


_SERIALIZE = None  # decided once, at the first load
_CALL_LOCK = threading.Lock()


def configure_threading():
    """Numba's default layer falls back to workqueue, which aborts the process on concurrent
    parallel calls: ask for a thread-safe one (TBB, else OpenMP) before the first parallel
    function runs. Where neither loads ("threadsafe" would then fail every call), or the user
    chose workqueue, keep it and serialise the calls instead. True if calls need the lock."""
    global _SERIALIZE
    if _SERIALIZE is not None:
        return _SERIALIZE
    import numba
    layer = str(numba.config.THREADING_LAYER).lower()
    if "NUMBA_THREADING_LAYER" not in os.environ and layer == "default":
        layer = "threadsafe" if safe_layer_available() else "workqueue"
        numba.config.THREADING_LAYER = layer
    _SERIALIZE = layer == "workqueue" or (layer == "default" and not safe_layer_available())
    return _SERIALIZE


def serialized(entry):
    """The entry point behind a process-wide lock (for the workqueue layer only)."""
    def call(*args):
        with _CALL_LOCK:
            return entry(*args)
    call.__wrapped__ = entry
    return call
