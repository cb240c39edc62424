"""The driver: the whole pipeline on one screen.

    source --parse/build--> AST --check--> typed IR --fuse--> stages --emit--> Python source
           --load--> Numba-compiled module --bind--> nbx.Kernel

Every stage is a pure function; this file only sequences them and keeps the one chokepoint
that turns an unexpected internal error into a CompileError (NBX_DEBUG=1 shows it raw).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import check as checker
from . import ir
from .build import parse
from .fuse import fuse
from .source import CompileError, Source, Span

TARGETS = ("cpu", "cuda", "cuda-ufunc", "auto")
DEVICE_TARGETS = ("cuda", "cuda-ufunc")   # run on the GPU: nbx/backends/cuda_runtime.py
# "auto" picks "cpu" or "cuda" per call (nbx/runtime.py: AutoKernel); its specialisations are
# those of the two targets.


class Compiler:
    """Holds one module's checked definitions; specialises kernels on demand."""

    def __init__(self, text: str, *, filename: str = "<string>", target: str = "cpu",
                 fastmath: bool = False, parallel: bool = True, cache: bool = True,
                 on_error=None):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; available: {', '.join(TARGETS)}")
        self.source = Source(filename, text.removeprefix("\ufeff"))  # as nbx.load's utf-8-sig
        self.filename = filename
        self.target = target
        self.options = {"fastmath": bool(fastmath), "parallel": bool(parallel),
                        "cache": bool(cache)}
        self._irs: dict[tuple, ir.KernelIR] = {}
        self._lock = threading.Lock()
        with self.chokepoint():
            t0 = time.perf_counter()
            module_ast = parse(self.source)                    # parse + build
            t1 = time.perf_counter()
            self.env = checker.collect(module_ast, self.source)
            checker.check_module(self.env, on_error)           # check (default bindings)
            if target == "cuda-ufunc":
                self._refuse_non_ufuncs()
            t2 = time.perf_counter()
        if verbose():
            report(f"{filename}: parse {ms(t1 - t0)}, check {ms(t2 - t1)} "
                   f"({len(self.env.kernels)} kernels)")

    def _refuse_non_ufuncs(self) -> None:
        """cuda-ufunc takes single-result element-wise kernels only: a CompileError at the
        first other kernel's name, when the module is compiled (at the default binding; a
        binding that differs in this is refused when it is specialised)."""
        for definition in self.env.kernels.values():
            try:
                kernel_ir = self.check_kernel(definition,
                                              checker.default_binding(self.env, definition))
            except TypeError:   # does not check at the default binding: see specialize
                continue
            with self.chokepoint(definition.name_span):
                self._refuse_non_ufunc(definition, fuse(kernel_ir))

    def _refuse_non_ufunc(self, definition, plan) -> None:
        from ..backends.cuda_ufunc import unsupported
        why = unsupported(plan)
        if why is not None:
            raise CompileError(definition.name_span, why[0], why[1], self.source)

    @contextmanager
    def chokepoint(self, where: Span | None = None):
        """Any unexpected exception becomes a CompileError at the place being compiled: the
        span the stages tagged it with (source.located), else `where`, else line 1."""
        try:
            yield
        except (CompileError, OSError):  # OSError: the cache directory refused, a full disk
            raise
        except Exception as err:  # an internal error: never a traceback for the user
            span = getattr(err, "nbx_span", None) or where or self.source.span(1, 1)
            if isinstance(err, RecursionError):
                raise CompileError(span, "the program is nested too deeply to compile",
                                   "split deeply nested expressions into named steps",
                                   self.source) from None
            if os.environ.get("NBX_DEBUG"):
                raise
            raise CompileError(span, f"internal compiler error ({type(err).__name__}: {err})",
                               "please report this with the .nbx file; NBX_DEBUG=1 shows "
                               "the internal traceback", self.source) from None

    def check_kernel(self, definition, binding: dict[str, np.dtype]) -> ir.KernelIR:
        key = (definition.name, tuple(sorted((k, v.str) for k, v in binding.items())))
        kernel_ir = self._irs.get(key)
        if kernel_ir is None:
            try:
                with self.chokepoint(definition.name_span):
                    kernel_ir = checker.check_kernel(self.env, definition, binding)
            except CompileError as err:
                names = ", ".join(f"{k}={v}" for k, v in binding.items())
                raise TypeError(f"{definition.name}(): does not compile for {names}:\n"
                                f"{err}") from None
            self._irs[key] = kernel_ir
        return kernel_ir

    def specialize(self, definition, binding: dict[str, np.dtype], target: str | None = None):
        """Compile one binding of a kernel for `target` (default: the module's; "auto" means
        "cpu", where its calls go unless they bring device arrays or much data)."""
        target = target or self.target
        if target == "auto":
            target = "cpu"
        if target in DEVICE_TARGETS:   # a clear message, not an import error from the backend
            from ..backends.cuda_runtime import require
            require(target, gpu=False)
        t0 = time.perf_counter()
        kernel_ir = self.check_kernel(definition, binding)
        with self.chokepoint(definition.name_span):
            t1 = time.perf_counter()
            plan = fuse(kernel_ir)                              # fuse
            if target == "cuda-ufunc":
                self._refuse_non_ufunc(definition, plan)
            spec = emit_and_load(plan, target, self.options, self.filename)   # emit, load
        if verbose():   # reported with the first call's time (runtime.Kernel._timed)
            spec.report = f"check {ms(t1 - t0)}, {spec.report}"
        return spec


def emit_and_load(plan, target: str, options: dict, origin: str):
    """A fused plan's generated module, written and imported: a runtime._Specialization
    (what Compiler.specialize makes of a kernel, and nbx/chunked of its steps). Its `report`
    holds the times taken, said under NBX_VERBOSE."""
    from ..backends import load_backend
    from ..runtime import _Specialization
    t0 = time.perf_counter()
    backend = load_backend(target)
    source = backend.emit(plan, origin=origin, **options)             # emit
    t1 = time.perf_counter()
    first_numba = "numba" not in sys.modules   # its import is part of the first load
    path, entry, fast, hit = backend.load(source, plan, cache=options["cache"])
    t2 = time.perf_counter()                                          # load
    spec = _Specialization(plan.kernel, plan, source, path, entry, fast)
    if verbose():
        spec.report = (f"fuse+emit {ms(t1 - t0)}, load {ms(t2 - t1)} "
                       f"({'import numba, ' if first_numba else ''}module "
                       f"{'from the cache' if hit else 'written'})")
    return spec


def diagnose(text: str, filename: str) -> list[CompileError]:
    """Every error of a file that can be found (for nbxc check and editors), in source order.

    After a syntax error the parser cannot go on, so each top-level definition (a line that
    starts at column 1) is then parsed on its own, the rest of the file blanked out, and the
    first syntax error of each is reported. Without syntax errors, each const's and kernel's
    first type error is reported."""
    try:
        parse(Source(filename, text))
    except CompileError as err:
        return _syntax_errors(text, filename) or [err]
    except Exception:  # noqa: BLE001  an internal error: the Compiler's chokepoint words it
        pass
    errors: list[CompileError] = []
    try:
        Compiler(text, filename=filename, on_error=errors.append)
    except CompileError as err:
        errors.append(err)
    return sorted(errors, key=lambda e: (e.line, e.column))


def _syntax_errors(text: str, filename: str) -> list[CompileError]:
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line[:1] not in ("", " ", "\t", "#")]
    errors = []
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        # the definition's own lines where they were, every other line empty: same positions
        chunk = [line if start <= i < end else "" for i, line in enumerate(lines)]
        try:
            parse(Source(filename, "\n".join(chunk)))
        except CompileError as err:
            errors.append(err)
        except Exception:  # noqa: BLE001  an internal error: let the first error stand alone
            return []
    return errors


def verbose() -> bool:
    """NBX_VERBOSE=1 (or nbxc -v): report compile times on stderr."""
    return os.environ.get("NBX_VERBOSE", "") not in ("", "0")


def report(text: str) -> None:
    print(f"nbx: {text}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def compile(text: str, *, target: str = "cpu", filename: str = "<string>",
            fastmath: bool = False, parallel: bool = True, cache: bool = True):
    """Compile nbx source text into a Module of Kernels (bind)."""
    from ..runtime import AutoKernel, Kernel, Module
    compiler = Compiler(text, filename=filename, target=target, fastmath=fastmath,
                        parallel=parallel, cache=cache)
    kind = AutoKernel if target == "auto" else Kernel
    kernels = {name: kind(None, d) for name, d in compiler.env.kernels.items()}
    return Module(compiler, kernels)


def load(path, **options):
    """Compile a .nbx file (UTF-8; a byte-order mark is skipped, as editors hide it)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        source = Source(path, data.decode("utf-8-sig", errors="replace"))
        raise CompileError(source.span(line, column), "the file is not valid UTF-8 text",
                           "save it as UTF-8", source) from None
    return compile(text, filename=path, **options)
