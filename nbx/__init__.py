"""nbx: a compiler for array kernels over named dimensions, built on Numba."""

from .backends.cuda_runtime import TargetUnavailable
from .cache import CacheError, CacheWarning
from .dsl.compile import compile, load
from .dsl.source import CompileError
from .runtime import Kernel, Module

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    """`%load_ext nbx` in IPython or Jupyter: the %%nbx cell magic (nbx/magic.py)."""
    from .magic import load_ipython_extension as load
    load(ipython)

__all__ = ["compile", "load", "CompileError", "CacheError", "CacheWarning", "Kernel", "Module",
           "TargetUnavailable", "__version__"]
