"""Calls on CUDA targets (LANGUAGE.md sections 7 and 8), without a GPU.

The calls themselves run under Numba's CUDA simulator, which must be switched on before Numba
is first imported: tests/sim_cuda_calls.py holds them and runs in a subprocess of its own
(test_calls_under_the_cuda_simulator). What needs no simulator runs here: the cpu target
refusing device arrays, how device arrays are described, the target names, the message for
a CUDA target that cannot run, and target="auto"'s routing (availability monkeypatched).
Device arrays here are stand-ins: objects with a `__cuda_array_interface__`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbx
from nbx import runtime
from nbx.backends import cuda_runtime
from nbx.callconv import describe_value
from nbx.dsl.compile import TARGETS

HERE = Path(__file__).parent


def test_calls_under_the_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(HERE / "sim_cuda_calls.py")], capture_output=True, text=True,
                          env=env, cwd=HERE.parent, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]


class _DeviceArray:
    """An array in "GPU memory", as far as its interface says."""

    def __init__(self, host):
        self.host = host

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.host.shape, "typestr": self.host.dtype.str,
                "data": (self.host.ctypes.data, False), "strides": None, "version": 3}


CupyArray = type("ndarray", (_DeviceArray,), {"__module__": "cupy"})

SRC = '''
kernel normalize(x: f64[n]) -> f64[n]:
    return (x - mean(x)) / sqrt(mean((x - mean(x)) ** 2))

kernel scale(x: T[n], a: T) -> T[n]:
    return x * a
'''

cpu = nbx.compile(SRC, filename="cpu.nbx")
auto = nbx.compile(SRC, filename="auto.nbx", target="auto")


def test_describe_a_device_array():
    assert describe_value(CupyArray(np.ones(5, np.float32))) == \
        "cupy.ndarray float32 of shape (5,) on the GPU"


def test_cpu_target_refuses_device_arrays_and_says_what_to_do():
    with pytest.raises(TypeError) as err:
        cpu.normalize(CupyArray(np.ones(5)))
    assert str(err.value) == (
        "normalize(): x must be a float64 array with 1 dimension (n), got cupy.ndarray "
        "float64 of shape (5,) on the GPU (this kernel runs on the CPU: compile it with "
        'target="cuda" or target="auto", or copy the array to the host first)')
    with pytest.raises(TypeError, match=r"scale\(\): x must be a T \(any dtype\) array|"
                       r"x must be a float32 array .* on the GPU \(this kernel runs on the CPU"):
        cpu.scale(CupyArray(np.ones(3, np.float32)), 2.0)
    with pytest.raises(TypeError, match=r"a must be a float64 scalar, got cupy.ndarray float64 "
                       r"of shape \(\) on the GPU \(this kernel runs on the CPU"):
        cpu.scale(np.ones(3), CupyArray(np.array(2.0)))
    with pytest.raises(TypeError, match=r"out must be a float64 array of shape \(3,\), got "
                       r"cupy.ndarray float64 of shape \(3,\) on the GPU"):
        cpu.normalize(np.ones(3), out=CupyArray(np.ones(3)))


def test_the_cpu_fast_path_still_serves_numpy_calls():
    x = np.arange(4.0)
    np.testing.assert_allclose(cpu.normalize(x), (x - x.mean()) / x.std())
    assert cpu.normalize._spec_list and cpu.normalize._spec_list[0].fast is not None


def test_targets():
    assert TARGETS == ("cpu", "cuda", "cuda-ufunc", "auto")
    with pytest.raises(ValueError, match="unknown target 'gpu'; available: cpu, cuda, "
                       "cuda-ufunc, auto"):
        nbx.compile(SRC, target="gpu")


@pytest.fixture
def no_numba_cuda(monkeypatch):
    """As if numba.cuda were not installed."""
    import numba
    monkeypatch.delattr(numba, "cuda", raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    monkeypatch.setattr(cuda_runtime, "_STATUS", None)


@pytest.mark.parametrize("target", ["cuda", "cuda-ufunc"])
def test_cuda_without_numba_cuda_is_a_clear_error(no_numba_cuda, target):
    mod = nbx.compile("kernel twice(x: f64[n]) -> f64[n]:\n    return 2 * x\n",
                      target=target)   # compiling the module needs no GPU
    with pytest.raises(nbx.TargetUnavailable) as err:
        mod.twice(np.ones(3))
    assert str(err.value).startswith(
        f'target "{target}" cannot run here: numba.cuda cannot be imported (')
    assert "install numba-cuda (pip install numba-cuda); use target=\"cpu\", or " \
        "target=\"auto\"" in str(err.value)
    assert isinstance(err.value, RuntimeError)
    ok, why = cuda_runtime.available()
    assert not ok and why.startswith("numba.cuda cannot be imported")


def test_auto_without_numba_cuda_is_the_cpu(no_numba_cuda, monkeypatch):
    monkeypatch.setattr(runtime, "AUTO_GPU_BYTES", 8)
    target, why = auto.normalize.target_for(np.ones(3))
    assert target == "cpu" and why.startswith("no GPU available: numba.cuda cannot be imported")
    np.testing.assert_allclose(auto.normalize(np.arange(3.0)), [-1.2247449, 0, 1.2247449])


CPU_WHY = ("NumPy inputs stay on the CPU (AUTO_GPU_BYTES = None: copying them to the GPU "
           "costs more than the computation)")


def test_auto_routing(monkeypatch):
    monkeypatch.setattr(cuda_runtime, "available", lambda: (True, "a CUDA GPU"))
    x = np.ones(1000)   # 8000 bytes
    assert auto.normalize.target_for(x) == ("cpu", CPU_WHY)   # measured: the default
    monkeypatch.setattr(runtime, "AUTO_GPU_BYTES", 4 * 2**20)
    assert auto.normalize.target_for(x) == (
        "cpu", "the NumPy inputs total 7.81 KiB, below AUTO_GPU_BYTES = 4 MiB")
    monkeypatch.setattr(runtime, "AUTO_GPU_BYTES", 8000)
    assert auto.normalize.target_for(x) == (
        "cuda", "the NumPy inputs total 7.81 KiB, at least AUTO_GPU_BYTES = 7.81 KiB, and a "
        "CUDA GPU is available")
    # out= is not an input; a device array anywhere (out= included) means the GPU
    assert auto.normalize.target_for(x[:999], out=np.empty(999))[0] == "cpu"
    assert auto.scale.target_for(CupyArray(np.ones(2)), 2.0) == (
        "cuda", "x is cupy.ndarray float64 of shape (2,) on the GPU")
    assert auto.scale.target_for(np.ones(2), a=CupyArray(np.array(2.0)))[1].startswith("a is ")
    assert auto.normalize.target_for(np.ones(2), out=CupyArray(np.ones(2)))[0] == "cuda"
    monkeypatch.setattr(cuda_runtime, "available", lambda: (False, "no CUDA GPU found"))
    assert auto.normalize.target_for(x) == ("cpu", "no GPU available: no CUDA GPU found")


def test_auto_calls_on_the_cpu_and_explains(monkeypatch):
    monkeypatch.setattr(cuda_runtime, "available", lambda: (False, "no CUDA GPU found"))
    x = np.arange(4.0)
    np.testing.assert_allclose(auto.normalize(x), (x - x.mean()) / x.std())
    np.testing.assert_array_equal(auto.scale(x, 2.0, stream=None), 2 * x)   # stream: ignored
    assert isinstance(auto.normalize, nbx.Kernel) and "target='auto'" in repr(auto.normalize)
    text = auto.normalize.explain()
    assert "stage" in text
    assert text.splitlines()[-1] == "target auto: cpu (no GPU available: no CUDA GPU found)"
    assert auto.scale.explain(np.ones(3, np.float32), 2.0).splitlines()[-1] == (
        f"target auto: cpu ({CPU_WHY})")
    assert "def " in auto.normalize.source   # the cpu kernel's generated module
