"""run (CUDA targets): checked arguments -> device arrays -> the launcher -> results where the
inputs live.

A call of a `cuda` or `cuda-ufunc` kernel comes here after nbx/callconv.py has checked its
arguments (arrays in GPU memory arrive wrapped in callconv's `DeviceValue`). NumPy inputs are
copied to the device once; device inputs (anything with `__cuda_array_interface__`: Numba
device arrays, CuPy, PyTorch) are used in place. The generated launcher

    launch_<kernel>(call, args, outs, err, lengths)

only enqueues kernels, on the stream of `call` (a `Call`). When no input is a device array,
the results are copied back and returned as NumPy; otherwise they are allocated like the first
device input (by CuPy, by PyTorch, else by Numba) and returned as that kind of array without
touching the host.

Launching costs what Python does per call, so this path does as little as it can:
- the launcher sees every array as a `DeviceArray` (pointer, shape, strides, dtype), read
  straight from CuPy's, PyTorch's or Numba's attributes;
- each `@cuda.jit` kernel of a generated module is a `GridKernel`: once per argument layout
  (all C-contiguous or not) it has Numba compile, or load from its cache, the kernel for its
  argument types; every launch then packs the arguments as Numba's kernel ABI lays them out
  and calls the driver's cuLaunchKernel (through ctypes), with no type dispatch;
- temporaries (reduction partials) come from a stream-ordered memory pool of nbx's own and go
  back to it on the same stream after the launches: no allocation that synchronises;
- a call whose array arguments are all CuPy, PyTorch or Numba device arrays of a compiled
  binding, with no keyword, takes `FastCall`, which checks them with identity tests only (as
  the CPU's generated fast path does) and otherwise leaves the call to the checked path.
Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) the same path runs down to the launch,
which then goes through the simulator with the arrays wrapped as its own ("device" memory is
host memory there).

`nbxc compile` copies this file verbatim into standalone CUDA modules, ahead of the kernels: it
imports NumPy and the standard library only, and numba.cuda (with the cuda.bindings driver it
needs) when a call needs it; the kernel object it is given is a callconv.KernelBase.
"""

import ctypes
import struct
import sys
import threading

import numpy as np


class TargetUnavailable(RuntimeError):
    """A CUDA target asked for where it cannot run: numba.cuda missing, or no GPU."""


_STATUS = None   # (available, why), probed once per process
_STATUS_LOCK = threading.Lock()


def available():
    """(True, what runs the kernels) or (False, what is missing), probed once. Every CUDA
    call asks this first, so the probe also finishes the driver's start-up, under a lock:
    Numba's driver marks itself initialised before cuInit returns, and threads making their
    first GPU calls together then failed with CUDA_ERROR_NOT_INITIALIZED (tests/
    test_concurrency.py, on a GPU)."""
    global _STATUS
    if _STATUS is None:
        with _STATUS_LOCK:
            if _STATUS is None:
                _STATUS = _probe()
    return _STATUS


def _probe():
    try:
        from numba import cuda
    except Exception as err:  # noqa: BLE001  (ImportError, or a broken install)
        return False, (f"numba.cuda cannot be imported ({type(err).__name__}: {err}); "
                       "install numba-cuda (pip install numba-cuda)")
    if _simulated():
        return True, "Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        if cuda.is_available():
            cuda.current_context()   # the primary context, made before any thread uses it
            return True, "a CUDA GPU"
        why = str(cuda.cuda_error() or "").strip().split("\n")[0]
    except Exception as err:  # noqa: BLE001  (a driver that fails to initialise)
        why = f"{type(err).__name__}: {err}"
    return False, "no CUDA GPU found" + (f" ({why})" if why else "")


def importable():
    """(True, "") when numba.cuda imports (enough to emit and load CUDA code), else why not."""
    try:
        from numba import cuda  # noqa: F401
    except Exception as err:  # noqa: BLE001
        return False, (f"numba.cuda cannot be imported ({type(err).__name__}: {err}); "
                       "install numba-cuda (pip install numba-cuda)")
    return True, ""


def require(target, gpu=True):
    """TargetUnavailable unless `target` can run here (gpu=False: unless its code can at least
    be built, i.e. numba.cuda imports)."""
    ok, why = available() if gpu else importable()
    if not ok:
        raise TargetUnavailable(f'target "{target}" cannot run here: {why}; use target="cpu", '
                                'or target="auto" (the GPU when there is one, else the CPU)')


_SIMULATED = None


def _simulated():
    global _SIMULATED
    if _SIMULATED is None:
        from numba import config
        _SIMULATED = bool(getattr(config, "ENABLE_CUDASIM", False))
    return _SIMULATED



# the checked call -------------------------------------------------------------------------

def run(kernel, spec, values, lengths, out, stream):
    """One call of a CUDA kernel: `values` are callconv's checked arguments (NumPy arrays and
    scalars, DeviceValue for device arrays), `out` the out= argument or None, `stream` the
    stream= argument or None. Returns the results as the calling convention says."""
    from numba import cuda
    kernel._check_empty(spec.empty_checks, lengths)
    sim = _simulated()
    n = len(spec.result_dtypes)
    given = kernel._given_outs(out, n)
    first = next((v.obj for v in values if type(v) is not np.ndarray
                  and not isinstance(v, np.generic)), None)
    if first is None:   # all inputs on the host: a device out= decides where results go
        first = next((o for o in given if o is not None and not isinstance(o, np.ndarray)),
                     None)
    kind = None if first is None else _kind(first)
    stream = _stream(cuda, kernel.name, stream, kind, first, sim)

    args, devices = [], []
    copies = {}   # id(NumPy array) -> its device copy: an array given twice is copied once
    for p, v in zip(kernel._params, values):
        if type(v) is np.ndarray:
            dev = copies.get(id(v))
            if dev is None:
                dev = copies[id(v)] = _to_device(cuda, v, stream)
            args.append(dev)
        elif isinstance(v, np.generic):
            args.append(v)
        elif p.axes is None:   # a 0-d device array for a scalar parameter: read it
            host = _host_copy(_as_device(cuda, v.obj, sim), stream)
            args.append(v.dtype.type(host[()]))
        else:
            dev = _as_device(cuda, v.obj, sim)
            args.append(dev)
            devices.append(dev)

    outs, results, after = _outputs(cuda, kernel, spec, lengths, given, devices, kind, first,
                                    stream, sim)
    can_fail = spec.can_fail
    err = cuda.to_device(np.zeros(1, np.int64), stream=stream) if can_fail else None
    arg_views = [a if isinstance(a, np.generic) else view(a) for a in args]
    out_views = [view(o) for o in outs]
    contiguous = all(v.contiguous for v in out_views) and \
        all(v.contiguous for v in arg_views if type(v) is DeviceArray)
    call = Call(_handle(stream), contiguous, stream)
    try:
        spec.entry(call, arg_views, out_views, view(err) if can_fail else never_set_flag(),
                   [lengths[d] for d in spec.dims])
    finally:
        call.done()

    host_copies = []   # (host array, NumPy out= to copy it into)
    for dev, target in after:
        if isinstance(target, np.ndarray):
            if target.flags.c_contiguous and target.size:   # straight into it
                dev.copy_to_host(target, stream=stream)
            else:
                host_copies.append((_host_copy(dev, stream), target))
        else:
            _copy_on_device(target, dev, stream, sim)
    if kind is None:   # results to the host
        for i, r in enumerate(results):
            if r is None:
                results[i] = _host_copy(outs[i], stream)
    flag = err.copy_to_host(stream=stream) if can_fail else None
    if kind is None or can_fail or host_copies:
        _synchronize(stream)
    for host, target in host_copies:
        np.copyto(target, host)
    if flag is not None and flag[0]:
        raise ValueError(f"{kernel.name}(): integers to negative integer powers are not "
                         "allowed")
    for i, axes in enumerate(spec.result_axes):
        if axes is None and kind is None and given[i] is None:
            results[i] = results[i][0]   # a NumPy scalar of the result's dtype
    return tuple(results) if kernel._tuple_result else results[0]


def host_value(value):
    """A checked device argument (callconv.DeviceValue) copied to the host: a NumPy array, or
    a NumPy scalar of the parameter's dtype for a 0-d array given for a scalar parameter."""
    from numba import cuda
    host = _host_copy(_as_device(cuda, value.obj, _simulated()), 0)
    return value.dtype.type(host[()]) if value.shape == () and host.ndim == 0 else host


def _outputs(cuda, kernel, spec, lengths, given, devices, kind, first, stream, sim):
    """(device arrays the launcher writes, results to return (None: copy outs[i] to the host),
    copies to make after the launch: (device array, out= array it goes into)). A scalar
    result is a 0-d array seen by the launcher as shape (1,)."""
    outs, results, after = [], [], []
    extents = None   # of the device inputs, when a device out= needs them
    taken = []   # (index, extent or None for NumPy) of the out= arrays seen so far
    for i, (dtype, axes) in enumerate(zip(spec.result_dtypes, spec.result_axes)):
        shape = tuple(lengths[d] for d in axes) if axes is not None else ()
        o = given[i]
        if o is None:
            if kind is None:   # computed on the device, returned as NumPy
                outs.append(cuda.device_array(shape or (1,), dtype, stream=stream))
                results.append(None)
            else:
                user = _new_array(kind, first, shape, dtype, stream)
                dev = _as_device(cuda, user, sim)
                outs.append(dev if axes is not None else dev.reshape(1))
                results.append(user)
            continue
        label = "out" if len(given) == 1 else f"out[{i}]"
        if isinstance(o, np.ndarray):
            if o.dtype != dtype or o.shape != shape:
                raise kernel._out_mismatch(label, dtype, shape, o)
            if not o.flags.writeable:
                raise ValueError(f"{kernel.name}(): {label} is read-only")
            _refuse_shared(kernel, given, i, None, taken)
            tmp = cuda.device_array(shape, dtype, stream=stream)
            outs.append(tmp if axes is not None else tmp.reshape(1))
            after.append((tmp, o))
            results.append(o)
            continue
        info = _device_info(o)
        if info is None or info[0] != dtype or info[1] != shape:
            raise kernel._out_mismatch(label, dtype, shape, o)
        if info[2]:
            raise ValueError(f"{kernel.name}(): {label} is read-only")
        dev = _as_device(cuda, o, sim)
        extent = _extent(dev)
        _refuse_shared(kernel, given, i, extent, taken)
        if extents is None:
            extents = [_extent(d) for d in devices]
        if any(_overlap(extent, e) for e in extents):
            # an input shares its memory: compute into a fresh array, then copy
            tmp = cuda.device_array(shape, dtype, stream=stream)
            outs.append(tmp if axes is not None else tmp.reshape(1))
            after.append((tmp, dev))
        else:
            outs.append(dev if axes is not None else dev.reshape(1))
        results.append(o)
    return outs, results, after


def _refuse_shared(kernel, given, i, extent, taken):
    """ValueError when out[i] shares memory with an earlier out= array (extent None: out[i]
    is a NumPy array)."""
    for j, other in taken:
        host_i, host_j = isinstance(given[i], np.ndarray), isinstance(given[j], np.ndarray)
        if host_i and host_j:
            clash = np.may_share_memory(given[i], given[j])
        else:
            clash = not host_i and not host_j and _overlap(extent, other)
        if clash:
            raise ValueError(f"{kernel.name}(): out[{j}] and out[{i}] overlap: each result "
                             "needs its own array")
    taken.append((i, extent))


# the fast call ----------------------------------------------------------------------------

class FastCall:
    """The common call of a compiled binding, checked with identity tests only: positional
    arguments, every array a CuPy, PyTorch or Numba device array of the bound dtype and
    rank, every scalar a NumPy scalar of its dtype (or a float for float64), out= absent or
    device arrays of the results' dtypes and shapes that share no memory with the inputs or
    each other, no stream=, and a kernel that cannot fail. Called with anything else it
    returns None and the checked path takes the call (which gives the documented result or
    error)."""

    def __init__(self, kernel, spec, binding):
        self.kernel = kernel
        self.spec = spec
        self.params = []   # (dtype, axes (() for a scalar), number of dimensions or None)
        for p in kernel._params:
            dtype = p.dtype if p.typevar is None else np.dtype(binding[p.typevar])
            self.params.append((dtype, p.axes or (), p.ndim))
        self.nparams = len(self.params)
        self.forbidden = sorted({d for _, over, _ in spec.empty_checks for d in over})
        self.results = list(zip(spec.result_dtypes, spec.result_axes))
        self.dims = spec.dims
        self.entry = spec.entry
        self.tuple_result = kernel._tuple_result
        self.usable = not spec.can_fail

    def __call__(self, *args, out=None):
        if len(args) != self.nparams or not self.usable:
            return None
        views = []
        lengths = {}
        first = None
        contiguous = True
        for (dtype, axes, ndim), a in zip(self.params, args):
            cls = type(a)
            if ndim is None:
                if cls is not dtype.type and (cls is not float or dtype.char != "d"):
                    return None
                views.append(a)
                continue
            read = _READERS.get(cls)
            v = (read or _reader(cls))(a)
            if v is None or (v.dtype is not dtype and v.dtype != dtype) or \
                    len(v.shape) != ndim:
                return None
            for d, n in zip(axes, v.shape):
                seen = lengths.get(d)
                if seen is None:
                    lengths[d] = n
                elif seen != n:
                    return None
            if first is None:
                first = a
            if not v.contiguous:
                contiguous = False
            views.append(v)
        if first is None:
            return None
        for d in self.forbidden:
            if lengths[d] == 0:
                return None
        kind = _KINDS.get(type(first)) or _kind(first)
        if out is None:
            results, outs = [], []
            for dtype, axes in self.results:
                shape = tuple([lengths[d] for d in axes]) if axes is not None else ()
                user = _new_array(kind, first, shape, dtype, 0)
                v = (_READERS.get(type(user)) or _reader(type(user)))(user)
                results.append(user)
                outs.append(v if axes is not None else v.as_vector())
        else:
            results = list(out) if self.tuple_result else [out]
            outs = self._given_outs(results, lengths, views)
            if outs is None:
                return None
            contiguous = contiguous and all(v.contiguous for v in outs)
        call = Call(_current_stream(kind, first), contiguous)
        try:
            self.entry(call, views, outs, _KEPT.get("flag") or never_set_flag(),
                       [lengths[d] for d in self.dims])
        finally:
            if call._scratch:
                call.done()
        return tuple(results) if self.tuple_result else results[0]

    def _given_outs(self, given, lengths, views):
        """Views of the out= arrays, or None when they need the checked path's care (a
        missing entry, another type, dtype or shape, shared memory)."""
        if len(given) != len(self.results):
            return None
        outs = []
        extents = [_extent_of(v) for v in views if type(v) is DeviceArray]
        for (dtype, axes), o in zip(self.results, given):
            read = _READERS.get(type(o)) or _reader(type(o))
            if read is _read_interface and (_device_info(o) or (0, 0, True))[2]:
                return None   # read-only (or unreadable): the checked path says so
            v = read(o)
            shape = tuple([lengths[d] for d in axes]) if axes is not None else ()
            if v is None or (v.dtype is not dtype and v.dtype != dtype) or v.shape != shape:
                return None
            extent = _extent_of(v)
            if any(_overlap(extent, e) for e in extents):
                return None
            extents.append(extent)
            outs.append(v if axes is not None else v.as_vector())
        return outs


# arrays -----------------------------------------------------------------------------------

class DeviceArray:
    """An array in GPU memory as launchers see it: its pointer, shape, strides in bytes and
    dtype, and `abi`, the values a Numba kernel takes for an array argument (meminfo, parent,
    size, itemsize, data, the shape, the strides). `contiguous`: C-contiguous, so kernels
    compiled for C layout (which index by shape alone) may take it. `owner` keeps the memory
    alive."""

    __slots__ = ("ptr", "shape", "strides", "dtype", "contiguous", "abi", "owner")

    def __init__(self, ptr, shape, strides, dtype, owner=None):
        itemsize = dtype.itemsize
        if strides is not None and len(shape) == 1:   # the common case, in short
            n = shape[0]
            step = strides[0]
            self.ptr = ptr
            self.shape = (n,)
            self.strides = (step,)
            self.dtype = dtype
            self.contiguous = step == itemsize or n < 2
            self.abi = (0, 0, n, itemsize, ptr, n, step)
            self.owner = owner
            return
        shape = tuple(shape)
        c_strides = []
        step = itemsize
        for n in reversed(shape):
            c_strides.append(step)
            step *= n
        c_strides = tuple(reversed(c_strides))
        size = step // itemsize
        if strides is None:
            strides = c_strides
            contiguous = True
        else:
            strides = tuple(strides)
            contiguous = size == 0 or all(s == c for s, c, n in zip(strides, c_strides, shape)
                                          if n > 1)
        self.ptr = ptr
        self.shape = shape
        self.strides = strides
        self.dtype = dtype
        self.contiguous = contiguous
        self.abi = (0, 0, size, itemsize, ptr) + shape + strides
        self.owner = owner

    def broadcast_to(self, shape):
        """This array seen with `shape`, whose last dimensions are its own (NumPy's
        broadcasting: new and length-1 dimensions repeat, with stride 0)."""
        lead = len(shape) - len(self.shape)
        strides = [0] * lead + [s if n != 1 else 0 for n, s in zip(self.shape, self.strides)]
        return DeviceArray(self.ptr, tuple(shape), tuple(strides), self.dtype, self.owner)

    def as_vector(self):
        """The same memory as shape (1,): how launchers see a 0-d result."""
        return DeviceArray(self.ptr, (1,), None, self.dtype, self.owner)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "strides": self.strides, "data": (self.ptr, False),
                "typestr": self.dtype.str, "version": 3}

    def host_view(self):
        """Under the simulator, where device memory is host memory: the array as NumPy."""
        if 0 in self.shape:
            return np.empty(self.shape, self.dtype)
        return np.asarray(_HostInterface({"shape": self.shape, "typestr": self.dtype.str,
                                          "data": (self.ptr, False), "strides": self.strides,
                                          "version": 3}, self))


def view(obj):
    """The DeviceArray of a device array of any kind (no copy)."""
    read = _READERS.get(type(obj))
    if read is None:
        read = _reader(type(obj))
    v = read(obj)
    if v is None:
        v = _read_interface(obj)
    if v is None:
        raise TypeError(f"not an array in GPU memory: {type(obj).__module__}."
                        f"{type(obj).__qualname__}")
    return v


_READERS = {}   # type of a device array -> how to read it (None from it: not usable here)


def _reader(cls):
    """How arrays of this class are read: by their own attributes where the library is known
    (much cheaper than building the interface's dict), else through the interface."""
    top = cls.__module__.split(".")[0]
    if _simulated():
        read = _read_simulated if getattr(cls, "__cuda_ndarray__", False) is True \
            and not hasattr(cls, "__cuda_array_interface__") else _read_interface
    elif top == "cupy" and cls.__name__ == "ndarray":
        read = _read_cupy
    elif top == "torch" and cls.__name__ == "Tensor":
        read = _read_torch
    elif top in ("numba", "numba_cuda") and cls.__name__ == "DeviceNDArray":
        read = _read_numba
    elif hasattr(cls, "__cuda_array_interface__"):
        read = _read_interface
    else:
        read = _read_nothing
    _READERS[cls] = read
    return read


def _read_nothing(obj):
    return None


def _read_interface(obj):
    try:
        cai = obj.__cuda_array_interface__
    except Exception:  # noqa: BLE001  (a torch tensor that requires grad refuses to export)
        return None
    return DeviceArray(cai["data"][0], cai["shape"], cai.get("strides"),
                       np.dtype(cai["typestr"]), obj)


def _read_cupy(a):
    return DeviceArray(a.data.ptr, a.shape, a.strides, a.dtype, a)


def _read_numba(a):
    return DeviceArray(a.device_ctypes_pointer.value or 0, a.shape, a.strides, a.dtype, a)


_TORCH_DTYPES = {}


def _read_torch(t):
    if not t.is_cuda or t.requires_grad:
        return None
    if not _TORCH_DTYPES:
        torch = sys.modules["torch"]
        for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                     "uint64", "float32", "float64"):
            if hasattr(torch, name):
                _TORCH_DTYPES[getattr(torch, name)] = np.dtype(name)
    dtype = _TORCH_DTYPES.get(t.dtype)
    if dtype is None:
        return None
    size = dtype.itemsize
    return DeviceArray(t.data_ptr(), t.shape, [s * size for s in t.stride()], dtype, t)


def _read_simulated(a):
    host = a._ary
    return DeviceArray(host.__array_interface__["data"][0], host.shape, host.strides,
                       host.dtype, a)


def _kind(obj):
    """Which library a device array belongs to: results are made of the same kind."""
    top = type(obj).__module__.split(".")[0]
    kind = _KINDS[type(obj)] = top if top in ("cupy", "torch") else "numba"
    return kind


_KINDS = {}   # type of a device array -> its kind


def _device_info(obj):
    """(dtype, shape, read-only) of a device array, else None."""
    if getattr(obj, "__cuda_ndarray__", False) is True:
        return np.dtype(obj.dtype), tuple(int(n) for n in obj.shape), False
    try:
        cai = getattr(obj, "__cuda_array_interface__", None)
    except Exception:  # noqa: BLE001
        return None
    if cai is not None:
        return (np.dtype(cai["typestr"]), tuple(int(n) for n in cai["shape"]),
                bool(cai["data"][1]))
    return None


def _new_array(kind, first, shape, dtype, stream):
    """A new array of the kind of `first` (on its device, for PyTorch)."""
    if kind == "cupy":
        return sys.modules["cupy"].empty(shape, dtype)
    if kind == "torch":
        torch = sys.modules["torch"]
        torch_dtype = getattr(torch, dtype.name, None)
        if torch_dtype is not None:
            return torch.empty(shape, dtype=torch_dtype, device=first.device)
    from numba import cuda
    return cuda.device_array(shape, dtype, stream=stream)


def _to_device(cuda, a, stream):
    if a.size == 0:
        return cuda.device_array(a.shape, a.dtype, stream=stream)
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        a = np.ascontiguousarray(a)   # a transfer needs one block of memory
    return cuda.to_device(a, stream=stream)


def _as_device(cuda, obj, sim):
    """A Numba device array over the memory of a device array of any kind (no copy): what the
    checked path copies with."""
    if getattr(obj, "__cuda_ndarray__", False) is True:
        return obj
    if sim:
        return _simulated_view(cuda, obj)
    # Leaving the interface's stream out saves Numba making an external stream object per
    # array; the work goes to the producer's current stream (or stream=) anyway.
    desc = obj.__cuda_array_interface__
    if desc.get("stream") is not None:
        desc = dict(desc, stream=None)
    return cuda.from_cuda_array_interface(desc, owner=obj, sync=False)


class _HostInterface:
    def __init__(self, interface, owner):
        self.__array_interface__ = interface
        self.owner = owner


def _simulated_view(cuda, obj):
    """Under the simulator "device" pointers are host addresses: wrap one as NumPy."""
    host = view(obj).host_view()
    return type(cuda.device_array(0))(host)   # the simulator's FakeCUDAArray


def _host_copy(dev, stream):
    if dev.size == 0:
        return np.empty(dev.shape, dev.dtype)
    return dev.copy_to_host(stream=stream)


def _copy_on_device(target, source, stream, sim):
    """Copy a device array into another of the same shape (any strides)."""
    if source.size == 0:
        return
    if sim:
        np.copyto(target._ary, source._ary)
    elif target.is_c_contiguous() and source.is_c_contiguous():
        target.copy_to_device(source, stream=stream)
    else:
        target.setitem(tuple(slice(None) for _ in target.shape), source, stream=stream)


def _extent(dev):
    """The byte range a device array spans, (lo, hi), or None when it is empty."""
    return _extent_of(view(dev))


def _extent_of(v):
    """The byte range a DeviceArray spans, (lo, hi), or None when it is empty."""
    if 0 in v.shape:
        return None
    lo = sum((n - 1) * s for n, s in zip(v.shape, v.strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(v.shape, v.strides) if s > 0) + v.dtype.itemsize
    return v.ptr + lo, v.ptr + hi


def _overlap(a, b):
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


_KEPT = {}   # arrays allocated once per process (flags, stand-ins), as views


def never_set_flag():
    """The zero error flag given to kernels that never read or write it (one serves every
    call: such a kernel only receives the pointer)."""
    flag = _KEPT.get("flag")
    if flag is None:
        from numba import cuda
        flag = _KEPT["flag"] = view(cuda.to_device(np.zeros(1, np.int64)))
    return flag


def stand_in(dtype):
    """A 1x1 device array for a partial buffer a launch does not use (kept: no allocation
    per call; never written, since only launches with several parts write partials)."""
    dtype = np.dtype(dtype)
    array = _KEPT.get(dtype)
    if array is None:
        from numba import cuda
        array = _KEPT[dtype] = view(cuda.device_array((1, 1), dtype))
    return array


# launching --------------------------------------------------------------------------------

class Call:
    """What the launches of one call share: the stream they go on (a CUstream handle, 0 for
    the default stream), whether every array is C-contiguous (which compiled variant of each
    kernel runs), and the temporaries they use, which `done` gives back on the stream."""

    __slots__ = ("stream", "contiguous", "_numba_stream", "_scratch")

    def __init__(self, stream, contiguous=True, numba_stream=None):
        self.stream = stream
        self.contiguous = contiguous
        self._numba_stream = numba_stream
        self._scratch = None

    def launch(self, kernel, blocks, args):
        """Enqueue `kernel` (a GridKernel) on `blocks` blocks with these arguments."""
        kernel.launch(self, blocks, args)

    def empty(self, shape, dtype):
        """A temporary device array, valid until the call's launches are done."""
        dtype = np.dtype(dtype)
        size = dtype.itemsize
        for n in shape:
            size *= n
        if self._scratch is None:
            self._scratch = []
        if _simulated():
            host = np.empty(shape, dtype)
            self._scratch.append(host)
            return DeviceArray(host.__array_interface__["data"][0], shape, None, dtype, host)
        if size == 0:
            return DeviceArray(0, shape, None, dtype)
        driver = _driver()
        if driver.pool is None:   # no stream-ordered pool here: Numba's allocator
            from numba import cuda
            array = cuda.device_array(shape, dtype, stream=self.numba_stream())
            self._scratch.append(array)
            return view(array)
        ptr = driver.allocate(size, self.stream)
        self._scratch.append(ptr)
        return DeviceArray(ptr, shape, None, dtype)

    def done(self):
        """Give the temporaries back, ordered after the launches on the stream."""
        if self._scratch and not _simulated():
            driver = _driver()
            for ptr in self._scratch:
                if type(ptr) is int:
                    driver.free(ptr, self.stream)
        self._scratch = None

    def ufunc(self, ufunc, args, out):
        """Run a CUDA ufunc (Numba's @vectorize) into `out`. Numba's ufuncs take what lines up
        already (numba-cuda 0.30: its broadcasting of device arrays misaligns axes, and it
        copies non-contiguous ones through the host, or for out= into a copy it then drops),
        so every array reaches it as a 1-D C-contiguous array of the result's size: itself
        when it has the result's shape and is C-contiguous, else a contiguous copy of it
        broadcast to that shape (its dimensions are the result's last ones), made here."""
        size = 1
        for n in out.shape:
            size *= n
        if size == 0:
            return
        flat = []
        for a in args:
            if type(a) is DeviceArray:
                if a.shape != out.shape or not a.contiguous:
                    a = self.copy(a.broadcast_to(out.shape))
                a = DeviceArray(a.ptr, (size,), None, a.dtype, a.owner)
            flat.append(a)
        result = out if out.contiguous else self.empty(out.shape, out.dtype)
        ufunc(*flat, out=DeviceArray(result.ptr, (size,), None, result.dtype, result.owner),
              stream=self.numba_stream())
        if result is not out:
            self.copy(result, out)

    def copy(self, source, target=None):
        """Copy `source` (any strides, zero ones too) into `target` of its shape, or into a
        new temporary, which is returned."""
        if target is None:
            target = self.empty(source.shape, source.dtype)
        size = 1
        for n in source.shape:
            size *= n
        if size:
            kernel = _copy_kernel(source.dtype, len(source.shape))
            self.launch(kernel, max(1, min((size + kernel.threads - 1) // kernel.threads,
                                           4096)), (source, target))
        return target

    def numba_stream(self):
        """The stream as Numba's API takes it (a Stream object, or 0)."""
        if self._numba_stream is None:
            if self.stream:
                from numba import cuda
                self._numba_stream = cuda.external_stream(self.stream)
            else:
                self._numba_stream = 0
        return self._numba_stream


# Each kernel parameter is packed into an 8-byte slot; a slot's first bytes hold the value.
_SCALAR_FORMAT = {"float64": "d", "float32": "f4x", "int64": "q", "uint64": "Q", "int32": "i4x",
                  "uint32": "I4x", "int16": "h6x", "uint16": "H6x", "int8": "b7x",
                  "uint8": "B7x", "bool": "?7x"}


class GridKernel:
    """A @cuda.jit kernel of a generated module and its argument types: (dtype name, number
    of dimensions, or None for a scalar) per argument, in order. `launch` runs it with
    `threads` threads per block on the call's stream, compiled for C-contiguous arrays when
    all of the call's are, else for any layout (or always for `layout`)."""

    def __init__(self, dispatcher, threads, types, layout=None):
        self.dispatcher = dispatcher
        self.threads = threads
        self.types = tuple(types)
        self.layout = layout
        fmt = "<"
        slots = 0
        for name, ndim in self.types:
            if ndim is None:
                fmt += _SCALAR_FORMAT[name]
                slots += 1
            else:
                fmt += "QQqqQ" + "q" * (2 * ndim)
                slots += 5 + 2 * ndim
        self._format = struct.Struct(fmt)
        self._slots = slots
        self._buffer = ctypes.create_string_buffer(8 * slots)
        base = ctypes.addressof(self._buffer)
        self._pointers = (ctypes.c_void_p * max(1, slots))(*[base + 8 * i for i in range(slots)])
        self._params = ctypes.addressof(self._pointers)
        self._handles = {}   # layout ("C" or "A") -> the compiled kernel's handle
        self._lock = threading.Lock()

    def launch(self, call, blocks, args):
        """Enqueue the kernel on `blocks` blocks with these arguments (DeviceArray views,
        NumPy scalars and ints) on the call's stream."""
        layout = self.layout or ("C" if call.contiguous else "A")
        handle = self._handles.get(layout)
        if handle is None:
            if _simulated():
                self._simulate(blocks, args)
                return
            handle = self._bind(layout)
        flat = self.parameters(args)
        driver = _DRIVER or _driver()
        with self._lock:   # the argument buffer is shared: the driver copies it at the launch
            self._format.pack_into(self._buffer, 0, *flat)
            (rc,) = driver.launch(handle, blocks, 1, 1, self.threads, 1, 1, 0, call.stream,
                                  self._params, 0)
            if rc in _NO_CONTEXT:   # a thread that has not used the GPU yet
                driver.make_context_current()
                (rc,) = driver.launch(handle, blocks, 1, 1, self.threads, 1, 1, 0,
                                      call.stream, self._params, 0)
        if rc:
            driver.fail(rc, f"launching {self.dispatcher.__name__}")

    def parameters(self, args):
        """The kernel's parameters for these arguments, in order: an array is the seven or
        more values of Numba's array model (`DeviceArray.abi`), a scalar itself."""
        flat = []
        for a in args:
            if type(a) is DeviceArray:
                flat.extend(a.abi)
            else:
                flat.append(a)
        return flat

    def _bind(self, layout):
        """Compile (or load from Numba's cache) the kernel for the argument types in `layout`,
        load it on the device, and keep its handle."""
        with self._lock:
            handle = self._handles.get(layout)
            if handle is None:
                kernel = self.dispatcher.compile(self.signature(layout))
                kernel.bind()
                handle = _driver().function(kernel._codelibrary.get_cufunc().handle)
                self._handles[layout] = handle
        return handle

    def signature(self, layout):
        """The Numba argument types, as Numba types arrays (and scalars) of these dtypes."""
        typeof = self.dispatcher.typeof_pyval
        sig = []
        for name, ndim in self.types:
            if ndim is None:
                sig.append(typeof(np.dtype(name).type(0)))
            else:
                sig.append(typeof(np.empty((1,) * ndim, name)).copy(layout=layout))
        return tuple(sig)

    def _simulate(self, blocks, args):
        from numba import cuda
        fake = type(cuda.device_array(0))
        args = [fake(a.host_view()) if type(a) is DeviceArray else a for a in args]
        self.dispatcher[blocks, self.threads, 0](*args)


_COPY_KERNELS = {}   # (dtype name, number of dimensions) -> GridKernel


def _copy_kernel(dtype, ndim):
    """A kernel that copies an array of any strides into another, element by element (its
    source is made from numbers only)."""
    key = (dtype.name, ndim)
    kernel = _COPY_KERNELS.get(key)
    if kernel is None:
        from numba import cuda
        index = ", ".join(f"i{d}" for d in range(ndim))
        lines = ["def copy(source, target):",
                 "    for e in range(cuda.grid(1), target.size, cuda.gridsize(1)):",
                 "        r = e"]
        for d in range(ndim - 1, 0, -1):
            lines += [f"        i{d} = r % target.shape[{d}]",
                      f"        r = r // target.shape[{d}]"]
        lines += ["        i0 = r", f"        target[{index}] = source[{index}]"]
        namespace = {"cuda": cuda}
        exec("\n".join(lines), namespace)
        kernel = _COPY_KERNELS[key] = GridKernel(
            cuda.jit(namespace["copy"]), 16 if _simulated() else 256, [(dtype.name, ndim)] * 2,
            layout="A")
    return kernel


_NO_CONTEXT = (3, 201)   # CUDA_ERROR_NOT_INITIALIZED, CUDA_ERROR_INVALID_CONTEXT
SCRATCH_KEEP_BYTES = 256 * 2**20   # the pool keeps this much freed memory for later calls

_DRIVER = None
_DRIVER_LOCK = threading.Lock()


def _driver():
    global _DRIVER
    if _DRIVER is None:
        with _DRIVER_LOCK:
            if _DRIVER is None:
                _DRIVER = _Driver()
    return _DRIVER


class _Driver:
    """The CUDA driver functions a call uses, through cuda.bindings (the driver binding that
    numba-cuda itself uses; its calls cost less than ctypes' here), and nbx's stream-ordered
    memory pool for temporaries, on the current device."""

    def __init__(self):
        from cuda.bindings import driver as cu
        from numba import cuda
        cuda.current_context()   # initialises the driver and makes the context current
        self._cu = cu
        self.launch = cu.cuLaunchKernel   # (rc,) = launch(function, grid x, y, z, block
        #                                   x, y, z, shared bytes, stream, params, extra)
        try:
            self.pool = _create_pool(cuda.get_current_device().id)
        except Exception:  # noqa: BLE001  (no memory pools on this device or driver)
            self.pool = None

    def function(self, handle):
        """The CUfunction to launch for a loaded kernel's handle: Numba loads kernels as
        libraries, whose CUkernel handles the driver would resolve to the current context's
        function at every launch (measured: 1.8 us more per launch); resolved once here."""
        if type(handle).__name__ != "CUkernel":
            return int(handle)
        rc, function = self._cu.cuKernelGetFunction(handle)
        if rc:
            self.fail(rc, "looking up a kernel's function")
        return int(function)

    def make_context_current(self):
        from numba import cuda
        cuda.current_context()

    def allocate(self, nbytes, stream):
        rc, ptr = self._cu.cuMemAllocFromPoolAsync(nbytes, self.pool, stream)
        if rc in _NO_CONTEXT:
            self.make_context_current()
            rc, ptr = self._cu.cuMemAllocFromPoolAsync(nbytes, self.pool, stream)
        if rc:
            self.fail(rc, f"allocating {nbytes} bytes of device memory")
        return int(ptr)

    def free(self, ptr, stream):
        (rc,) = self._cu.cuMemFreeAsync(ptr, stream)
        if rc:
            self.fail(rc, "freeing device memory")

    def fail(self, rc, what):
        try:
            text = self._cu.cuGetErrorName(rc)[1].decode()
        except Exception:  # noqa: BLE001  (an unknown code)
            text = f"error {int(rc)}"
        if rc == 2:   # CUDA_ERROR_OUT_OF_MEMORY
            raise MemoryError(f"CUDA: {text} while {what}")
        raise RuntimeError(f"CUDA: {text} while {what}")


def _create_pool(device):
    """A memory pool of nbx's own, so that temporaries are allocated and freed in stream order
    without touching the device's default pool (CuPy, PyTorch and the user may rely on its
    settings); it keeps up to SCRATCH_KEEP_BYTES across synchronisations."""
    from cuda.bindings import driver as cu
    location = cu.CUmemLocation()
    location.type = cu.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
    location.id = device
    props = cu.CUmemPoolProps()
    props.allocType = cu.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
    props.handleTypes = cu.CUmemAllocationHandleType.CU_MEM_HANDLE_TYPE_NONE
    props.location = location
    err, pool = cu.cuMemPoolCreate(props)
    if err != cu.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"CUDA: {err.name} while creating nbx's memory pool")
    (err,) = cu.cuMemPoolSetAttribute(
        pool, cu.CUmemPool_attribute.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
        cu.cuuint64_t(SCRATCH_KEEP_BYTES))
    if err != cu.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"CUDA: {err.name} while setting up nbx's memory pool")
    return pool


# streams ----------------------------------------------------------------------------------

def _stream(cuda, name, stream, kind, first, sim):
    """The Numba stream (or 0, the default stream) the call's work is enqueued on: stream=
    (a Numba, CuPy or PyTorch stream, anything with __cuda_stream__, or a CUstream handle as
    an int), else the current stream of the library whose arrays came in."""
    if stream is None:
        ptr = _current_stream(kind, first)
    elif type(stream).__module__.split(".")[0] in ("numba", "numba_cuda"):
        return stream
    elif isinstance(stream, int) and not isinstance(stream, bool):
        ptr = stream
    else:
        ptr = getattr(stream, "cuda_stream", None)      # torch.cuda.Stream
        if ptr is None:
            ptr = getattr(stream, "ptr", None)          # cupy.cuda.Stream
        if ptr is None and hasattr(stream, "__cuda_stream__"):
            ptr = stream.__cuda_stream__()[1]           # the CUDA stream protocol
        if not isinstance(ptr, int):
            given = f"{type(stream).__module__}.{type(stream).__qualname__}"
            raise TypeError(f"{name}(): stream must be a Numba, CuPy or PyTorch stream (or a "
                            f"CUstream handle as an int), got {given}")
    if ptr == 0 or sim:   # the simulator runs everything at once: any stream is the same
        return 0
    return cuda.external_stream(ptr)


def _handle(stream):
    """The CUstream handle of what _stream returned (0: the default stream)."""
    if isinstance(stream, int) or _simulated():
        return 0
    return int(stream.handle)


def _current_stream(kind, first):
    if kind == "cupy":
        return sys.modules["cupy"].cuda.get_current_stream().ptr
    if kind == "torch":
        torch = sys.modules["torch"]
        raw = getattr(getattr(torch, "_C", None), "_cuda_getCurrentRawStream", None)
        # (that one makes no Stream object)
        if raw is not None:
            return raw(first.get_device())
        return torch.cuda.current_stream(first.device).cuda_stream
    return 0


def _synchronize(stream):
    if not isinstance(stream, int):
        stream.synchronize()
