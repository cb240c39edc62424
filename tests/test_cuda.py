"""The cuda and cuda-ufunc targets against the reference interpreter.

Without a GPU (CI) the cuda kernels run under Numba's CUDA simulator (tests/conftest.py turns it
on before Numba is imported), with 16 threads per block, so that the sizes below exercise
partial blocks, several blocks, several blocks per reduced segment (and their finishing
kernels), column reductions in chunks, and empty dimensions. `NBX_TEST_GPU=1` runs the same
tests on a real GPU. cuda.vectorize does not run in the simulator: the cuda-ufunc target's
scalar function is compiled for the CPU instead (the same text, other decorators) and checked.

Every case runs with NumPy inputs (copied to the device and back) and with device arrays of
each kind at hand (`DEVICE_KINDS`): Numba's everywhere, CuPy's and PyTorch's on a GPU where
they are installed. Device calls of a compiled binding take the runtime's fast path.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from test_differential import (
    EXAMPLE_FILES,
    GRID_SOURCE,
    NP,
    accumulator_args,
    as_tuple,
    assert_same,
    check_grid,
    example_args,
    random_array,
    signature_params,
)

import nbx
from nbx.backends import cuda_runtime, cuda_ufunc
from nbx.backends.base import import_module, write_module
from nbx.dsl.compile import Compiler
from nbx.dsl.fuse import fuse

# The simulator runs every thread as a Python thread and every barrier as a lock: the shapes
# are small, yet span several blocks (16 threads each here), several blocks per segment
# (n=300: finishing kernels), row segments (40x3), column chunks (9x40) and empty dimensions.
SHAPES = {1: [(0,), (1,), (37,), (300,)],
          2: [(0, 5), (5, 0), (3, 4), (9, 40), (40, 3)],
          3: [(2, 0, 3), (2, 3, 4), (4, 3, 5)]}
DTYPES = {1: ["bool", "i8", "u16", "i64", "u64", "f32", "f64"], 2: ["i32", "f32", "f64"],
          3: ["f64"]}
# Long segments, where each thread reads whole rounds of elements (cuda.REDUCE_LANES at once):
# on a GPU in the grid above; under the simulator, slow with many elements, in one test below.
LONG_SHAPES = {1: [(20000,)], 2: [(3, 5000), (5000, 3)], 3: []}


def _device_kinds():
    kinds = ["numba"]
    if not cuda_runtime._simulated():   # a real GPU: the libraries users bring, if installed
        for name in ("cupy", "torch"):
            try:
                __import__(name)
                kinds.append(name)
            except ImportError:
                pass
    return kinds


DEVICE_KINDS = _device_kinds()
TORCH_DTYPES = {"bool", "i8", "i16", "i32", "i64", "u8", "f32", "f64"}


def to_device(kind, x):
    """A NumPy array as a device array of `kind` (same dtype, shape and strides' order)."""
    if kind == "numba":
        from numba import cuda
        return cuda.to_device(np.ascontiguousarray(x))
    if kind == "cupy":
        import cupy
        return cupy.asarray(x)
    import torch
    return torch.from_numpy(np.ascontiguousarray(x)).to("cuda")


def to_host(kind, r):
    """A device result as NumPy: an array, or a NumPy scalar for a 0-d one."""
    assert cuda_runtime._kind(r) == kind, f"a {kind} call gave {type(r)}"
    if kind == "numba":
        host = r.copy_to_host()
    elif kind == "cupy":
        host = r.get()
    else:
        host = r.cpu().numpy()
    return host[()] if host.ndim == 0 else host


class OnDevice:
    """A module whose kernels take their array arguments as device arrays of `kind` and give
    their results back as NumPy (checked to be of that kind), so that the differential checks
    run unchanged; the reference gets the NumPy arguments."""

    def __init__(self, module, kind, convert=None):
        self.module = module
        self.kind = kind
        self.convert = convert or (lambda a: to_device(kind, a))

    def __getitem__(self, name):
        return OnDeviceKernel(self.module[name], self.kind, self.convert)


class OnDeviceKernel:
    def __init__(self, kernel, kind, convert):
        self.kernel = kernel
        self.kind = kind
        self.convert = convert
        self.reference = kernel.reference

    def __call__(self, *args):
        device = [self.convert(a) if isinstance(a, np.ndarray) else a for a in args]
        got = self.kernel(*device)
        if isinstance(got, tuple):
            return tuple(to_host(self.kind, r) for r in got)
        return to_host(self.kind, got)


@pytest.fixture(scope="module")
def cuda_grid():
    return nbx.compile(GRID_SOURCE, target="cuda", filename="grid.nbx")


# Under the simulator the device kinds run what differs for them (views, the fast path, results
# of their kind) on fewer cases: the kernels are the same as for NumPy inputs.
SIMULATED_DEVICE_CASES = {1: [(0,), (300,)], 2: [(5, 0), (9, 40)], 3: []}


def grid_cases():
    for kind in ["numpy"] + DEVICE_KINDS:
        for rank, shapes in SHAPES.items():
            if cuda_runtime._simulated():
                if kind != "numpy":
                    shapes = SIMULATED_DEVICE_CASES[rank]
            else:
                shapes = shapes + LONG_SHAPES[rank]
            for dtype in DTYPES[rank]:
                if kind == "torch" and dtype not in TORCH_DTYPES:
                    continue
                for shape in shapes:
                    yield pytest.param(kind, dtype, shape,
                                       id=f"{kind}-{dtype}-{'x'.join(map(str, shape))}")


@pytest.mark.parametrize(("kind", "dtype", "shape"), list(grid_cases()))
def test_reductions(cuda_grid, kind, dtype, shape):
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{shape}cuda".encode()))
    rank = len(shape)
    grid = cuda_grid if kind == "numpy" else OnDevice(cuda_grid, kind)
    for special in ([False, True] if dtype == "f64" else [False]):
        x = random_array(rng, dtype, shape, special)
        what = f"cuda {kind} {dtype}{list(shape)}{' special' if special else ''}"
        red = f"red{rank}" if rank != 2 or dtype in ("f32", "f64") else "red2s"
        check_grid(grid, red, x, dtype, what=what)
        if x.size:
            check_grid(grid, f"ext{rank}", x, dtype, what=what)
        else:
            with pytest.raises(ValueError, match=r"over dimension \w+ of length 0"):
                grid[f"ext{rank}"](x)


@pytest.mark.parametrize(("dtype", "shape"), [("f64", (1500,)), ("i64", (1500,)),
                                            ("f32", (2, 600))])
def test_long_segments(cuda_grid, dtype, shape):
    """Rounds of reads in full (several per thread, with 16 threads a block under the
    simulator) and the rest one by one, in row reductions (columns of 9 and 40 rows in the
    grid above already take a full round and a rest)."""
    rng = np.random.default_rng(zlib.crc32(f"long{dtype}{shape}".encode()))
    x = random_array(rng, dtype, shape)
    red = f"red{len(shape)}" if len(shape) == 1 or dtype != "i64" else "red2s"
    check_grid(cuda_grid, red, x, dtype, what=f"cuda long {dtype}{list(shape)}")
    check_grid(cuda_grid, f"ext{len(shape)}", x, dtype, what=f"cuda long {dtype}{list(shape)}")


@pytest.mark.parametrize("kind", ["numpy"] + DEVICE_KINDS)
def test_strided_inputs(cuda_grid, kind):
    rng = np.random.default_rng(7)
    x = random_array(rng, "f64", (20, 31))
    check_grid(cuda_grid, "red2", x[::-1, ::2], "f64", what="cuda reversed and strided")
    check_grid(cuda_grid, "ext2", np.asfortranarray(x), "f64", what="cuda F order")
    if kind == "numpy":
        return
    # views of device arrays: the kernels' variant for any layout reads them in place
    whole = to_device(kind, x)
    for index in [(slice(None, None, 2), slice(1, None, 3)), (slice(3, 17), slice(None, 30))]:
        grid = OnDevice(cuda_grid, kind, lambda a, index=index: whole[index])
        check_grid(grid, "red2", x[index], "f64", what=f"cuda {kind} view {index}")
        check_grid(grid, "ext2", x[index], "f64", what=f"cuda {kind} view {index}")


def test_empty_reductions_have_numpy_values(cuda_grid):
    x = np.zeros(0, np.float32)
    total, product, mean, var, std, anything, everything = cuda_grid.red1(
        x, *accumulator_args("f32"))
    assert total == 0 and type(total) is np.float32 and product == 1
    assert np.isnan(mean) and np.isnan(var) and np.isnan(std)
    assert anything is np.False_ and everything is np.True_


def example_cases():
    """Every example kernel; generic ones in f64 and, on a GPU, f32 too. Under the simulator
    (CI's 20 minutes) f32 is left to test_reductions and test_long_segments, which run f32
    kernels on every shape class, and to the random programs, which draw f32 too."""
    both = ["f64"] if cuda_runtime._simulated() else ["f64", "f32"]
    for path in EXAMPLE_FILES:
        for name, kernel in nbx.load(path).kernels.items():
            generic = any(dt not in NP for _, dt, _ in signature_params(kernel))
            for dtype in (both if generic else ["f64"]):
                yield pytest.param(path, name, dtype, id=f"{path.stem}-{name}-{dtype}")


@pytest.mark.parametrize(("path", "name", "dtype"), list(example_cases()))
def test_examples(path, name, dtype):
    kernel = nbx.load(path, target="cuda")[name]
    check_example(kernel, name, dtype)


def check_example(kernel, name, dtype):
    """The kernel on random arguments, NumPy and device ones, against the reference."""
    rng = np.random.default_rng(zlib.crc32(f"{name}{dtype}".encode()))
    for lengths in ({"n": 300, "m": 21, "k": 45, "*": 6}, {"n": 5, "m": 2, "k": 3, "*": 2}):
        args = example_args(kernel, dtype, lengths, rng)
        want = as_tuple(kernel.reference(*args))
        for kind in ["numpy"] + DEVICE_KINDS:
            if kind == "torch" and any(isinstance(a, np.ndarray) and a.dtype not in
                                       [NP[t] for t in TORCH_DTYPES] for a in args):
                continue   # PyTorch has no such dtype
            call = kernel if kind == "numpy" else OnDeviceKernel(
                kernel, kind, lambda a, kind=kind: to_device(kind, a))
            got = as_tuple(call(*args))
            for g, w in zip(got, want, strict=True):
                # an f32 kernel's results are f32-accurate, also where they are cast to f64
                tol = 1e-4 if dtype == "f32" or np.asarray(w).dtype == np.float32 else 1e-10
                scale = float(np.max(np.abs(w))) if np.size(w) and np.isfinite(w).all() \
                    else 1.0
                assert_same(g, w, rtol=tol, atol=tol * scale,
                            what=f"{name} {dtype} {lengths} {kind}")


# --------------------------------------------------------------------------------------------
# cuda-ufunc: the generated scalar function, compiled for the CPU

UFUNC = {
    "arith": "kernel arith(x: T[n], y: T[n]) -> T[n]:\n"
             "    return where(x < y, x * y + 1, x - y)\n",
    "floats": "kernel floats(x: F[m, k], v: F[k]) -> F[m, k]:\n"
              "    return sqrt(abs(x)) * exp(-v * v) + atan2(x, v) + x // v + x % v + sign(x)\n",
    "ints": "kernel ints(x: I[n], s: I) -> I[n]:\n"
            "    return (x // s) ^ (x % s) + (x << 2) + (x >> 1) + sign(x)\n",
    "stats": "kernel stats(x: f64[n]) -> f64:\n    return sum(x)\n",
    "pair": "kernel pair(x: f64[n]) -> (f64[n], f64[n]):\n    return x, -x\n",
    "outer": "kernel outer(x: f64[m], y: f64[k]) -> f64[m, k]:\n    return x * y\n",
    "power": "kernel power(x: i64[n], y: i64[n]) -> i64[n]:\n    return x ** y\n",
}
UFUNC_SOURCE = "\n".join(UFUNC.values())


def cpu_ufunc(name, binding):
    compiler = Compiler(UFUNC_SOURCE, filename="ufunc.nbx")
    plan = fuse(compiler.check_kernel(compiler.env.kernels[name], binding))
    text = cuda_ufunc.emit(plan, origin="ufunc.nbx", fastmath=False, parallel=True,
                           cache=False, device=False)
    gpu_text = cuda_ufunc.emit(plan, origin="ufunc.nbx", fastmath=False, parallel=True,
                               cache=False)
    scalar = text[text.index(f"def _scalar_{name}"):text.index(f"_ufunc_{name} =")]
    assert scalar in gpu_text   # the CPU twin compiles exactly the GPU's scalar function
    path, _ = write_module(text, False)
    return getattr(import_module(path), f"launch_{name}"), plan


UFUNC_CASES = [("arith", "i8"), ("arith", "u32"), ("arith", "f32"), ("arith", "f64"),
               ("floats", "f32"), ("floats", "f64"), ("ints", "i32"), ("ints", "u64"),
               ("ints", "i8")]


def ufunc_args(name, dtype):
    rng = np.random.default_rng(zlib.crc32(f"ufunc{name}{dtype}".encode()))
    if name == "floats":
        return [random_array(rng, dtype, (6, 9), special=True), random_array(rng, dtype, (9,))]
    if name == "ints":
        return [random_array(rng, dtype, (50,)), NP[dtype].type(3)]
    return [random_array(rng, dtype, (50,)), random_array(rng, dtype, (50,))]


@pytest.mark.parametrize(("name", "dtype"), UFUNC_CASES)
def test_ufunc_scalar_function_on_the_cpu(name, dtype):
    tv = {"arith": "T", "floats": "F", "ints": "I"}[name]
    launch, plan = cpu_ufunc(name, {tv: NP[dtype]})
    module = nbx.compile(UFUNC_SOURCE, filename="ufunc.nbx")
    kernel = module[name]
    args = ufunc_args(name, dtype)
    want = kernel.reference(*args)
    out = np.empty_like(want)
    with np.errstate(all="ignore"):
        launch(None, args, [out], None, [])
    assert_same(out, want, what=f"cuda-ufunc {name} {dtype}")


if not cuda_runtime._simulated():
    # On a GPU: the cuda-ufunc target itself, with NumPy and device inputs (Numba's CUDA
    # vectorize does not run in the simulator: there the scalar-function test above stands in).
    @pytest.mark.parametrize(("name", "dtype", "kind"), [
        pytest.param(name, dtype, kind, id=f"{name}-{dtype}-{kind}")
        for name, dtype in UFUNC_CASES for kind in ["numpy"] + DEVICE_KINDS
        if kind != "torch" or dtype in TORCH_DTYPES])
    def test_ufunc_on_the_gpu(name, dtype, kind):
        source = "\n".join(UFUNC[k] for k in ("arith", "floats", "ints"))
        kernel = nbx.compile(source, target="cuda-ufunc", filename="ufunc.nbx")[name]
        args = ufunc_args(name, dtype)
        want = kernel.reference(*args)
        call = kernel if kind == "numpy" else OnDeviceKernel(
            kernel, kind, lambda a: to_device(kind, a))
        with np.errstate(all="ignore"):
            assert_same(call(*args), want, what=f"cuda-ufunc {name} {dtype} {kind}")


@pytest.mark.parametrize(("name", "message"), [
    ("stats", "kernel 'stats' has a reduction, sum() (line 2); a ufunc is element-wise"),
    ("pair", "kernel 'pair' returns 2 values; a ufunc returns one"),
    ("outer", "x[m] does not line up with the result [m, k]"),
    ("power", "raises integers to powers that may be negative"),
])
def test_ufunc_refuses_what_a_ufunc_cannot_be(name, message):
    with pytest.raises(nbx.CompileError) as info:
        nbx.compile(UFUNC[name], target="cuda-ufunc", filename="ufunc.nbx")
    err = info.value
    assert (err.line, err.column) == (1, 8)   # at the kernel's name
    assert message in err.message and "target='cuda'" in err.hint


def test_sign_of_special_values():
    module = nbx.compile("kernel s(x: f64[n], i: i32[n]) -> (f64[n], i32[n]):\n"
                         "    return sign(x), sign(i)\n", target="cuda", filename="sign.nbx")
    x = np.array([-2.0, -0.0, 0.0, np.nan, 3.0, np.inf, -np.inf])
    i = np.array([-5, 0, 7, -1, 2, 0, 9], np.int32)
    for got, want in zip(module.s(x, i), module.s.reference(x, i), strict=True):
        assert_same(got, want, what="sign")
        assert np.array_equal(np.signbit(got), np.signbit(want))   # 0, never -0
