"""bind: compiled stages -> nbx.Kernel, the callable users hold.

A Kernel checks and converts its arguments (LANGUAGE.md section 7), binds type variables,
compiles one specialisation per binding (lazily, once, under a lock), allocates the outputs and
calls the generated entry point. Messages name the kernel, the parameter, what was expected and
what was given.
"""

from __future__ import annotations

import threading

import numpy as np

from .dsl import ast, check, ir
from .dsl.types import BOOL, DTYPES, F64, I64, U64, is_type_variable

_MISSING = object()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _a(word: str) -> str:
    """The word with its indefinite article: 'an int32', 'a uint8', 'a float64'."""
    return f"{'an' if word[:1] in 'aeioAEIO' else 'a'} {word}"


def describe_value(value) -> str:
    """How a given argument is described in error messages."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    if isinstance(value, np.generic):
        return f"{value.dtype} scalar"
    if isinstance(value, (bool, int, float)):
        return f"Python {type(value).__name__} {value!r}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of length {len(value)}"
    return f"{type(value).__module__}.{type(value).__qualname__}" \
        if type(value).__module__ != "builtins" else type(value).__name__


class _ParamSpec:
    __slots__ = ("name", "index", "spec", "dtype", "typevar", "axes", "ndim")

    def __init__(self, index: int, p: ast.Param):
        self.name = p.name
        self.index = index
        self.spec = p.type.dtype
        self.typevar = p.type.dtype if is_type_variable(p.type.dtype) else None
        self.dtype = None if self.typevar else DTYPES[p.type.dtype]
        self.axes = p.type.dims
        self.ndim = None if p.type.dims is None else len(p.type.dims)

    def expected(self, dtype) -> str:
        what = str(dtype) if dtype is not None else f"{self.typevar} (any dtype)"
        if self.axes is None:
            return f"{_a(what)} scalar"
        dims = ", ".join(self.axes)
        return f"{_a(what)} array with {_plural(len(self.axes), 'dimension')} ({dims})"


class _Specialization:
    """One compiled binding of a kernel: its IR, plan, generated source and entry point."""

    def __init__(self, kernel_ir, plan, source, path, entry, fast):
        self.fast = fast
        self.ir = kernel_ir
        self.plan = plan
        self.source = source
        self.path = path
        self.entry = entry
        self.empty_checks = ir.empty_checks(kernel_ir)
        self.result_dtypes = [r.dtype for r in kernel_ir.results]
        self.result_axes = [r.axes for r in kernel_ir.results]


class Kernel:
    """A compiled nbx kernel: call it like a NumPy function."""

    def __init__(self, module, definition: ast.KernelDef):
        self._module = module
        self._def = definition
        self.name = definition.name
        self._params = [_ParamSpec(i, p) for i, p in enumerate(definition.params)]
        self._index = {p.name: p.index for p in self._params}
        self._typevars = check.type_variables(definition)
        self._specs: dict[tuple, _Specialization] = {}
        self._spec_list: list[_Specialization] = []  # the same, for the fast path's loop
        self._lock = threading.Lock()
        self._has_out_param = "out" in self._index
        self.signature = self._signature_text()
        self.__doc__ = self.signature + ("\n\n" + definition.doc if definition.doc else "")
        self.__name__ = self.name
        self.__qualname__ = self.name

    def _signature_text(self) -> str:
        def type_text(t: ast.TypeExpr) -> str:
            return t.dtype + (f"[{', '.join(t.dims)}]" if t.dims is not None else "")
        params = ", ".join(f"{p.name}: {type_text(p.type)}" for p in self._def.params)
        results = [type_text(t) for t in self._def.results]
        ret = f"({', '.join(results)})" if self._def.tuple_result else results[0]
        return f"{self.name}({params}) -> {ret}"

    def __repr__(self) -> str:
        return f"<nbx.Kernel {self.signature} target={self._module.target!r}>"

    # compilation ----------------------------------------------------------------------------
    def specialize(self, binding: dict[str, np.dtype] | None = None) -> _Specialization:
        """The compiled specialisation for a type-variable binding (default: all f64)."""
        if binding is None:
            binding = {tv: F64 for tv in self._typevars}
        key = tuple(binding[tv] for tv in self._typevars)
        spec = self._specs.get(key)
        if spec is None:
            with self._lock:
                spec = self._specs.get(key)
                if spec is None:
                    spec = self._module._compile_kernel(self._def, dict(binding))
                    self._specs[key] = spec
                    self._spec_list = self._spec_list + [spec]
        return spec

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

    # calls ----------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if not kwargs:
            # the generated fast path takes exact arrays of a compiled binding, else says None
            for spec in self._spec_list:
                try:
                    result = spec.fast(*args)
                except TypeError:  # wrong number of arguments: the checked path says so
                    break
                if result is not None:
                    return result
        out = _MISSING
        if not self._has_out_param and "out" in kwargs:
            out = kwargs.pop("out")
        values, binding, lengths = self._bind(args, kwargs)
        spec = self.specialize(binding)
        return self._run(spec, values, lengths, None if out is _MISSING else out)

    def reference(self, *args, **kwargs):
        """Results computed by the NumPy reference interpreter (the semantics' definition)."""
        from .dsl.reference import evaluate
        values, binding, lengths = self._bind(args, kwargs)
        kernel_ir = self._module._compiler.check_kernel(self._def, binding)
        self._check_empty(ir.empty_checks(kernel_ir), lengths)
        try:
            results = evaluate(kernel_ir, values, lengths)
        except ValueError as err:
            raise ValueError(f"{self.name}(): {err}") from None
        return tuple(results) if self._def.tuple_result else results[0]

    def _check_empty(self, checks, lengths: dict[str, int]) -> None:
        """ValueError for a min/max/argmin/argmax over a zero-length dimension."""
        for kind, over, span in checks:
            for d in over:
                if lengths[d] == 0:
                    where = f" (line {span.line})" if span is not None else ""
                    raise ValueError(f"{self.name}(): {kind}() over dimension {d} of length 0"
                                     f"{where}: an empty {kind} has no value")

    def _run(self, spec: _Specialization, values: list, lengths: dict[str, int], out):
        self._check_empty(spec.empty_checks, lengths)
        outs, final = self._outputs(spec, lengths, out, values)
        err = np.zeros(1, np.int64)
        spec.entry(*values, *outs, err, *[lengths[d] for d in spec.ir.dims])
        if err[0]:
            raise ValueError(f"{self.name}(): integers to negative integer powers are not "
                             "allowed")
        results = []
        for i, o in enumerate(outs):
            target = final[i]
            if target is not None:
                if spec.result_axes[i] is None:
                    target[()] = o[0]
                else:
                    np.copyto(target, o)
                results.append(target)
            elif spec.result_axes[i] is None:
                results.append(o[0])
            else:
                results.append(o)
        return tuple(results) if self._def.tuple_result else results[0]

    def _outputs(self, spec: _Specialization, lengths, out, values):
        """Arrays the entry point writes, and the user's out= arrays to copy them into."""
        n = len(spec.result_dtypes)
        if out is None:
            given = [None] * n
        elif self._def.tuple_result:
            if not isinstance(out, tuple) or len(out) != n:
                raise TypeError(f"{self.name}(): out must be a tuple of {n} arrays (or None "
                                f"entries), got {describe_value(out)}")
            given = list(out)
        else:
            given = [out]
        outs, final = [], []
        for i, (dtype, axes) in enumerate(zip(spec.result_dtypes, spec.result_axes, strict=True)):
            shape = tuple(lengths[d] for d in axes) if axes is not None else ()
            o = given[i]
            if o is None:
                outs.append(np.empty(shape if axes is not None else (1,), dtype))
                final.append(None)
                continue
            label = "out" if n == 1 else f"out[{i}]"
            if not isinstance(o, np.ndarray) or o.dtype != dtype or o.shape != shape:
                raise TypeError(f"{self.name}(): {label} must be {_a(str(dtype))} array of "
                                f"shape {shape}, got {describe_value(o)}")
            if not o.flags.writeable:
                raise ValueError(f"{self.name}(): {label} is read-only")
            for j in range(i):
                # two results cannot both be kept in one memory: refuse rather than lose one
                if given[j] is not None and np.may_share_memory(o, given[j]):
                    raise ValueError(f"{self.name}(): out[{j}] and out[{i}] overlap: each "
                                     "result needs its own array")
            overlaps = any(isinstance(v, np.ndarray) and np.may_share_memory(o, v)
                           for v in values)
            if axes is None or overlaps:
                outs.append(np.empty(shape if axes is not None else (1,), dtype))
                final.append(o)
            else:
                outs.append(o)
                final.append(None)
        return outs, final

    def _bind(self, args, kwargs):
        """Checked and converted arguments, the type-variable binding, and dimension lengths."""
        params = self._params
        if len(args) > len(params):
            raise TypeError(f"{self.name}() takes {_plural(len(params), 'argument')}, "
                            f"got {len(args)}")
        values = list(args) + [_MISSING] * (len(params) - len(args))
        for key, value in kwargs.items():
            i = self._index.get(key)
            if i is None:
                raise TypeError(f"{self.name}() got an unexpected keyword argument '{key}'")
            if values[i] is not _MISSING:
                raise TypeError(f"{self.name}() got multiple values for argument '{key}'")
            values[i] = value
        for p in params:
            if values[p.index] is _MISSING:
                raise TypeError(f"{self.name}() missing argument '{p.name}'")
        binding: dict[str, np.dtype] = {}
        bound_by: dict[str, str] = {}
        deferred = []
        for p in params:
            v = values[p.index]
            if p.typevar is not None and p.typevar not in binding:
                dt = _binding_dtype(v)
                if dt is None:
                    deferred.append(p)
                    continue
                binding[p.typevar] = dt
                bound_by[p.typevar] = p.name
            values[p.index] = self._convert(p, v, binding, bound_by)
        # A type variable that only Python values use binds to what NumPy makes of all of
        # them together (pair(1, 2.5) binds T to f64), not to the first one's type.
        python_only: dict[str, list[np.dtype]] = {}
        for p in deferred:
            if p.typevar not in binding:
                python_only.setdefault(p.typevar, []).append(
                    _python_dtype(values[p.index], p, self.name))
        for tv, dtypes in python_only.items():
            binding[tv] = np.result_type(*dtypes)
        for p in deferred:
            values[p.index] = self._convert(p, values[p.index], binding, bound_by)
        lengths: dict[str, int] = {}
        owner: dict[str, str] = {}
        for p in params:
            if p.axes is None:
                continue
            shape = values[p.index].shape
            for d, n in zip(p.axes, shape, strict=True):
                seen = lengths.get(d)
                if seen is None:
                    lengths[d] = n
                    owner[d] = p.name
                elif seen != n:
                    raise ValueError(f"{self.name}(): dimension {d} is {seen} in {owner[d]} "
                                     f"but {n} in {p.name}")
        return values, binding, lengths

    def _convert(self, p: _ParamSpec, v, binding, bound_by):
        if p.typevar is None:
            return self._convert_to(p, v, p.dtype)
        dtype = binding[p.typevar]
        owner = bound_by.get(p.typevar, p.name)
        try:
            given = _binding_dtype(v)
            if p.axes is None and given is not None and given != dtype:
                # a NumPy scalar takes part in binding like an array: another dtype is a
                # mismatch, not a cast (whichever of the two comes first)
                raise TypeError(f"{self.name}(): {p.name} must be {p.expected(dtype)}, got "
                                f"{describe_value(v)}")
            return self._convert_to(p, v, dtype)
        except TypeError as err:
            if owner == p.name:
                raise
            raise TypeError(f"{err} ({p.typevar} is {dtype}, bound by {owner})") from None

    def _convert_to(self, p: _ParamSpec, v, dtype: np.dtype):
        if p.axes is not None:
            return _convert_array(self.name, p, v, dtype)
        return _convert_scalar(self.name, p, v, dtype)


def _binding_dtype(v):
    """The dtype an argument binds a type variable to, or None for Python values."""
    if isinstance(v, np.ndarray) and v.dtype in _DTYPE_SET:
        return v.dtype
    if isinstance(v, np.generic) and v.dtype in _DTYPE_SET:
        return v.dtype
    return None


_DTYPE_SET = set(DTYPES.values())


def _python_dtype(v, p: _ParamSpec, kernel: str) -> np.dtype:
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        return I64 if -2**63 <= v < 2**63 else U64
    if isinstance(v, float):
        return F64
    if isinstance(v, (list, tuple)):
        try:
            arr = np.asarray(v)
        except (ValueError, TypeError):
            arr = None
        if arr is not None and arr.dtype in _DTYPE_SET:
            return arr.dtype
    raise TypeError(f"{kernel}(): {p.name} must be {p.expected(None)}, got {describe_value(v)}")


def _convert_array(kernel: str, p: _ParamSpec, v, dtype: np.dtype) -> np.ndarray:
    if type(v) is not np.ndarray:
        if isinstance(v, np.ma.MaskedArray):
            raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got a masked "
                            "array (nbx does not apply masks: pass arr.filled(value) or "
                            "arr.compressed())")
        if isinstance(v, np.ndarray):
            v = np.asarray(v)
        elif isinstance(v, (list, tuple)):
            try:
                v = np.asarray(v, dtype=dtype)
            except (ValueError, TypeError, OverflowError) as err:
                raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got a "
                                f"{type(v).__name__} that does not convert ({err})") from None
        else:
            raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                            f"{describe_value(v)}")
    if v.dtype is not dtype and v.dtype != dtype or v.ndim != p.ndim:
        raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                        f"{describe_value(v)}")
    return v


def _convert_scalar(kernel: str, p: _ParamSpec, v, dtype: np.dtype):
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, bool):
        src = BOOL
    elif isinstance(v, int):
        src = I64
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if not info.min <= v <= info.max:
                raise ValueError(f"{kernel}(): {p.name} = {v} is out of range for {dtype}")
            return dtype.type(v)
        if dtype.kind == "b":
            src = I64
    elif isinstance(v, float):
        src = F64
    elif isinstance(v, np.generic) and v.dtype.kind in "biufc":
        src = v.dtype   # also float16, longdouble, complex: can_cast decides
    else:
        raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                        f"{describe_value(v)}")
    if not np.can_cast(src, dtype, casting="same_kind"):
        raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                        f"{describe_value(v)} (not a same-kind conversion)")
    with np.errstate(all="ignore"):
        try:
            return dtype.type(v)
        except OverflowError:  # a Python int beyond any float (10**400)
            raise ValueError(f"{kernel}(): {p.name} = {v} is out of range for {dtype}") from None


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
