"""Calls of CUDA-target kernels under Numba's CUDA simulator (run by test_cuda_calls.py in a
process of its own, with NUMBA_ENABLE_CUDASIM=1 set before Numba is imported).

The runtime (nbx/backends/cuda_runtime.py) is tested on its own: a stand-in "cuda" backend
returns hand-written launchers with the generated ones' signature,
`launch(call, args, outs, err, lengths)`, which launch hand-written kernels through the
runtime's GridKernel as generated modules do, and records what each launch was given. Fake
`cupy` and `torch` modules give arrays with `__cuda_array_interface__` over host memory
(which is what device memory is in the simulator), to check that results come back as the
first device input's kind of array.
"""

from __future__ import annotations

import os
import sys
import types

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":  # pragma: no cover
    raise RuntimeError("run through tests/test_cuda_calls.py (needs NUMBA_ENABLE_CUDASIM=1)")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from numba import cuda  # noqa: E402

import nbx  # noqa: E402
import nbx.backends  # noqa: E402
from nbx import runtime  # noqa: E402
from nbx.backends import cuda_runtime  # noqa: E402
from nbx.backends.cuda_runtime import DeviceArray, GridKernel  # noqa: E402

SRC = '''
kernel axpb(x: f64[n], a: f64) -> f64[n]:
    return 2*x + a

kernel scale(x: T[n], a: T) -> T[n]:
    return x * a

kernel total(x: f64[n]) -> f64:
    return sum(x)

kernel both(x: f64[n], y: f64[n]) -> (f64[n], f64):
    return x + y, sum(x)

kernel ipow(x: i64[n], k: i64) -> i64[n]:
    return x ** k

kernel addrow(A: f32[m, k], v: f32[k]) -> f32[m, k]:
    return A + v
'''

# hand-written stand-ins for the generated launchers ---------------------------------------
LAUNCHES = []   # (kernel, args, outs, err, lengths, call) of every launch


@cuda.jit
def _axpb(x, a, y):
    i = cuda.grid(1)
    if i < x.shape[0]:
        y[i] = 2 * x[i] + a


@cuda.jit
def _scale(x, a, y):
    i = cuda.grid(1)
    if i < x.shape[0]:
        y[i] = x[i] * a


@cuda.jit
def _total(x, out):
    if cuda.grid(1) == 0:
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i]
        out[0] = s


@cuda.jit
def _add(x, y, out):
    i = cuda.grid(1)
    if i < x.shape[0]:
        out[i] = x[i] + y[i]


@cuda.jit
def _ipow(x, k, y, err):
    i = cuda.grid(1)
    if i < x.shape[0]:
        if k < 0:
            err[0] = 1
        else:
            r = 1
            for _ in range(k):
                r *= x[i]
            y[i] = r


@cuda.jit
def _addrow(A, v, out):
    for e in range(cuda.grid(1), A.shape[0] * A.shape[1], cuda.gridsize(1)):
        i, j = e // A.shape[1], e % A.shape[1]
        out[i, j] = A[i, j] + v[j]


F64, F64V, I64V = ("float64", None), ("float64", 1), ("int64", 1)
_axpb = GridKernel(_axpb, 32, (F64V, F64, F64V))
_scale_f64 = GridKernel(_scale, 32, (F64V, F64, F64V))
_scale_f32 = GridKernel(_scale, 32, (("float32", 1), ("float32", None), ("float32", 1)))
_total = GridKernel(_total, 1, (F64V, F64V))
_add = GridKernel(_add, 32, (F64V, F64V, F64V))
_ipow = GridKernel(_ipow, 32, (I64V, ("int64", None), I64V, I64V))
_addrow = GridKernel(_addrow, 32, (("float32", 2), ("float32", 1), ("float32", 2)))


def _blocks(n, threads=32):
    return (n + threads - 1) // threads


def launch_axpb(call, args, outs, err, lengths):
    (n,) = lengths
    if n:
        call.launch(_axpb, _blocks(n), (args[0], args[1], outs[0]))


def launch_scale(call, args, outs, err, lengths):
    (n,) = lengths
    if n:
        kernel = _scale_f32 if args[0].dtype == np.float32 else _scale_f64
        call.launch(kernel, _blocks(n), (args[0], args[1], outs[0]))


def launch_total(call, args, outs, err, lengths):
    call.launch(_total, 1, (args[0], outs[0]))


def launch_both(call, args, outs, err, lengths):
    (n,) = lengths
    if n:
        call.launch(_add, _blocks(n), (args[0], args[1], outs[0]))
    call.launch(_total, 1, (args[0], outs[1]))


def launch_ipow(call, args, outs, err, lengths):
    (n,) = lengths
    if n:
        call.launch(_ipow, _blocks(n), (args[0], args[1], outs[0], err))


def launch_addrow(call, args, outs, err, lengths):
    m, k = lengths
    if m and k:
        call.launch(_addrow, 4, (args[0], args[1], outs[0]))


def _recording(name, launch):
    def launcher(call, args, outs, err, lengths):
        LAUNCHES.append((name, list(args), list(outs), err, list(lengths), call))
        launch(call, args, outs, err, lengths)
    return launcher


class FakeCudaBackend:
    """The parts of a backend module that Compiler.specialize uses."""

    @staticmethod
    def emit(plan, *, origin, fastmath, parallel, cache):
        return f"# stand-in for the generated CUDA module of {plan.kernel.name}\n"

    @staticmethod
    def load(source, plan, *, cache):
        name = plan.kernel.name
        return None, _recording(name, globals()[f"launch_{name}"]), None, False


_real_load_backend = nbx.backends.load_backend


def _load_backend(target):
    return FakeCudaBackend if target == "cuda" else _real_load_backend(target)


nbx.backends.load_backend = _load_backend
mod = nbx.compile(SRC, target="cuda", filename="sim.nbx")


@pytest.fixture(autouse=True)
def _clear_launches():
    LAUNCHES.clear()


def launched():
    """The one launch of the call just made."""
    assert len(LAUNCHES) == 1, LAUNCHES
    return LAUNCHES[0]


def is_device(a):
    return getattr(a, "__cuda_ndarray__", False) is True


def is_view(a):
    """What launchers see of an array: a view of device memory."""
    return type(a) is DeviceArray


# fake CuPy and PyTorch: arrays with __cuda_array_interface__ over host memory --------------
class _CAIArray:
    def __init__(self, host, device=None):
        self.host = host
        self.device = device

    @property
    def __cuda_array_interface__(self):
        desc = dict(self.host.__array_interface__)
        return {"shape": self.host.shape, "typestr": self.host.dtype.str,
                "data": desc["data"], "strides": desc.get("strides"), "version": 3,
                "stream": None}

    @property
    def shape(self):
        return self.host.shape

    def reshape(self, *shape):
        return type(self)(self.host.reshape(*shape), self.device)


def _fake_module(name, array_name):
    m = types.ModuleType(name)
    cls = type(array_name, (_CAIArray,), {"__module__": name})
    setattr(m, array_name, cls)
    return m, cls


cupy, CupyArray = _fake_module("cupy", "ndarray")
cupy.empty = lambda shape, dtype: CupyArray(np.full(shape, -99, dtype))
cupy.asarray = lambda a: CupyArray(np.array(a))
cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))

torch, TorchTensor = _fake_module("torch", "Tensor")
torch.float64, torch.float32, torch.int64 = "f64", "f32", "i64"
_TORCH_DTYPES = {"f64": np.float64, "f32": np.float32, "i64": np.int64}
torch.empty = lambda shape, dtype, device: TorchTensor(np.full(shape, -99, _TORCH_DTYPES[dtype]),
                                                       device)
torch.cuda = types.SimpleNamespace(
    current_stream=lambda device: types.SimpleNamespace(cuda_stream=0))
sys.modules["cupy"] = cupy
sys.modules["torch"] = torch


# NumPy in, NumPy out ----------------------------------------------------------------------
def test_numpy_inputs_are_copied_once_and_results_come_back_as_numpy():
    x = np.arange(5.0)
    y = mod.axpb(x, 1.5)
    assert type(y) is np.ndarray and y.dtype == np.float64
    np.testing.assert_array_equal(y, 2 * x + 1.5)
    _, args, outs, err, lengths, call = launched()
    assert is_view(args[0]) and is_device(args[0].owner)
    assert type(args[1]) is np.float64 and args[1] == 1.5
    assert is_view(outs[0]) and outs[0].shape == (5,)
    assert err.shape == (1,) and err.dtype == np.int64 and lengths == [5]
    assert call.stream == 0 and call.numba_stream() == 0 and call.contiguous


def test_an_array_given_twice_is_copied_once():
    x = np.arange(4.0)
    s, t = mod.both(x, x)
    np.testing.assert_array_equal(s, 2 * x)
    assert t == 6.0
    args = launched()[1]
    assert args[0].owner is args[1].owner


def test_strided_and_fortran_order_inputs():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    v = np.arange(3, dtype=np.float32)
    for A in (base[:, ::2], np.asfortranarray(base[:, :3]), base[::-1, 1:4]):
        np.testing.assert_array_equal(mod.addrow(A, v), A + v)
    x = np.arange(10.0)[::-3]
    np.testing.assert_array_equal(mod.axpb(x, 0.0), 2 * x)


def test_scalar_results_are_numpy_scalars():
    r = mod.total(np.arange(4.0))
    assert type(r) is np.float64 and r == 6.0
    s, t = mod.both(np.ones(3), np.ones(3))
    assert type(s) is np.ndarray and type(t) is np.float64 and t == 3.0


def test_type_variables_bind_and_convert_as_on_the_cpu():
    x = np.arange(4, dtype=np.float32)
    y = mod.scale(x, 2.0)
    assert y.dtype == np.float32
    args = launched()[1]
    assert type(args[1]) is np.float32
    np.testing.assert_array_equal(y, x * 2)


def test_empty_dimensions():
    y = mod.axpb(np.empty(0), 1.0)
    assert type(y) is np.ndarray and y.shape == (0,)
    assert mod.total(np.empty(0)) == 0.0
    A = mod.addrow(np.empty((0, 3), np.float32), np.ones(3, np.float32))
    assert A.shape == (0, 3)
    d = cuda.to_device(np.empty(0))
    e = mod.axpb(d, 1.0)
    assert is_device(e) and e.shape == (0,)


# device arrays in, device arrays out ------------------------------------------------------
def test_device_inputs_are_used_in_place_and_results_stay_on_the_device():
    x = np.arange(6.0)
    d = cuda.to_device(x)
    y = mod.axpb(d, 1.0)
    assert is_device(y) and y.shape == (6,) and y.dtype == np.float64
    args = launched()[1]
    assert args[0].owner is d
    np.testing.assert_array_equal(y.copy_to_host(), 2 * x + 1)


def test_scalar_result_of_device_inputs_is_a_0d_device_array():
    r = mod.total(cuda.to_device(np.arange(4.0)))
    assert is_device(r) and r.shape == () and r.copy_to_host()[()] == 6.0


def test_mixed_host_and_device_inputs():
    x = np.arange(4.0)
    y = np.ones(4)
    s, t = mod.both(x, cuda.to_device(y))   # the first device input decides: device results
    assert is_device(s) and is_device(t)
    np.testing.assert_array_equal(s.copy_to_host(), x + y)
    assert t.copy_to_host()[()] == 6.0
    args = launched()[1]
    assert is_view(args[0]) and is_view(args[1])


def test_zero_dim_device_array_for_a_scalar_parameter():
    a = cuda.to_device(np.array(3.0))
    y = mod.axpb(np.arange(3.0), a)
    np.testing.assert_array_equal(y, [3.0, 5.0, 7.0])
    assert type(launched()[1][1]) is np.float64


def test_cupy_like_inputs_give_cupy_like_results():
    x = CupyArray(np.arange(5.0))
    y = mod.axpb(x, 1.0)
    assert type(y) is CupyArray
    np.testing.assert_array_equal(y.host, 2 * np.arange(5.0) + 1)
    r = mod.total(x)
    assert type(r) is CupyArray and r.shape == () and r.host[()] == 10.0


def test_torch_like_inputs_give_torch_like_results_on_the_same_device():
    x = TorchTensor(np.arange(3.0), device="cuda:0")
    y = mod.scale(x, 2.0)
    assert type(y) is TorchTensor and y.device == "cuda:0"
    np.testing.assert_array_equal(y.host, [0.0, 2.0, 4.0])


def test_first_device_input_decides_the_kind():
    s, _ = mod.both(np.ones(2), CupyArray(np.ones(2)))
    assert type(s) is CupyArray
    s, _ = mod.both(TorchTensor(np.ones(2), "cuda:0"), CupyArray(np.ones(2)))
    assert type(s) is TorchTensor


# out= ------------------------------------------------------------------------------------
def test_out_host_array_is_filled_and_returned():
    out = np.empty(4)
    r = mod.axpb(np.arange(4.0), 1.0, out=out)
    assert r is out
    np.testing.assert_array_equal(out, [1.0, 3.0, 5.0, 7.0])
    strided = np.zeros(8)[::2]
    assert mod.axpb(np.arange(4.0), 0.0, out=strided) is strided
    np.testing.assert_array_equal(strided, [0.0, 2.0, 4.0, 6.0])


def test_out_device_array_is_written_in_place():
    out = cuda.device_array(4)
    r = mod.axpb(cuda.to_device(np.arange(4.0)), 1.0, out=out)
    assert r is out
    assert launched()[2][0].owner is out
    np.testing.assert_array_equal(out.copy_to_host(), [1.0, 3.0, 5.0, 7.0])


def test_out_device_array_with_host_inputs():
    out = cuda.device_array(3)
    assert mod.axpb(np.arange(3.0), 0.0, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), [0.0, 2.0, 4.0])


def test_out_tuple_mixes_host_device_and_none():
    x = cuda.to_device(np.arange(3.0))
    s_out = np.empty(3)
    s, t = mod.both(x, x, out=(s_out, None))
    assert s is s_out and is_device(t) and t.copy_to_host()[()] == 3.0
    np.testing.assert_array_equal(s_out, [0.0, 2.0, 4.0])
    t_out = cuda.device_array(())
    s, t = mod.both(np.ones(2), np.ones(2), out=(None, t_out))
    assert t is t_out and t_out.copy_to_host()[()] == 2.0
    assert is_device(s)   # a device out= with host inputs: results stay on the device


def test_scalar_out_on_the_host():
    t_out = np.empty(())
    s, t = mod.both(np.ones(2), np.ones(2), out=(None, t_out))
    assert t is t_out and t_out[()] == 2.0 and type(s) is np.ndarray


def test_overlapping_device_out_gives_the_fresh_array_result():
    x = cuda.to_device(np.arange(6.0))
    r = mod.axpb(x, 1.0, out=x)
    assert r is x
    assert launched()[2][0].owner is not x
    np.testing.assert_array_equal(x.copy_to_host(), 2 * np.arange(6.0) + 1)
    h = np.arange(8.0)
    x = cuda.to_device(h)
    out = x[1:7]   # shares memory with x: computing in place would read written values
    LAUNCHES.clear()
    mod.axpb(x[0:6], 0.0, out=out)
    assert launched()[2][0].owner is not out
    np.testing.assert_array_equal(x.copy_to_host(), [0, 0, 2, 4, 6, 8, 10, 7])


def test_overlapping_cupy_like_out():
    h = np.arange(5.0)
    x = CupyArray(h)
    assert mod.axpb(x, 1.0, out=x) is x
    np.testing.assert_array_equal(h, 2 * np.arange(5.0) + 1)


def test_overlapping_host_out_is_fine():
    x = np.arange(4.0)
    assert mod.axpb(x, 1.0, out=x) is x
    np.testing.assert_array_equal(x, [1.0, 3.0, 5.0, 7.0])


def test_out_errors():
    x = cuda.to_device(np.arange(3.0))
    with pytest.raises(TypeError, match=r"axpb\(\): out must be a float64 array of shape "
                       r"\(3,\), got .*FakeCUDAArray float32 of shape \(3,\) on the GPU"):
        mod.axpb(x, 1.0, out=cuda.device_array(3, np.float32))
    with pytest.raises(TypeError, match=r"out must be a float64 array of shape \(3,\), got "
                       r"cupy.ndarray float64 of shape \(4,\) on the GPU"):
        mod.axpb(x, 1.0, out=CupyArray(np.empty(4)))
    with pytest.raises(TypeError, match=r"both\(\): out must be a tuple of 2 arrays"):
        mod.both(x, x, out=cuda.device_array(3))
    shared = cuda.device_array(4)
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] overlap"):
        mod.both(np.ones(4), np.ones(4), out=(shared, shared[0:1].reshape(())))
    ro = np.empty(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"axpb\(\): out is read-only"):
        mod.axpb(x, 1.0, out=ro)
    with pytest.raises(ValueError, match=r"axpb\(\): out is read-only"):
        mod.axpb(x, 1.0, out=CupyArray(ro))   # the interface's read-only bit


# errors ---------------------------------------------------------------------------------
def test_dtype_and_rank_errors_name_the_device_array():
    with pytest.raises(TypeError, match=r"^axpb\(\): x must be a float64 array with 1 "
                       r"dimension \(n\), got cupy.ndarray float32 of shape \(5,\) on the GPU$"):
        mod.axpb(CupyArray(np.ones(5, np.float32)), 1.0)
    with pytest.raises(TypeError, match=r"x must be a float64 array with 1 dimension \(n\), "
                       r"got .*FakeCUDAArray float64 of shape \(2, 2\) on the GPU"):
        mod.axpb(cuda.to_device(np.ones((2, 2))), 1.0)
    with pytest.raises(TypeError, match=r"scale\(\): a must be a float32 scalar, got "
                       r"torch.Tensor float64 of shape \(\) on the GPU \(T is float32, "
                       r"bound by x\)"):
        mod.scale(CupyArray(np.ones(2, np.float32)), TorchTensor(np.array(1.0)))
    with pytest.raises(ValueError, match=r"both\(\): dimension n is 3 in x but 2 in y"):
        mod.both(cuda.to_device(np.ones(3)), CupyArray(np.ones(2)))


def test_device_array_binds_a_type_variable():
    y = mod.scale(CupyArray(np.arange(3, dtype=np.float32)), 2)
    assert type(y) is CupyArray and y.host.dtype == np.float32
    assert type(launched()[1][1]) is np.float32


def test_negative_integer_power_raises_the_cpu_message():
    with pytest.raises(ValueError, match=r"^ipow\(\): integers to negative integer powers "
                       "are not allowed$"):
        mod.ipow(np.arange(3), -1)
    with pytest.raises(ValueError, match="negative integer powers"):
        mod.ipow(cuda.to_device(np.arange(3)), -2)
    np.testing.assert_array_equal(mod.ipow(np.arange(4), 2), [0, 1, 4, 9])


def test_can_fail_comes_from_the_plan():
    mod.axpb(np.ones(2), 1.0)
    mod.ipow(np.ones(2, np.int64), 1)
    assert mod.axpb.specialize().can_fail is False
    assert mod.ipow.specialize().can_fail is True
    # a kernel that cannot fail gets the same never-written flag every call
    mod.axpb(np.ones(2), 1.0)
    assert LAUNCHES[2][3] is LAUNCHES[0][3]


def test_the_cpu_empty_reduction_checks_apply():
    globals()["launch_lo"] = launch_total   # never reached: the check comes first
    src = "kernel lo(x: f64[n]) -> f64:\n    return min(x)\n"
    m = nbx.compile(src, target="cuda")
    with pytest.raises(ValueError, match=r"lo\(\): min\(\) over dimension n of length 0"):
        m.lo(np.empty(0))


# stream= --------------------------------------------------------------------------------
def test_stream_keyword_reaches_the_launcher():
    s = cuda.stream()
    y = mod.axpb(cuda.to_device(np.arange(3.0)), 1.0, stream=s)
    assert launched()[5].numba_stream() is s
    np.testing.assert_array_equal(y.copy_to_host(), [1.0, 3.0, 5.0])
    LAUNCHES.clear()
    np.testing.assert_array_equal(mod.axpb(np.arange(3.0), 1.0, stream=s), [1.0, 3.0, 5.0])
    assert launched()[5].numba_stream() is s


def test_foreign_streams_and_bad_streams():
    # CuPy/PyTorch streams are turned into Numba external streams (the default stream in
    # the simulator, which has no external streams)
    mod.axpb(np.arange(2.0), 1.0, stream=types.SimpleNamespace(ptr=1234))
    mod.axpb(np.arange(2.0), 1.0, stream=types.SimpleNamespace(cuda_stream=1234))
    mod.axpb(np.arange(2.0), 1.0, stream=0)
    assert [launch[5].stream for launch in LAUNCHES] == [0, 0, 0]
    with pytest.raises(TypeError, match=r"axpb\(\): stream must be a Numba, CuPy or PyTorch "
                       "stream"):
        mod.axpb(np.arange(2.0), 1.0, stream="fast")


def test_a_parameter_named_stream_keeps_its_keyword():
    calls = []

    def launch_flow(call, args, outs, err, lengths):
        calls.append((args, call.stream))
        call.launch(_axpb, 1, (args[0], args[1], outs[0]))

    globals()["launch_flow"] = launch_flow
    m = nbx.compile("kernel flow(x: f64[n], stream: f64) -> f64[n]:\n    return 2*x + stream\n",
                    target="cuda")
    np.testing.assert_array_equal(m.flow(np.ones(2), stream=3.0), [5.0, 5.0])
    assert calls[0][1] == 0 and calls[0][0][1] == 3.0


# reference and availability -------------------------------------------------------------
def test_reference_takes_device_arrays():
    d = cuda.to_device(np.arange(3.0))
    np.testing.assert_array_equal(mod.axpb.reference(d, cuda.to_device(np.array(1.0))),
                                  [1.0, 3.0, 5.0])


def test_simulator_counts_as_available():
    ok, what = cuda_runtime.available()
    assert ok and "simulator" in what


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cuda_runtime, "_STATUS", (False, "no CUDA GPU found (no driver)"))
    m = nbx.compile(SRC, target="cuda")
    with pytest.raises(nbx.TargetUnavailable, match=r'^target "cuda" cannot run here: no CUDA '
                       r'GPU found \(no driver\); use target="cpu"'):
        m.axpb(np.ones(2), 1.0)


# target="auto" --------------------------------------------------------------------------
auto = nbx.compile(SRC, target="auto", filename="auto.nbx")


def test_auto_takes_the_gpu_for_device_arrays():
    d = cuda.to_device(np.arange(3.0))
    target, why = auto.axpb.target_for(d, 1.0)
    assert target == "cuda" and why.startswith("x is ") and why.endswith("on the GPU")
    y = auto.axpb(d, 1.0)
    assert is_device(y) and len(LAUNCHES) == 1
    y = auto.both(np.ones(2), CupyArray(np.ones(2)))[0]
    assert type(y) is CupyArray
    assert auto.both.target_for(np.ones(2), y=CupyArray(np.ones(2)))[1].startswith("y is ")
    assert auto.axpb.target_for(np.ones(2), 1.0, out=cuda.device_array(2))[0] == "cuda"


def test_auto_takes_the_cpu_for_small_numpy_inputs():
    target, why = auto.axpb.target_for(np.ones(8), 1.0)
    assert target == "cpu" and why.startswith("NumPy inputs stay on the CPU")
    y = auto.axpb(np.ones(8), 1.0, stream=cuda.stream())
    assert type(y) is np.ndarray and LAUNCHES == []
    np.testing.assert_array_equal(y, np.full(8, 3.0))


def test_auto_takes_the_gpu_for_large_numpy_inputs(monkeypatch):
    monkeypatch.setattr(runtime, "AUTO_GPU_BYTES", 64)
    target, why = auto.axpb.target_for(np.ones(8), 1.0)
    assert target == "cuda" and "at least AUTO_GPU_BYTES = 64 B" in why
    y = auto.axpb(np.ones(8), 1.0)
    assert type(y) is np.ndarray and len(LAUNCHES) == 1
    assert auto.axpb.target_for(np.ones(7), 1.0)[0] == "cpu"


def test_auto_explain_says_where_a_call_goes(monkeypatch):
    text = auto.axpb.explain(cuda.to_device(np.ones(3)), 1.0)
    assert "stage" in text and text.splitlines()[-1].startswith("target auto: cuda (x is ")
    assert auto.axpb.explain(np.ones(3), 1.0).splitlines()[-1].startswith(
        "target auto: cpu (NumPy inputs stay on the CPU")
    assert auto.axpb.explain().splitlines()[-1].startswith(
        "target auto: cuda or cpu (cuda for device arrays, else cpu; Numba's CUDA simulator")
    monkeypatch.setattr(cuda_runtime, "available", lambda: (False, "no CUDA GPU found"))
    monkeypatch.setattr(runtime, "AUTO_GPU_BYTES", 1)
    assert auto.axpb.explain().splitlines()[-1] == (
        "target auto: cpu (no GPU available: no CUDA GPU found)")
    assert auto.axpb.target_for(np.ones(3), 1.0) == ("cpu", "no GPU available: no CUDA GPU "
                                                            "found")
    np.testing.assert_array_equal(auto.axpb(np.ones(3), 1.0), np.full(3, 3.0))
    assert LAUNCHES == []


# the fast path: device arrays of a compiled binding, checked by identity only --------------
@pytest.fixture
def checked_path_fails(monkeypatch):
    """Calls that reach the checked path raise: what still works took the fast path."""
    mod.ipow(np.arange(2), 1)   # compiled, so that only can_fail keeps it off the fast path
    mod.scale(np.ones(2, np.float32), np.float32(1))

    def refuse(*args, **kwargs):
        raise AssertionError("the checked path ran")
    for kernel in mod.kernels.values():
        monkeypatch.setattr(kernel, "_run_device", refuse)
    LAUNCHES.clear()


def test_device_calls_take_the_fast_path(checked_path_fails):
    x = np.arange(6.0)
    y = mod.axpb(cuda.to_device(x), 1.0)    # the binding was compiled by earlier calls
    assert is_device(y)
    np.testing.assert_array_equal(y.copy_to_host(), 2 * x + 1)
    _, args, outs, err, lengths, call = launched()
    assert is_view(args[0]) and args[1] == 1.0 and lengths == [6] and call.contiguous
    assert err is cuda_runtime.never_set_flag()
    LAUNCHES.clear()
    s, t = mod.both(CupyArray(x), CupyArray(np.ones(6)))
    assert type(s) is CupyArray and type(t) is CupyArray and t.shape == ()
    np.testing.assert_array_equal(s.host, x + 1)
    assert t.host[()] == 15.0
    LAUNCHES.clear()
    y = mod.scale(TorchTensor(np.arange(3, dtype=np.float32), "cuda:0"), np.float32(2))
    assert type(y) is TorchTensor and y.device == "cuda:0"
    np.testing.assert_array_equal(y.host, [0.0, 2.0, 4.0])


def test_strided_device_views_are_not_contiguous(checked_path_fails):
    A = np.arange(40, dtype=np.float32).reshape(5, 8)
    v = np.arange(4, dtype=np.float32)
    y = mod.addrow(CupyArray(A[:, ::2]), CupyArray(v))
    np.testing.assert_array_equal(y.host, A[:, ::2] + v)
    assert not launched()[5].contiguous


@pytest.mark.parametrize("call", [
    lambda: mod.axpb(np.arange(3.0), 1.0),                        # a NumPy array
    lambda: mod.axpb(cuda.to_device(np.arange(3.0)), 1),          # an int for a float64
    lambda: mod.axpb(cuda.to_device(np.arange(3.0)), a=1.0),      # a keyword
    lambda: mod.axpb(cuda.to_device(np.arange(3.0)), 1.0, out=np.empty(3)),   # host out=
    lambda: mod.axpb(cuda.to_device(np.arange(3.0)), 1.0, out=cuda.device_array(3, np.float32)),
    lambda: mod.both(CupyArray(np.ones(3)), CupyArray(np.ones(3)), out=(CupyArray(np.ones(3)),
                                                                        None)),
    lambda: mod.axpb(CupyArray(np.ones(3)), 1.0, out=CupyArray(READ_ONLY)),
    lambda: mod.axpb(cuda.to_device(np.arange(3.0)), 1.0, stream=0),
    lambda: mod.axpb(cuda.to_device(np.arange(3, dtype=np.float32)), 1.0),   # another dtype
    lambda: mod.axpb(cuda.to_device(np.ones((2, 2))), 1.0),       # another rank
    lambda: mod.both(CupyArray(np.ones(3)), CupyArray(np.ones(2))),   # lengths disagree
    lambda: mod.ipow(cuda.to_device(np.arange(3)), 2),            # the kernel can fail
    lambda: mod.axpb(cuda.to_device(np.arange(3.0))),             # an argument missing
    lambda: mod.scale(CupyArray(np.ones(2, np.float16)), np.float16(2)),   # unbound dtype
], ids=["numpy", "int-scalar", "keyword", "host-out", "out-dtype", "out-none", "out-read-only",
        "stream", "dtype", "rank", "lengths", "can-fail", "missing", "binding"])
def test_other_calls_take_the_checked_path(checked_path_fails, call):
    # the checked path's own errors, or its stand-in's
    with pytest.raises((AssertionError, TypeError, ValueError),
                       match="the checked path ran|must be|missing argument|dimension n is"):
        call()


READ_ONLY = np.ones(3)
READ_ONLY.flags.writeable = False


def test_device_out_takes_the_fast_path(checked_path_fails):
    x = cuda.to_device(np.arange(4.0))
    out = cuda.device_array(4)
    assert mod.axpb(x, 1.0, out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), [1.0, 3.0, 5.0, 7.0])
    assert launched()[2][0].owner is out
    s_out, t_out = CupyArray(np.empty(4)), CupyArray(np.empty(()))
    s, t = mod.both(CupyArray(np.ones(4)), CupyArray(np.ones(4)), out=(s_out, t_out))
    assert s is s_out and t is t_out and t_out.host[()] == 4.0


def test_overlapping_out_takes_the_checked_path(checked_path_fails):
    x = cuda.to_device(np.arange(4.0))
    with pytest.raises(AssertionError, match="the checked path ran"):
        mod.axpb(x, 1.0, out=x)
    h = np.arange(8.0)
    with pytest.raises(AssertionError, match="the checked path ran"):
        mod.axpb(CupyArray(h[:4]), 1.0, out=CupyArray(h[3:7]))
    s_out = CupyArray(np.empty(4))
    with pytest.raises(AssertionError, match="the checked path ran"):   # outs share memory
        mod.both(CupyArray(np.ones(4)), CupyArray(np.ones(4)),
                 out=(s_out, CupyArray(s_out.host[1:2].reshape(()))))


def test_empty_reductions_with_no_value_take_the_checked_path():
    globals()["launch_lo"] = launch_total
    m = nbx.compile("kernel lo(x: f64[n]) -> f64:\n    return min(x)\n", target="cuda")
    m.lo(cuda.to_device(np.ones(3)))   # compiles the binding: device calls are fast from now
    with pytest.raises(ValueError, match=r"lo\(\): min\(\) over dimension n of length 0"):
        m.lo(cuda.to_device(np.empty(0)))


# what launches are made of --------------------------------------------------------------
def test_device_array_views():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    v = cuda_runtime.view(cuda.to_device(a))
    assert v.shape == (4, 6) and v.strides == (24, 4) and v.contiguous
    assert v.abi == (0, 0, 24, 4, v.ptr, 4, 6, 24, 4)
    w = cuda_runtime.view(CupyArray(a[::-1, 1::2]))
    assert w.shape == (4, 3) and w.strides == (-24, 8) and not w.contiguous
    np.testing.assert_array_equal(w.host_view(), a[::-1, 1::2])
    assert cuda_runtime.view(CupyArray(a[:1, :])).contiguous   # one row: strides don't matter
    assert cuda_runtime.view(CupyArray(a[:, :1])).contiguous is False
    s = cuda_runtime.view(CupyArray(np.array(2.5))).as_vector()
    assert s.shape == (1,) and s.abi[2:4] == (1, 8) and s.host_view()[0] == 2.5
    with pytest.raises(TypeError, match="not an array in GPU memory"):
        cuda_runtime.view(np.ones(3))


def test_kernel_parameters_follow_numbas_array_model():
    k = GridKernel(_axpb.dispatcher, 32, (("float64", 1), ("float32", None), ("int64", None),
                                          ("bool", None), ("uint8", None), ("int16", 2)))
    x = cuda_runtime.view(cuda.to_device(np.arange(5.0)))
    m = cuda_runtime.view(CupyArray(np.zeros((2, 3), np.int16)))
    packed = k._format.pack(*k.parameters([x, np.float32(1.5), 7, np.True_, np.uint8(200), m]))
    slots = [packed[i:i + 8] for i in range(0, len(packed), 8)]
    assert len(slots) == 7 + 1 + 1 + 1 + 1 + 9 and k._slots == len(slots)
    q = [int.from_bytes(sl, "little", signed=True) for sl in slots]
    assert q[:7] == [0, 0, 5, 8, x.ptr, 5, 8]                 # meminfo, parent, size, ...
    assert np.frombuffer(slots[7][:4], np.float32)[0] == 1.5 and q[8] == 7
    assert slots[9][0] == 1 and slots[10][0] == 200
    assert q[11:] == [0, 0, 6, 2, m.ptr, 2, 3, 6, 2]


def test_temporaries_live_until_the_call_is_done():
    call = cuda_runtime.Call(0)
    t = call.empty((3, 2), np.float64)
    assert t.shape == (3, 2) and t.dtype == np.float64 and t.contiguous
    t.host_view()[:] = 1.0   # writable memory of the call's own
    call.done()
    assert call._scratch is None


def test_ufuncs_get_whole_contiguous_vectors():
    """Numba's CUDA ufuncs misplace broadcast and strided arrays: the runtime gives them 1-D
    contiguous arrays of the result's size (a stand-in ufunc records what it gets)."""
    seen = []

    def ufunc(a, b, s, out, stream):
        seen.append((a, b, s, out))
        out.host_view()[:] = a.host_view() * 10 + b.host_view() + s

    x = np.arange(12.0).reshape(3, 4)
    v = np.arange(4.0)
    cases = [(x, v, np.empty((3, 4))),                    # v broadcast over the rows
             (x.T.copy().T, v, np.empty((3, 4))),         # x in Fortran order
             (x, v, np.zeros((3, 8))[:, ::2])]            # a strided out=
    for a, b, target in cases:
        seen.clear()
        call = cuda_runtime.Call(0)
        out = cuda_runtime.view(CupyArray(target))
        call.ufunc(ufunc, [cuda_runtime.view(CupyArray(a)), cuda_runtime.view(CupyArray(b)),
                           np.float64(0.5)], out)
        call.done()
        np.testing.assert_array_equal(target, x * 10 + v + 0.5)
        (got,) = seen
        for arg in got[:2] + got[3:]:
            assert arg.shape == (12,) and arg.contiguous
        assert got[2] == 0.5


def test_device_copies_broadcast_and_follow_strides():
    call = cuda_runtime.Call(0)
    src = np.arange(6.0)[::-2]
    got = call.copy(cuda_runtime.view(CupyArray(src)).broadcast_to((2, 3)))
    assert got.contiguous and got.shape == (2, 3)
    np.testing.assert_array_equal(got.host_view(), np.broadcast_to(src, (2, 3)))
    call.done()
