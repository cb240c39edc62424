"""bind: compiled stages -> nbx.Kernel, the callable users hold.

The calling convention itself (argument checks, type-variable binding, outputs, messages) is
nbx/callconv.py, shared word for word with standalone modules from `nbxc compile`. This file
adds what only a live compiler can give: specialisations compiled on demand, the reference
interpreter, the plan, the generated source and what Numba made of it.
"""

from __future__ import annotations

import time

import numpy as np

from .callconv import Compiled, KernelBase
from .dsl import ast, ir
from .dsl.compile import ms, report, verbose
from .dsl.types import DTYPES


class _Specialization(Compiled):
    """One compiled binding of a kernel: the call's needs, plus its IR, plan and source."""

    def __init__(self, kernel_ir, plan, source, path, entry, fast):
        checks = [(kind, over, span.line if span is not None else None)
                  for kind, over, span in ir.empty_checks(kernel_ir)]
        super().__init__(entry, fast, kernel_ir.dims, [r.dtype for r in kernel_ir.results],
                         [r.axes for r in kernel_ir.results], checks)
        self.ir = kernel_ir
        self.plan = plan
        self.source = source
        self.path = path
        self.report: str | None = None   # compile times, until the first call reports them


def numba_cache_report(spec: _Specialization) -> str:
    """How many of the module's functions Numba loaded from its cache or compiled."""
    from numba.core.registry import CPUDispatcher

    from .backends.base import import_module
    hits = misses = 0
    for value in vars(import_module(spec.path)).values():
        if isinstance(value, CPUDispatcher):
            hits += sum(value.stats.cache_hits.values())
            misses += sum(value.stats.cache_misses.values())
    return f"Numba: {hits} functions from its cache, {misses} compiled"


def signature_text(definition: ast.KernelDef) -> str:
    """`name(x: f64[n], a: T) -> f64[n]` as declared."""
    def type_text(t: ast.TypeExpr) -> str:
        return t.dtype + (f"[{', '.join(t.dims)}]" if t.dims is not None else "")
    params = ", ".join(f"{p.name}: {type_text(p.type)}" for p in definition.params)
    results = [type_text(t) for t in definition.results]
    ret = f"({', '.join(results)})" if definition.tuple_result else results[0]
    return f"{definition.name}({params}) -> {ret}"


def param_table(definition: ast.KernelDef) -> list[tuple]:
    """(name, dtype or type variable, dimensions or None) per parameter, for KernelBase."""
    return [(p.name, p.type.dtype, p.type.dims) for p in definition.params]


class Kernel(KernelBase):
    """A compiled nbx kernel: call it like a NumPy function."""

    def __init__(self, module, definition: ast.KernelDef):
        super().__init__(definition.name, param_table(definition), definition.tuple_result,
                         signature_text(definition), definition.doc or "")
        self._module = module
        self._def = definition

    def __repr__(self) -> str:
        return f"<nbx.Kernel {self.signature} target={self._module.target!r}>"

    def build(self, binding: dict[str, np.dtype]) -> _Specialization:
        return self._module._compile_kernel(self._def, binding)

    def _run(self, spec, values, lengths, out):
        if spec.report is None or not verbose():
            return super()._run(spec, values, lengths, out)
        # The first call of a new specialisation always comes here (the fast path only knows
        # specialisations built before): time Numba's compile or cache load within it.
        t0 = time.perf_counter()
        try:
            return super()._run(spec, values, lengths, out)
        finally:
            t1 = time.perf_counter()
            binding = ", ".join(f"{tv}={dt}" for tv, dt in spec.ir.binding)
            report(f"{self.name}{f' [{binding}]' if binding else ''}: {spec.report}, first "
                   f"call {ms(t1 - t0)} ({numba_cache_report(spec)})")
            spec.report = None

    @property
    def source(self) -> str:
        """The generated Python source (of the default specialisation)."""
        return self.specialize().source

    def explain(self, binding: dict | None = None) -> str:
        """The fusion plan: stages, their loops, what each reads and writes."""
        from .dsl.fuse import format_plan
        return format_plan(self.specialize(self._binding_from_names(binding)).plan)

    def _binding_from_names(self, binding):
        if binding is None:
            return None
        return {tv: (DTYPES[v] if isinstance(v, str) else np.dtype(v))
                for tv, v in binding.items()}

    # what Numba made of it -------------------------------------------------------------------
    def inspect_llvm(self) -> dict[str, str]:
        """LLVM IR of every compiled function, keyed by specialisation (like Numba's)."""
        return self._inspect("inspect_llvm")

    def inspect_asm(self) -> dict[str, str]:
        """Machine code of every compiled function, keyed by specialisation."""
        return self._inspect("inspect_asm")

    def inspect_ptx(self) -> dict[str, str]:
        """PTX of every compiled CUDA kernel, keyed by specialisation (CUDA targets only)."""
        raise TypeError(f"{self.name}(): inspect_ptx() needs a CUDA target; this kernel is "
                        f"compiled for {self._module.target!r} (try inspect_asm())")

    def _inspect(self, what: str) -> dict[str, str]:
        from .backends import load_backend
        if not self._specs:
            self.specialize()
        backend = load_backend(self._module.target)
        out = {}
        for key, spec in list(self._specs.items()):
            label = ", ".join(f"{tv}={dt}" for tv, dt in zip(self._typevars, key))
            out[label or self.signature] = backend.inspect(spec, what)
        return out

    # the semantics' definition ---------------------------------------------------------------
    def reference(self, *args, **kwargs):
        """Results computed by the NumPy reference interpreter (the semantics' definition)."""
        from .dsl.reference import evaluate
        values, binding, lengths = self._bind(args, kwargs)
        kernel_ir = self._module._compiler.check_kernel(self._def, binding)
        self._check_empty([(k, o, s.line if s is not None else None)
                           for k, o, s in ir.empty_checks(kernel_ir)], lengths)
        try:
            results = evaluate(kernel_ir, values, lengths)
        except ValueError as err:
            raise ValueError(f"{self.name}(): {err}") from None
        return tuple(results) if self._def.tuple_result else results[0]


class Module:
    """A compiled .nbx module: one attribute per kernel."""

    def __init__(self, compiler, kernels: dict[str, Kernel]):
        self._compiler = compiler
        self.kernels = kernels
        self.target = compiler.target
        for k in kernels.values():
            k._module = self

    def _compile_kernel(self, definition, binding):
        return self._compiler.specialize(definition, binding)

    def __getattr__(self, name: str) -> Kernel:
        kernels = self.__dict__.get("kernels", {})
        if name in kernels:
            return kernels[name]
        raise AttributeError(f"module has no kernel '{name}' (kernels: "
                             f"{', '.join(kernels) or 'none'})")

    def __getitem__(self, name: str) -> Kernel:
        return self.kernels[name]

    def __dir__(self):
        return list(super().__dir__()) + list(self.kernels)

    def __repr__(self) -> str:
        return f"<nbx.Module {self._compiler.filename!r}: {', '.join(self.kernels)}>"
