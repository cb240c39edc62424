"""The cpu target: emit with CpuEmitter, write the module under its hash, import its entry."""

from __future__ import annotations

import types

from .base import CodeBuilder, import_module, write_module
from .cpu import CpuEmitter, header
from .cpu_threads import configure_threading, serialized
from .wrapper import emit_fast_call


def _functions(emitter: CpuEmitter) -> str:
    """The kernel's compiled functions followed by its plain-Python fast path."""
    b = CodeBuilder()
    b.line("")
    b.line("")
    emit_fast_call(b, emitter.plan, emitter.fast_name, emitter.entry_name,
                   emitter.serial_entry_name, emitter.param, emitter.length)
    return emitter.functions() + b.text()


def emit(plan, *, origin: str, fastmath: bool, parallel: bool, cache: bool) -> str:
    """A whole generated module for one specialisation (what nbx.load imports)."""
    emitter = CpuEmitter(plan, fastmath=fastmath, parallel=parallel, cache=cache, origin=origin)
    return emitter.header() + _functions(emitter)


def load(source: str, plan, *, cache: bool):
    serialize = configure_threading()
    path, hit = write_module(source, cache)
    module = import_module(path)
    entry = getattr(module, f"kernel_{plan.kernel.name}")
    fast = getattr(module, f"fast_{plan.kernel.name}")
    if serialize:
        return path, serialized(entry), serialized(fast), hit
    return path, entry, fast, hit


# standalone modules (nbxc compile) ---------------------------------------------------------
STANDALONE_RUNTIME = ("cpu_threads",)  # backend files copied verbatim into standalone modules
STANDALONE_NEEDS = "numpy and numba"


def standalone_header(origin: str, what: str) -> str:
    return header(what, origin, True)


def standalone_functions(plan, *, suffix: str, fastmath: bool, parallel: bool) -> tuple:
    """(source of the specialisation's functions, entry name, fast path name)."""
    emitter = CpuEmitter(plan, fastmath=fastmath, parallel=parallel, cache=True, suffix=suffix)
    return _functions(emitter), emitter.entry_name, emitter.fast_name


STANDALONE_SETUP = """\
DEVICE = False
_SERIALIZE = configure_threading()


def _entry(function):
    return serialized(function) if _SERIALIZE else function
"""


# what Numba made of it ---------------------------------------------------------------------
def inspect(spec, what: str) -> str:
    """LLVM IR or assembly (`what`: Numba's inspect_llvm / inspect_asm) of every compiled
    function of a specialisation, the entry points first.

    Numba cannot inspect code it loaded from its cache, so this compiles a private copy of
    the generated module with caching off (once per specialisation), calling the serial and
    parallel entry points on tiny inputs to compile them and what they call."""
    from numba.core.registry import CPUDispatcher
    module = getattr(spec, "inspect_module", None)
    if module is None:
        module = types.ModuleType(f"_nbx_inspect_{spec.path.stem}")
        module.__file__ = str(spec.path)
        source = spec.source.replace("\nCACHE = True\n", "\nCACHE = False\n", 1)
        exec(compile(source, str(spec.path), "exec"), module.__dict__)  # our own generated code
        _warm(module, spec)
        spec.inspect_module = module
    parts = []
    for name, value in vars(module).items():
        if isinstance(value, CPUDispatcher):
            for signature, text in getattr(value, what)().items():
                parts.append(f"; ---- {name}{signature} ----\n{text}")
    return "\n".join(parts)


def _warm(module, spec) -> None:
    """Compile the entry points (parallel and serial) by calling them on length-2 inputs."""
    import numpy as np
    k = spec.ir
    values = [np.ones((2,) * len(p.axes), p.dtype) if p.axes is not None else p.dtype.type(1)
              for p in k.params]
    outs = [np.empty((2,) * len(r.axes) if r.axes else (1,), r.dtype) for r in k.results]
    args = [*values, *outs, np.zeros(1, np.int64), *[2] * len(k.dims)]
    for suffix in ("", "_serial"):
        entry = getattr(module, f"kernel_{k.name}{suffix}", None)
        if entry is not None and not entry.signatures:
            entry(*args)
