"""The calling convention of LANGUAGE.md section 7, in one file that needs only NumPy.

A kernel checks and converts its arguments, binds type variables, picks the compiled
specialisation for the binding, allocates the outputs and calls the compiled entry point.
Messages name the kernel, the parameter, what was expected and what was given.

Arrays in GPU memory (anything with `__cuda_array_interface__`: Numba device arrays, CuPy,
PyTorch) are checked here too, from their interface alone, and passed on wrapped in a
`DeviceValue`; only kernels of a CUDA target (`_device`) accept them, and their calls go to
`_run_device` (nbx/backends/cuda_runtime.py), which subclasses provide.

nbx.Kernel (nbx/runtime.py) is built on `KernelBase`, and `nbxc compile` copies this file
verbatim into every standalone module, so that a compiled module checks arguments and words
its errors exactly as nbx does. Keep it free of imports beyond the standard library and NumPy.
"""

import threading

import numpy as np

DTYPES = {
    "bool": np.dtype(np.bool_), "i8": np.dtype(np.int8), "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32), "i64": np.dtype(np.int64), "u8": np.dtype(np.uint8),
    "u16": np.dtype(np.uint16), "u32": np.dtype(np.uint32), "u64": np.dtype(np.uint64),
    "f32": np.dtype(np.float32), "f64": np.dtype(np.float64),
}
_DTYPE_SET = set(DTYPES.values())
_BOOL, _I64, _U64, _F64 = DTYPES["bool"], DTYPES["i64"], DTYPES["u64"], DTYPES["f64"]
_MISSING = object()


def _plural(n, word):
    return f"{n} {word}{'s' if n != 1 else ''}"


def _a(word):
    """The word with its indefinite article: 'an int32', 'a uint8', 'a float64'."""
    return f"{'an' if word[:1] in 'aeioAEIO' else 'a'} {word}"


def describe_value(value):
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
    name = f"{type(value).__module__}.{type(value).__qualname__}" \
        if type(value).__module__ != "builtins" else type(value).__name__
    info = device_array_info(value)
    if info is not None:
        return f"{name} {info[0]} of shape {info[1]} on the GPU"
    return name


def device_array_info(value):
    """(dtype, shape) of an array in GPU memory, from its `__cuda_array_interface__`, else
    None. Numba's CUDA simulator has device arrays without the interface: they say
    `__cuda_ndarray__` instead (as real Numba device arrays do too)."""
    try:
        if getattr(value, "__cuda_ndarray__", False) is True:   # cheaper than the interface
            return np.dtype(value.dtype), tuple(int(n) for n in value.shape)
        cai = getattr(value, "__cuda_array_interface__", None)
    except Exception:  # noqa: BLE001  (a torch tensor that requires grad refuses to export)
        return None
    if cai is not None:
        return np.dtype(cai["typestr"]), tuple(int(n) for n in cai["shape"])
    return None


class DeviceValue:
    """A checked argument in GPU memory: the caller's object, the dtype the kernel takes it
    as, and its shape (() for a 0-d array given for a scalar parameter)."""

    __slots__ = ("obj", "dtype", "shape")

    def __init__(self, obj, dtype, shape):
        self.obj = obj
        self.dtype = dtype
        self.shape = shape


_ON_CPU = ("this kernel runs on the CPU: compile it with target=\"cuda\" or target=\"auto\", or "
           "copy the array to the host first")


class ParamSpec:
    """One declared parameter: its name, dtype (or type variable) and dimensions."""

    __slots__ = ("name", "index", "spec", "dtype", "typevar", "axes", "ndim")

    def __init__(self, index, name, spec, axes):
        self.name = name
        self.index = index
        self.spec = spec
        self.typevar = None if spec in DTYPES else spec
        self.dtype = DTYPES.get(spec)
        self.axes = None if axes is None else tuple(axes)
        self.ndim = None if axes is None else len(axes)

    def expected(self, dtype):
        what = str(dtype) if dtype is not None else f"{self.typevar} (any dtype)"
        if self.axes is None:
            return f"{_a(what)} scalar"
        dims = ", ".join(self.axes)
        return f"{_a(what)} array with {_plural(len(self.axes), 'dimension')} ({dims})"


class Compiled:
    """What a call needs of one compiled binding: the entry point, its unchecked fast path
    (None for CUDA targets, whose entry is the launcher), the dimension order of its length
    arguments, the results' dtypes and dimensions, the reductions that have no value over an
    empty dimension: (name, dimensions, line), and whether the kernel can set its error flag
    (the CUDA runtime reads the flag back, which waits for the kernel, only then)."""

    def __init__(self, entry, fast, dims, result_dtypes, result_axes, empty_checks,
                 can_fail=True):
        self.entry = entry
        self.fast = fast
        self.can_fail = can_fail
        self.dims = tuple(dims)
        self.result_dtypes = [np.dtype(d) for d in result_dtypes]
        self.result_axes = [None if a is None else tuple(a) for a in result_axes]
        self.empty_checks = list(empty_checks)


class KernelBase:
    """A callable kernel: call it like a NumPy function. Subclasses say how a binding's
    specialisation is obtained (`build`): compiled on demand by nbx, or looked up among the
    ones a standalone module was compiled with. Kernels of a CUDA target set `_device` and
    provide `_run_device` (the arrays may be on the GPU; a `stream=` keyword is taken)."""

    _device = False

    def __init__(self, name, params, tuple_result, signature, doc=""):
        self.name = name
        self._params = [ParamSpec(i, *p) for i, p in enumerate(params)]
        self._index = {p.name: p.index for p in self._params}
        self._typevars = []
        for p in self._params:
            if p.typevar is not None and p.typevar not in self._typevars:
                self._typevars.append(p.typevar)
        self._tuple_result = tuple_result
        self._specs = {}
        self._spec_list = []  # the same, for the fast path's loop
        self._lock = threading.Lock()
        self._has_out_param = "out" in self._index
        self._has_stream_param = "stream" in self._index
        self.signature = signature
        self.__doc__ = signature + ("\n\n" + doc if doc else "")
        self.__name__ = name
        self.__qualname__ = name

    def build(self, binding):
        raise NotImplementedError

    def specialize(self, binding=None):
        """The specialisation for a type-variable binding (default: all f64)."""
        if binding is None:
            binding = {tv: _F64 for tv in self._typevars}
        key = tuple(binding[tv] for tv in self._typevars)
        spec = self._specs.get(key)
        if spec is None:
            with self._lock:
                spec = self._specs.get(key)
                if spec is None:
                    spec = self.build(dict(binding))
                    self._specs[key] = spec
                    if spec.fast is not None:  # CUDA specialisations have none
                        self._spec_list = self._spec_list + [spec]
        return spec

    def __call__(self, *args, **kwargs):
        if not kwargs or (self._device and len(kwargs) == 1 and "out" in kwargs
                          and not self._has_out_param):
            # the fast path takes exact arrays of a compiled binding (and out= of device
            # arrays, on a CUDA target), else says None
            for spec in self._spec_list:
                try:
                    result = spec.fast(*args, **kwargs) if kwargs else spec.fast(*args)
                except TypeError:  # wrong number of arguments: the checked path says so
                    break
                if result is not None:
                    return result
        if _has_collection(args, kwargs):   # Dask arrays: a lazy computation
            return self._call_collections(args, kwargs)
        out = _MISSING
        if not self._has_out_param and "out" in kwargs:
            out = kwargs.pop("out")
        if self._device:
            stream = None
            if not self._has_stream_param and "stream" in kwargs:
                stream = kwargs.pop("stream")
            values, binding, lengths = self._bind(args, kwargs)
            spec = self.specialize(binding)
            return self._run_device(spec, values, lengths, None if out is _MISSING else out,
                                    stream)
        values, binding, lengths = self._bind(args, kwargs)
        spec = self.specialize(binding)
        return self._run(spec, values, lengths, None if out is _MISSING else out)

    def _run_device(self, spec, values, lengths, out, stream):
        """The call of a CUDA target's kernel (cuda_runtime.run); subclasses provide it."""
        raise NotImplementedError

    def _call_collections(self, args, kwargs):
        """A call with Dask arrays (nbx.Kernel builds the Dask graph: nbx/chunked)."""
        raise TypeError(f"{self.name}(): this compiled module cannot take Dask arrays (load the "
                        ".nbx file with nbx for that); pass NumPy arrays")

    def _check_empty(self, checks, lengths):
        """ValueError for a min/max/argmin/argmax over a zero-length dimension."""
        for kind, over, line in checks:
            for d in over:
                if lengths[d] == 0:
                    where = f" (line {line})" if line is not None else ""
                    raise ValueError(f"{self.name}(): {kind}() over dimension {d} of length 0"
                                     f"{where}: an empty {kind} has no value")

    def _run(self, spec, values, lengths, out):
        self._check_empty(spec.empty_checks, lengths)
        outs, final = self._outputs(spec, lengths, out, values)
        err = np.zeros(1, np.int64)
        spec.entry(*values, *outs, err, *[lengths[d] for d in spec.dims])
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
        return tuple(results) if self._tuple_result else results[0]

    def _given_outs(self, out, n):
        """The out= argument as a list of n entries (None: allocate that result)."""
        if out is None:
            return [None] * n
        if self._tuple_result:
            if not isinstance(out, tuple) or len(out) != n:
                raise TypeError(f"{self.name}(): out must be a tuple of {n} arrays (or None "
                                f"entries), got {describe_value(out)}")
            return list(out)
        return [out]

    def _out_mismatch(self, label, dtype, shape, given):
        return TypeError(f"{self.name}(): {label} must be {_a(str(dtype))} array of shape "
                         f"{shape}, got {describe_value(given)}")

    def _outputs(self, spec, lengths, out, values):
        """Arrays the entry point writes, and the user's out= arrays to copy them into."""
        n = len(spec.result_dtypes)
        given = self._given_outs(out, n)
        outs, final = [], []
        for i, (dtype, axes) in enumerate(zip(spec.result_dtypes, spec.result_axes)):
            shape = tuple(lengths[d] for d in axes) if axes is not None else ()
            o = given[i]
            if o is None:
                outs.append(np.empty(shape if axes is not None else (1,), dtype))
                final.append(None)
                continue
            label = "out" if n == 1 else f"out[{i}]"
            if not isinstance(o, np.ndarray) or o.dtype != dtype or o.shape != shape:
                raise self._out_mismatch(label, dtype, shape, o)
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
        binding = {}
        bound_by = {}
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
        python_only = {}
        for p in deferred:
            if p.typevar not in binding:
                python_only.setdefault(p.typevar, []).append(
                    _python_dtype(values[p.index], p, self.name))
        for tv, dtypes in python_only.items():
            binding[tv] = np.result_type(*dtypes)
        for p in deferred:
            values[p.index] = self._convert(p, values[p.index], binding, bound_by)
        lengths = {}
        owner = {}
        for p in params:
            if p.axes is None:
                continue
            shape = values[p.index].shape
            for d, n in zip(p.axes, shape):
                seen = lengths.get(d)
                if seen is None:
                    lengths[d] = n
                    owner[d] = p.name
                elif seen != n:
                    raise ValueError(f"{self.name}(): dimension {d} is {seen} in {owner[d]} "
                                     f"but {n} in {p.name}")
        return values, binding, lengths

    def _convert(self, p, v, binding, bound_by):
        if p.typevar is None:
            return self._convert_to(p, v, p.dtype)
        dtype = binding[p.typevar]
        owner = bound_by.get(p.typevar, p.name)
        try:
            given = _binding_dtype(v) if p.axes is None else None
            if given is not None and given != dtype:
                # a NumPy scalar takes part in binding like an array: another dtype is a
                # mismatch, not a cast (whichever of the two comes first)
                raise TypeError(f"{self.name}(): {p.name} must be {p.expected(dtype)}, got "
                                f"{describe_value(v)}")
            return self._convert_to(p, v, dtype)
        except TypeError as err:
            if owner == p.name:
                raise
            raise TypeError(f"{err} ({p.typevar} is {dtype}, bound by {owner})") from None

    def _convert_to(self, p, v, dtype):
        if p.axes is not None:
            return _convert_array(self.name, p, v, dtype, self._device)
        return _convert_scalar(self.name, p, v, dtype, self._device)


def _has_collection(args, kwargs):
    """Whether an argument is a lazy collection (a Dask array: `__dask_graph__`)."""
    for v in args:
        if hasattr(type(v), "__dask_graph__"):
            return True
    for v in kwargs.values():
        if hasattr(type(v), "__dask_graph__"):
            return True
    return False


def _native(dtype):
    """The native byte order's twin of a dtype: a big-endian float64 array is a float64 one."""
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _binding_dtype(v):
    """The dtype an argument binds a type variable to, or None for Python values."""
    if isinstance(v, np.ndarray) and (native := _native(v.dtype)) in _DTYPE_SET:
        return native
    if isinstance(v, np.generic) and v.dtype in _DTYPE_SET:
        return v.dtype
    if isinstance(v, (bool, int, float, list, tuple, np.ndarray, np.generic)):
        return None
    info = device_array_info(v)   # device arrays bind as NumPy arrays do
    if info is not None and info[0] in _DTYPE_SET:
        return info[0]
    return None


def _python_dtype(v, p, kernel):
    if isinstance(v, bool):
        return _BOOL
    if isinstance(v, int):
        return _I64 if -2**63 <= v < 2**63 else _U64
    if isinstance(v, float):
        return _F64
    if isinstance(v, (list, tuple)):
        try:
            arr = np.asarray(v)
        except (ValueError, TypeError):
            arr = None
        if arr is not None and arr.dtype in _DTYPE_SET:
            return arr.dtype
    raise TypeError(f"{kernel}(): {p.name} must be {p.expected(None)}, got {describe_value(v)}")


def _convert_array(kernel, p, v, dtype, device=False):
    if type(v) is not np.ndarray:
        info = None if isinstance(v, (np.ndarray, list, tuple)) else device_array_info(v)
        if info is not None:
            if not device:
                raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                                f"{describe_value(v)} ({_ON_CPU})")
            if info[0] != dtype or len(info[1]) != p.ndim:
                raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                                f"{describe_value(v)}")
            return DeviceValue(v, dtype, info[1])
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
    if not v.dtype.isnative and _native(v.dtype) == dtype and v.ndim == p.ndim:
        return v.astype(dtype)   # the kernels read native byte order: a native copy
    if v.dtype is not dtype and v.dtype != dtype or v.ndim != p.ndim:
        raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                        f"{describe_value(v)}")
    return v


def _convert_scalar(kernel, p, v, dtype, device=False):
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, bool):
        src = _BOOL
    elif isinstance(v, int):
        src = _I64
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if not info.min <= v <= info.max:
                raise ValueError(f"{kernel}(): {p.name} = {v} is out of range for {dtype}")
            return dtype.type(v)
    elif isinstance(v, float):
        src = _F64
    elif isinstance(v, np.generic) and v.dtype.kind in "biufc":
        src = v.dtype   # also float16, longdouble, complex: can_cast decides
    else:
        info = device_array_info(v)
        if info is None or info[1] != () or not device:
            hint = f" ({_ON_CPU})" if info is not None and info[1] == () else ""
            raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                            f"{describe_value(v)}{hint}")
        if not np.can_cast(info[0], dtype, casting="same_kind"):
            raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                            f"{describe_value(v)} (not a same-kind conversion)")
        return DeviceValue(v, dtype, ())   # a 0-d device array: read at the call
    if not np.can_cast(src, dtype, casting="same_kind"):
        raise TypeError(f"{kernel}(): {p.name} must be {p.expected(dtype)}, got "
                        f"{describe_value(v)} (not a same-kind conversion)")
    with np.errstate(all="ignore"):
        try:
            return dtype.type(v)
        except OverflowError:  # a Python int beyond any float (10**400)
            raise ValueError(f"{kernel}(): {p.name} = {v} is out of range for {dtype}") from None
