"""bind: compiled stages -> nbx.Kernel, the callable users hold.

The calling convention itself (argument checks, type-variable binding, outputs, messages) is
nbx/callconv.py, shared word for word with standalone modules from `nbxc compile`. This file
adds what only a live compiler can give: specialisations compiled on demand, the reference
interpreter, the plan, the generated source and what Numba made of it. Calls of CUDA targets
go to nbx/backends/cuda_runtime.py; target="auto" picks a target per call (AutoKernel).
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

from .backends import cuda_runtime
from .callconv import Compiled, DeviceValue, KernelBase, describe_value, device_array_info
from .dsl import ast, ir
from .dsl.compile import DEVICE_TARGETS, ms, report
from .dsl.types import DTYPES

AUTO_GPU_BYTES = None
"""target="auto" runs a call on the GPU when an input (or out=) is a device array. For NumPy
inputs it would take the GPU from this many bytes on, when a GPU is present; None: never.
Measured (benchmarks/auto_threshold.py on an H100 host with 16 cores, f64 fma, dot and
normalize, 2^10 to 2^24 elements): copying NumPy inputs to the GPU and the results back costs
more than the CPU's whole computation at every size (e.g. fma at 2^24: CPU 7 ms, GPU with the
copies 97 ms), because both are passes over the same bytes and PCIe is slower than the host's
memory. Set a number to route large NumPy calls of compute-heavy kernels to the GPU."""


class _Specialization(Compiled):
    """One compiled binding of a kernel: the call's needs, plus its IR, plan and source."""

    def __init__(self, kernel_ir, plan, source, path, entry, fast):
        from .backends.wrapper import needs_error_flag
        super().__init__(entry, fast, kernel_ir.dims, [r.dtype for r in kernel_ir.results],
                         [r.axes for r in kernel_ir.results], ir.empty_checks(kernel_ir),
                         needs_error_flag(plan))
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

    def __init__(self, module, definition: ast.KernelDef, target: str | None = None):
        super().__init__(definition.name, param_table(definition), definition.tuple_result,
                         signature_text(definition), definition.doc or "")
        self._module = module
        self._def = definition
        self._target = target   # None: the module's

    def _attach(self, module) -> None:
        self._module = module
        self._device = self.target in DEVICE_TARGETS

    @property
    def target(self) -> str:
        """The target this kernel's calls run on ("auto": chosen per call)."""
        return self._target or self._module.target

    def __repr__(self) -> str:
        return f"<nbx.Kernel {self.signature} target={self.target!r}>"

    # Dask ------------------------------------------------------------------------------------
    def _call_collections(self, args, kwargs):
        from .chunked.graph import call
        return call(self, args, kwargs)

    def explain_chunks(self, binding: dict | None = None, whole=()) -> str:
        """The steps a call on Dask arrays runs, a task per block each (nbx/chunked), when
        the dimensions in `whole` come in one block and the others in several."""
        from .chunked.split import format_chunk_plan, split
        binding = self._binding_from_names(binding) or {tv: DTYPES["f64"]
                                                         for tv in self._typevars}
        kernel_ir = self._module._compiler.check_kernel(self._def, binding)
        return format_chunk_plan(split(kernel_ir, frozenset(whole)))

    def __reduce__(self):
        """A kernel pickles as the source it was compiled from and its options, and is
        compiled again where it is unpickled (once per process; the compile cache has the
        code): how Dask's workers get the kernels of a graph."""
        return (rebuild_kernel, (*self._module._build_args(), self.name, self._target))

    def __dask_tokenize__(self):
        return ("nbx.Kernel", *self._module._build_args(), self.name, self._target)

    def build(self, binding: dict[str, np.dtype]) -> _Specialization:
        if self._target is None:
            spec = self._module._compile_kernel(self._def, binding)
        else:
            spec = self._module._compile_kernel(self._def, binding, self._target)
        if self.target in DEVICE_TARGETS:   # device arrays in, without the general checks
            spec.fast = cuda_runtime.FastCall(self, spec, binding)
        return spec

    def _run(self, spec, values, lengths, out):
        return self._timed(spec, super()._run, spec, values, lengths, out)

    def _run_device(self, spec, values, lengths, out, stream):
        cuda_runtime.require(self.target)
        return self._timed(spec, cuda_runtime.run, self, spec, values, lengths, out, stream)

    def _timed(self, spec, run, *args):
        if spec.report is None:   # set by the compiler only under NBX_VERBOSE
            return run(*args)
        # The first call of a new specialisation always comes here (the fast path only knows
        # specialisations built before): time Numba's compile or cache load within it.
        t0 = time.perf_counter()
        try:
            return run(*args)
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
        if self.target in DEVICE_TARGETS:
            return self._inspect("inspect_ptx")
        raise TypeError(f"{self.name}(): inspect_ptx() needs a CUDA target; this kernel is "
                        f"compiled for {self.target!r} (try inspect_asm())")

    def _inspect(self, what: str) -> dict[str, str]:
        from .backends import load_backend
        if not self._specs:
            self.specialize()
        backend = load_backend(self.target)
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
        values = [cuda_runtime.host_value(v) if isinstance(v, DeviceValue) else v
                  for v in values]
        kernel_ir = self._module._compiler.check_kernel(self._def, binding)
        self._check_empty(ir.empty_checks(kernel_ir), lengths)
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
            k._attach(self)

    def _compile_kernel(self, definition, binding, target: str | None = None):
        return self._compiler.specialize(definition, binding, target)

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

    def _build_args(self) -> tuple:
        c = self._compiler
        return (c.source.text, c.filename, c.target, tuple(sorted(c.options.items())))

    def __reduce__(self):
        return (rebuild_module, self._build_args())


_REBUILT: dict[tuple, Module] = {}
_REBUILT_LOCK = threading.Lock()


def rebuild_module(text: str, filename: str, target: str, options: tuple) -> Module:
    """The module of a pickled kernel or module, compiled once per process."""
    key = (text, filename, target, options)
    module = _REBUILT.get(key)
    if module is None:
        with _REBUILT_LOCK:
            module = _REBUILT.get(key)
            if module is None:
                from .dsl.compile import compile
                module = _REBUILT[key] = compile(text, filename=filename, target=target,
                                                 **dict(options))
    return module


def rebuild_kernel(text, filename, target, options, name, own_target) -> Kernel:
    kernel = rebuild_module(text, filename, target, options).kernels[name]
    if isinstance(kernel, AutoKernel) and own_target == "cpu":
        return kernel._cpu
    if isinstance(kernel, AutoKernel) and own_target == "cuda":
        return kernel._cuda()
    return kernel


class StepKernel(KernelBase):
    """One step of a call on Dask arrays (nbx/chunked/split.py): a kernel that nbx made from
    part of a user's kernel, compiled like one on first use, and named as the user's kernel
    in what its calls raise."""

    def __init__(self, name: str, kernel_ir: ir.KernelIR, target: str, options: dict,
                 origin: str):
        params = [(p.name, p.dtype_spec, p.axes) for p in kernel_ir.params]
        super().__init__(name, params, kernel_ir.tuple_result, f"{name} (step {kernel_ir.name})")
        self._ir = kernel_ir
        self._target = target
        self._options = options
        self._origin = origin
        self._device = target in DEVICE_TARGETS

    def build(self, binding):
        from .dsl.compile import emit_and_load
        from .dsl.fuse import fuse
        if self._device:
            cuda_runtime.require(self._target, gpu=False)
        return emit_and_load(fuse(self._ir), self._target, self._options, self._origin)

    def _run_device(self, spec, values, lengths, out, stream):
        cuda_runtime.require(self._target)
        return cuda_runtime.run(self, spec, values, lengths, out, stream)


class AutoKernel(Kernel):
    """A kernel of target="auto": each call runs on the CPU or the GPU (LANGUAGE.md section 8).

    It holds a cpu kernel and, built the first time a call goes to the GPU, a cuda kernel of
    the same definition; both specialise through the module's one compiler."""

    def __init__(self, module, definition: ast.KernelDef):
        super().__init__(module, definition, "auto")
        self._cpu = Kernel(module, definition, "cpu")
        self._gpu: Kernel | None = None
        self._gpu_lock = threading.Lock()

    def _attach(self, module) -> None:
        super()._attach(module)
        self._device = True   # its argument checks (explain, reference) take device arrays
        self._cpu._attach(module)

    def _cuda(self) -> Kernel:
        if self._gpu is None:
            with self._gpu_lock:
                if self._gpu is None:
                    gpu = Kernel(self._module, self._def, "cuda")
                    gpu._attach(self._module)
                    self._gpu = gpu
        return self._gpu

    def __call__(self, *args, **kwargs):
        if self._choose(args, kwargs)[0] == "cuda":
            return self._cuda()(*args, **kwargs)
        if "stream" in kwargs and not self._has_stream_param:
            del kwargs["stream"]   # no stream on the CPU
        return self._cpu(*args, **kwargs)

    def target_for(self, *args, **kwargs) -> tuple[str, str]:
        """("cpu" or "cuda", why) for a call with these arguments (not checked here)."""
        return self._choose(args, kwargs, why=True)

    def _choose(self, args, kwargs, why=False):
        total = 0
        for key, v in itertools.chain(enumerate(args), kwargs.items()):
            if hasattr(type(v), "__dask_graph__"):   # a Dask array: where its blocks are
                v = getattr(v, "_meta", None)
            if type(v) is np.ndarray:
                if key != "out" or self._has_out_param:
                    total += v.nbytes
                continue
            if v is None or type(v) in (float, int, bool):
                continue
            if key == "stream" and not self._has_stream_param:
                continue
            if key == "out" and not self._has_out_param and isinstance(v, tuple):
                v = next((o for o in v if o is not None and device_array_info(o)), None)
            if v is not None and device_array_info(v) is not None:
                if not why:
                    return "cuda", None
                name = self._params[key].name if isinstance(key, int) and \
                    key < len(self._params) else key
                return "cuda", f"{name} is {describe_value(v)}"
        if AUTO_GPU_BYTES is None:
            return "cpu", why and ("NumPy inputs stay on the CPU (AUTO_GPU_BYTES = None: "
                                   "copying them to the GPU costs more than the computation)")
        if total < AUTO_GPU_BYTES:
            return "cpu", why and (f"the NumPy inputs total {_bytes(total)}, below "
                                   f"AUTO_GPU_BYTES = {_bytes(AUTO_GPU_BYTES)}")
        ok, what = cuda_runtime.available()
        if not ok:
            return "cpu", why and f"no GPU available: {what}"
        return "cuda", why and (f"the NumPy inputs total {_bytes(total)}, at least "
                                f"AUTO_GPU_BYTES = {_bytes(AUTO_GPU_BYTES)}, and {what} "
                                "is available")

    def explain(self, *args, binding: dict | None = None, **kwargs) -> str:
        """The fusion plan, then which target a call would take and why: for these arguments
        if given (their binding's plan), else the rule and whether a GPU is available."""
        from .dsl.fuse import format_plan, fuse
        if args or kwargs:
            target, reason = self.target_for(*args, **kwargs)
            call = {k: v for k, v in kwargs.items()
                    if not (k in ("out", "stream") and k not in self._index)}
            bound = self._bind(args, call)[1]
        else:
            ok, what = cuda_runtime.available()
            if ok:
                large = "" if AUTO_GPU_BYTES is None else \
                    f" and for NumPy inputs of at least AUTO_GPU_BYTES = {_bytes(AUTO_GPU_BYTES)}"
                target, reason = "cuda or cpu", (
                    f"cuda for device arrays{large}, else cpu; {what} is available")
            else:
                target, reason = "cpu", f"no GPU available: {what}"
            bound = self._binding_from_names(binding) or {tv: DTYPES["f64"]
                                                          for tv in self._typevars}
        compiler = self._module._compiler
        kernel_ir = compiler.check_kernel(self._def, bound)
        with compiler.chokepoint(self._def.name_span):
            plan = fuse(kernel_ir)
        return f"{format_plan(plan).rstrip()}\ntarget auto: {target} ({reason})"

    # what the CPU kernel (the one calls take by default) is made of
    def specialize(self, binding=None):
        return self._cpu.specialize(binding)

    def _inspect(self, what: str) -> dict[str, str]:
        return self._cpu._inspect(what)

    def inspect_ptx(self) -> dict[str, str]:
        return self._cuda().inspect_ptx()


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"
