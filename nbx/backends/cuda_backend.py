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


def inspect(spec, what: str) -> str:
    """PTX (`inspect_ptx`, Numba's inspect_asm of a CUDA kernel), LLVM IR or, for `inspect_asm`,
    the PTX too, of every kernel of a specialisation that Numba has compiled for the device:
    that happens at its first launch, so the kernel must have run once on the GPU."""
    from numba import config

    from .cuda_runtime import TargetUnavailable, require
    require("cuda")
    if config.ENABLE_CUDASIM:
        raise TargetUnavailable("the CUDA simulator compiles no device code: PTX and LLVM IR "
                                "need a GPU")
    method = "inspect_llvm" if what == "inspect_llvm" else "inspect_asm"
    module = import_module(spec.path)
    parts = []
    for name, value in vars(module).items():
        if type(value).__name__ == "CUDADispatcher":
            for signature, text in getattr(value, method)().items():
                parts.append(f"// ---- {name}{signature} ----\n{text}")
    if not parts:
        raise TargetUnavailable(f"{spec.ir.name}(): nothing compiled for the device yet: call the "
                           "kernel once (Numba compiles CUDA kernels at their first launch)")
    return "\n".join(parts)
