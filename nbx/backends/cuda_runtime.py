"""run (CUDA targets): checked arguments -> device arrays -> the launcher -> results where the
inputs live.

A call of a `cuda` or `cuda-ufunc` kernel comes here after nbx/callconv.py has checked its
arguments (arrays in GPU memory arrive wrapped in callconv's `DeviceValue`). NumPy inputs are
copied to the device once; device inputs (anything with `__cuda_array_interface__`: Numba
device arrays, CuPy, PyTorch) are used in place. The generated launcher

    launch_<kernel>(args, outs, err, lengths, stream)

only enqueues kernels. When no input is a device array, the results are copied back and
returned as NumPy; otherwise they are allocated like the first device input (by CuPy, by
PyTorch, else by Numba) and returned as that kind of array without touching the host.

`nbxc compile` copies this file verbatim into standalone CUDA modules: it imports NumPy only,
and numba.cuda when a call needs it; the kernel object it is given is a callconv.KernelBase.
"""

import sys

import numpy as np


class TargetUnavailable(RuntimeError):
    """A CUDA target asked for where it cannot run: numba.cuda missing, or no GPU."""


_STATUS = None   # (available, why), probed once per process


def available():
    """(True, what runs the kernels) or (False, what is missing), probed once."""
    global _STATUS
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


# the call ---------------------------------------------------------------------------------

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
    err = cuda.to_device(np.zeros(1, np.int64), stream=stream) if can_fail \
        else _never_set_flag(cuda)
    spec.entry(args, outs, err, [lengths[d] for d in spec.dims], stream)

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
                user, dev = _allocate(cuda, kind, first, shape, dtype, stream, sim)
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
        extent = _extent(dev, sim)
        _refuse_shared(kernel, given, i, extent, taken)
        if extents is None:
            extents = [_extent(d, sim) for d in devices]
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


# arrays -----------------------------------------------------------------------------------

def _kind(obj):
    """Which library a device array belongs to: results are made of the same kind."""
    top = type(obj).__module__.split(".")[0]
    return top if top in ("cupy", "torch") else "numba"


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


def _to_device(cuda, a, stream):
    if a.size == 0:
        return cuda.device_array(a.shape, a.dtype, stream=stream)
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        a = np.ascontiguousarray(a)   # a transfer needs one block of memory
    return cuda.to_device(a, stream=stream)


def _as_device(cuda, obj, sim):
    """A Numba device array over the memory of a device array of any kind (no copy)."""
    if getattr(obj, "__cuda_ndarray__", False) is True:
        return obj
    if sim:
        return _simulated_view(cuda, obj)
    # The launches go to the producer's current stream (or stream=), so its pending work
    # comes first without a sync; leaving the interface's stream out also saves Numba making
    # an external stream object per array (as_cuda_array costs ~15 us on an H100 host).
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
    cai = obj.__cuda_array_interface__
    dtype = np.dtype(cai["typestr"])
    shape = tuple(cai["shape"])
    if 0 in shape:
        host = np.empty(shape, dtype)
    else:
        host = np.asarray(_HostInterface({"shape": shape, "typestr": dtype.str,
                                          "data": tuple(cai["data"]),
                                          "strides": cai.get("strides"), "version": 3}, obj))
    return type(cuda.device_array(0))(host)   # the simulator's FakeCUDAArray


def _allocate(cuda, kind, first, shape, dtype, stream, sim):
    """A new result like `first`: (what the caller gets, the Numba device array over it)."""
    if kind == "cupy":
        user = sys.modules["cupy"].empty(shape, dtype)
        return user, _as_device(cuda, user, sim)
    if kind == "torch":
        torch = sys.modules["torch"]
        torch_dtype = getattr(torch, dtype.name, None)
        if torch_dtype is not None:
            user = torch.empty(shape, dtype=torch_dtype, device=first.device)
            return user, _as_device(cuda, user, sim)
    dev = cuda.device_array(shape, dtype, stream=stream)
    return dev, dev


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


def _extent(dev, sim):
    """The byte range a device array spans, (lo, hi), or None when it is empty."""
    desc = dev.__array_interface__ if sim else dev.__cuda_array_interface__
    shape = desc["shape"]
    if 0 in shape:
        return None
    itemsize = np.dtype(desc["typestr"]).itemsize
    strides = desc.get("strides")
    if strides is None:   # C-contiguous
        size = itemsize
        for n in shape:
            size *= n
        lo, hi = 0, size
    else:
        lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
        hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + itemsize
    base = desc["data"][0]
    return base + lo, base + hi


def _overlap(a, b):
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


_NEVER_SET = []   # the zero error flag given to kernels that never read or write it


def _never_set_flag(cuda):
    # Such a kernel only receives the pointer, so one flag serves every device and context.
    if not _NEVER_SET:
        _NEVER_SET.append(cuda.to_device(np.zeros(1, np.int64)))
    return _NEVER_SET[0]


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


def _current_stream(kind, first):
    if kind == "cupy":
        return sys.modules["cupy"].cuda.get_current_stream().ptr
    if kind == "torch":
        return sys.modules["torch"].cuda.current_stream(first.device).cuda_stream
    return 0


def _synchronize(stream):
    if not isinstance(stream, int):
        stream.synchronize()
