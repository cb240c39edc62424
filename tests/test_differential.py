"""Differential tests: compiled CPU kernels against the NumPy reference interpreter.

Every kernel runs on the same random inputs through `kernel(...)` (generated Numba code) and
`kernel.reference(...)` (nbx/dsl/reference.py); reductions are also checked against NumPy's own
functions, so that the reference itself follows NumPy. Integers and bools must match exactly;
floats to a few ulps, with NaNs in the same places, except where LANGUAGE.md section 6 lets a
sum be computed in any order: there both sides must be within its error bound.

Compile time is what these tests cost (each kernel and dtype binding is compiled once, and Numba
compiles again for each array layout: C, Fortran, non-contiguous). So kernels are grouped into a
few modules with many results each, compiled once per test module, and the full dtype grid runs
on the serial variant (`parallel=False`, the code the parallel module also runs below its size
threshold); a subset of dtypes runs the parallel variant, called by keyword (the checked call
path, which always takes the parallel entry), on small and on large shapes.
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

import nbx

EXAMPLES = Path(__file__).parent.parent / "examples"

ALL_DTYPES = ["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"]
NP = {name: np.dtype(t) for name, t in [
    ("bool", np.bool_), ("i8", np.int8), ("i16", np.int16), ("i32", np.int32),
    ("i64", np.int64), ("u8", np.uint8), ("u16", np.uint16), ("u32", np.uint32),
    ("u64", np.uint64), ("f32", np.float32), ("f64", np.float64)]}
# element-wise float results: a few ulps (transcendental functions differ by an ulp or two
# between NumPy's and LLVM's libm calls)
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


# --------------------------------------------------------------------------------------------
# comparison


def assert_same(got, want, *, rtol=None, atol=0.0, what=""):
    """`got` equals `want`: same kind of value (array or NumPy scalar), dtype and shape;
    integers and bools exactly; floats within rtol/atol with NaN and inf in the same places."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), f"{what}: got {type(got)}, want an array"
    else:
        assert isinstance(got, np.generic) and not isinstance(got, np.ndarray), \
            f"{what}: got {type(got)}, want a NumPy scalar"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert np.shape(got) == np.shape(want), f"{what}: shape {np.shape(got)} != {np.shape(want)}"
    g, w = np.asarray(got), np.asarray(want)
    if w.dtype.kind != "f":
        np.testing.assert_array_equal(g, w, err_msg=what)
        return
    rtol = RTOL[w.dtype] if rtol is None else rtol
    with np.errstate(all="ignore"):
        same_special = (np.isnan(g) == np.isnan(w)) & \
            np.where(np.isinf(w), g == w, ~np.isinf(g))
        close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    bad = ~(same_special & (close | ~np.isfinite(w)))
    if bad.any():
        idx = np.argwhere(bad)[:5] if g.ndim else [()]
        detail = ", ".join(f"{tuple(i)}: got {g[tuple(i)]!r} want {w[tuple(i)]!r}"
                           for i in idx)
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} differ ({detail})")


def as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def signature_params(kernel):
    """[(name, dtype or type variable, [dims] or None)] from the kernel's signature text."""
    params = kernel.signature.split("(", 1)[1].rsplit(") ->", 1)[0]
    return [(name, dtype, [d.strip() for d in dims.split(",")] if dims else None)
            for name, dtype, dims in re.findall(r"(\w+): (\w+)(?:\[([^\]]*)\])?", params)]


def param_names(kernel):
    return [name for name, _, _ in signature_params(kernel)]


def run_both(kernel, args, kwargs=False):
    """(compiled results, reference results) as tuples; kwargs=True calls by keyword."""
    if kwargs:
        got = kernel(**dict(zip(param_names(kernel), args, strict=True)))
    else:
        got = kernel(*args)
    return as_tuple(got), as_tuple(kernel.reference(*args))


def assert_raise_alike(kernel, args, exc, match):
    """Compiled kernel and reference raise the same error."""
    with pytest.raises(exc, match=match):
        kernel(*args)
    with pytest.raises(exc, match=match):
        kernel.reference(*args)


# --------------------------------------------------------------------------------------------
# inputs


def random_array(rng, dtype_name: str, shape, special: bool = False) -> np.ndarray:
    """Random values covering the dtype: full-range integers (sums and products wrap), normal
    floats, and with special=True some NaN, inf, -inf and -0.0 among the floats."""
    dt = NP[dtype_name]
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind == "f":
        x = (rng.standard_normal(shape) * 4).astype(dt)
        if special and x.size:
            flat = x.reshape(-1)
            pos = rng.choice(flat.size, size=max(1, flat.size // 7), replace=False)
            flat[pos] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dt),
                                   size=pos.size)
        return x
    info = np.iinfo(dt)
    x = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if x.size:  # some small values too, and the limits
        flat = x.reshape(-1)
        flat[: flat.size // 2] = rng.integers(max(info.min, -3), 4, flat.size // 2)
        flat[rng.integers(flat.size)] = info.max
        flat[rng.integers(flat.size)] = info.min
    return x


def layouts(x: np.ndarray, which=("C", "F", "reversed", "strided")):
    """The same values in several memory layouts (each is a separate Numba compilation)."""
    for name in which:
        if name == "C":
            yield name, np.ascontiguousarray(x)
        elif name == "F":
            if x.ndim > 1:
                yield name, np.asfortranarray(x)
        elif name == "reversed":
            yield name, np.ascontiguousarray(x[(slice(None, None, -1),) * x.ndim])[
                (slice(None, None, -1),) * x.ndim]
        elif name == "strided":
            base = np.zeros(tuple(2 * s + 1 for s in x.shape), x.dtype)
            view = base[(slice(1, None, 2),) * x.ndim]
            view[...] = x
            yield name, view


# --------------------------------------------------------------------------------------------
# the reduction grid: kernels generated from a table, so that the expected NumPy values and
# tolerances are derived from the same table

RESULT_TYPE = {"sum": "S", "prod": "S", "mean": "F", "var": "F", "std": "F", "any": "bool",
               "all": "bool", "min": "T", "max": "T", "argmin": "i64", "argmax": "i64"}
SAFE = ["sum", "prod", "mean", "var", "std", "any", "all"]   # defined on empty dimensions
EXTREMES = ["min", "max"]
ARGS = ["argmin", "argmax"]


def patterns(dims):
    """over= choices: None (reduce all), every single dimension, every pair (for 3-D)."""
    out = [None] + ([(d,) for d in dims] if len(dims) > 1 else [])
    if len(dims) == 3:
        out += [(a, b) for i, a in enumerate(dims) for b in dims[i + 1:]]
    elif len(dims) == 2:
        out.append(tuple(dims))  # over=(m, k): the same as None, spelled out
    return out


def reduction_kernel(name, dims, cases, broadcast=()):
    """Source of one kernel returning `kind(x, over=...)` for each (kind, over) case.

    Results of the kinds in `broadcast` are declared with every dimension (the reduced value
    broadcast over the reduced dimensions), which keeps them in one pass."""
    params = f"x: T[{', '.join(dims)}]"
    if any(RESULT_TYPE[k] in "SF" for k, _ in cases):
        params += ", s: S, f: F"  # S and F bind to the accumulator and float dtypes
    types, exprs = [], []
    for kind, over in cases:
        kept = dims if kind in broadcast else [d for d in dims if over and d not in over]
        types.append(RESULT_TYPE[kind] + (f"[{', '.join(kept)}]" if kept else ""))
        if over is None:
            exprs.append(f"{kind}(x)")
        elif len(over) == 1:
            exprs.append(f"{kind}(x, over={over[0]})")
        else:
            exprs.append(f"{kind}(x, over=({', '.join(over)}))")
    return (f"kernel {name}({params}) -> ({', '.join(types)}):\n"
            f"    return {', '.join(exprs)}\n")


def cases_for(dims, kinds):
    out = []
    for kind in kinds:
        for over in patterns(dims):
            if kind in ARGS and (over is None and len(dims) > 1 or over and len(over) > 1):
                continue  # argmin/argmax reduce exactly one dimension
            if over == tuple(dims) and kind != "sum":
                continue  # over=(m, k) is reduce-all: spelled out once is enough
            out.append((kind, over))
    return out


D1, D2, D3 = ["n"], ["m", "k"], ["a", "b", "c"]
# mean, var and std results of 2-D and 3-D inputs are declared with every dimension: their
# stores then share one pass instead of one loop per set of kept dimensions (compile time);
# prod and all of 3-D inputs fold like sum and any, which 3-D already covers.
GRID = {
    "red1": (D1, cases_for(D1, SAFE), ()),
    "ext1": (D1, cases_for(D1, EXTREMES + ARGS), ()),
    "red2": (D2, cases_for(D2, SAFE), ("mean", "var", "std")),
    "red2s": (D2, cases_for(D2, ["sum", "prod", "any", "all"]), ()),
    "ext2": (D2, cases_for(D2, EXTREMES + ARGS), ()),
    "red3": (D3, cases_for(D3, ["sum", "mean", "var", "std", "any"]), ("mean", "var", "std")),
    "ext3": (D3, cases_for(D3, EXTREMES + ARGS), ()),
}
GRID_SOURCE = "\n".join(reduction_kernel(name, dims, cases, bc)
                        for name, (dims, cases, bc) in GRID.items())


@pytest.fixture(scope="module")
def serial_grid():
    return nbx.compile(GRID_SOURCE, filename="grid.nbx", parallel=False)


@pytest.fixture(scope="module")
def parallel_grid():
    return nbx.compile(GRID_SOURCE, filename="grid.nbx")


def accumulator_args(dtype_name):
    """The S and F arguments: NumPy's sum dtype and mean dtype for x's dtype."""
    dt = NP[dtype_name]
    s = dt if dt.kind == "f" else np.dtype(np.uint64 if dt.kind == "u" else np.int64)
    f = dt if dt.kind == "f" else np.dtype(np.float64)
    return s.type(0), f.type(0)


def numpy_reduction(kind, x, axes, keepdims):
    with np.errstate(all="ignore"):
        if kind in ("argmin", "argmax"):
            (axis,) = axes
            return getattr(np, kind)(x, axis=axis, keepdims=keepdims).astype(np.int64)
        if kind in ("sum", "mean", "var", "std") and axes:
            # NumPy sums pairwise along a contiguous axis only; along another it adds rows one
            # by one, and its error can exceed the bound: reduce a contiguous copy whose last
            # axes are the reduced ones
            last = tuple(range(x.ndim - len(axes), x.ndim))
            moved = np.ascontiguousarray(np.moveaxis(x, axes, last))
            out = getattr(np, kind)(moved, axis=last, keepdims=keepdims)
            return np.moveaxis(out, last, axes) if keepdims else out
        return getattr(np, kind)(x, axis=axes, keepdims=keepdims)


def tolerance(kind, x, axes, keepdims, dtype):
    """(rtol, atol) for comparing two float results of a reduction of x.

    Sums are within 8 * eps * sum(|terms|) * log2(count + 1) of the exact value (LANGUAGE.md
    section 6), so two of them within twice that; mean, var and std inherit it (var's terms are
    non-negative, so the bound is relative to var itself); a product is within 2 * count * eps.
    A final division or square root adds an ulp or two."""
    if dtype.kind != "f":
        return 0.0, 0.0
    eps = float(np.finfo(dtype).eps)
    count = int(np.prod([x.shape[a] for a in axes])) if x.ndim else 1
    spread = 16 * eps * math.log2(count + 1)
    if kind in ("sum", "mean"):
        with np.errstate(all="ignore"):
            scale = np.sum(np.abs(x.astype(np.float64)), axis=axes, keepdims=keepdims)
        if kind == "mean":
            scale = scale / max(count, 1)
        return 4 * eps, spread * scale
    if kind == "var":
        return spread + 8 * eps, float(np.finfo(dtype).tiny)
    if kind == "std":
        return spread / 2 + 4 * eps, float(np.finfo(dtype).tiny)
    if kind == "prod":
        return 2 * count * eps + 4 * eps, float(np.finfo(dtype).tiny)
    return 0.0, 0.0  # min, max: exactly one of the inputs


def check_grid(module, name, x, dtype_name, kwargs=False, what=""):
    """Run grid kernel `name` on x: compiled vs reference vs NumPy, result by result."""
    dims, cases, broadcast = GRID[name]
    kernel = module[name]
    args = [x] + (list(accumulator_args(dtype_name)) if "red" in name else [])
    got, ref = run_both(kernel, args, kwargs=kwargs)
    assert len(got) == len(cases)
    for (kind, over), g, r in zip(cases, got, ref, strict=True):
        axes = tuple(range(x.ndim)) if over is None else tuple(dims.index(d) for d in over)
        keep = kind in broadcast
        label = f"{what} {name} {kind}(over={over or 'all'})"
        want = numpy_reduction(kind, x, axes, keep)
        if keep:
            want = np.broadcast_to(want, x.shape).copy()
        if want.ndim == 0:
            want = want[()]
        rtol, atol = tolerance(kind, x, axes, keep, np.asarray(want).dtype)
        if keep and np.ndim(atol):
            atol = np.broadcast_to(atol, x.shape)
        assert_same(r, want, rtol=rtol, atol=atol, what=label + " reference vs NumPy")
        assert_same(g, r, rtol=rtol, atol=atol, what=label + " compiled vs reference")


SHAPES = {1: [(0,), (1,), (7,), (20000,)],
          2: [(0, 5), (5, 0), (1, 1), (3, 4), (300, 70), (70, 300)],
          3: [(0, 3, 2), (2, 0, 3), (1, 1, 1), (2, 3, 4), (20, 15, 25)]}
# The parallel entry (blocks, partial buffers, row groups) on small and on large shapes.
PARALLEL_SHAPES = {1: [(0,), (7,), (50000,)],
                   2: [(5, 0), (3, 4), (400, 90), (90, 400), (20000, 3)],
                   3: [(2, 0, 3), (2, 3, 4), (40, 30, 35)]}
# Every dtype runs 1-D and 2-D; each more rank, layout or variant is one more Numba compilation
# per kernel and dtype (seconds each), so those run for f64 (and the examples run the parallel
# variant for integer bindings too).
SERIAL_DTYPES = {1: ALL_DTYPES, 2: ALL_DTYPES, 3: ["f64"]}
# 2-D mean, var and std compute in f64 for every integer dtype alike (1-D covers each): the
# other integer widths run the kernel without them
FULL_2D = {"bool", "i64", "u8", "f32", "f64"}
PARALLEL_DTYPES = {1: ["bool", "f64"], 2: ["f64"], 3: ["f64"]}
LAYOUT_DTYPES = {1: {"f64"}, 2: {"f64"}, 3: set()}  # also F order, negative and step strides


def grid_cases(shapes, dtypes):
    for rank, shape_list in shapes.items():
        for dtype in dtypes[rank]:
            for shape in shape_list:
                yield pytest.param(dtype, shape, id=f"{dtype}-{'x'.join(map(str, shape))}")


@pytest.mark.parametrize(("dtype", "shape"), list(grid_cases(SHAPES, SERIAL_DTYPES)))
def test_reductions_serial(serial_grid, dtype, shape):
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{shape}".encode()))
    rank = len(shape)
    which = ("C", "F", "reversed", "strided") if dtype in LAYOUT_DTYPES[rank] else ("C",)
    for special in ([False, True] if NP[dtype].kind == "f" else [False]):
        x = random_array(rng, dtype, shape, special)
        for layout, xl in layouts(x, which):
            what = f"{dtype}{list(shape)} {layout}{' special' if special else ''}"
            red = "red2s" if rank == 2 and dtype not in FULL_2D else f"red{rank}"
            check_grid(serial_grid, red, xl, dtype, what=what)
            if x.size:
                check_grid(serial_grid, f"ext{rank}", xl, dtype, what=what)
            else:
                assert_raise_alike(serial_grid[f"ext{rank}"], [xl], ValueError,
                                   r"over dimension \w+ of length 0")


@pytest.mark.parametrize(("dtype", "shape"), list(grid_cases(PARALLEL_SHAPES, PARALLEL_DTYPES)))
def test_reductions_parallel(parallel_grid, dtype, shape):
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{shape}parallel".encode()))
    rank = len(shape)
    for special in ([False, True] if NP[dtype].kind == "f" else [False]):
        x = random_array(rng, dtype, shape, special)
        what = f"{dtype}{list(shape)}{' special' if special else ''} parallel"
        check_grid(parallel_grid, f"red{rank}", x, dtype, kwargs=True, what=what)
        if x.size and rank < 3:  # 3-D min/max/argmin/argmax fold as 2-D ones: serial only
            check_grid(parallel_grid, f"ext{rank}", x, dtype, kwargs=True, what=what)


def test_empty_reductions_have_numpy_values(serial_grid):
    for dtype in ("bool", "i32", "u8", "f32", "f64"):
        x = np.zeros(0, NP[dtype])
        s, f = accumulator_args(dtype)
        for results in (serial_grid.red1(x, s, f), serial_grid.red1.reference(x, s, f)):
            total, product, mean, var, std, anything, everything = results
            assert total == 0 and type(total) is type(s)
            assert product == 1 and type(product) is type(s)
            assert np.isnan(mean) and np.isnan(var) and np.isnan(std)
            assert type(mean) is type(f)
            assert anything is np.False_ and everything is np.True_
        for kernel in (serial_grid.ext1, serial_grid.ext1.reference):
            with pytest.raises(ValueError, match=r"^ext1\(\): min\(\) over dimension n of "
                                                 r"length 0"):
                kernel(x)
    # an empty dimension that a min/max/argmin/argmax reduces raises, whichever it is
    assert_raise_alike(serial_grid.ext2, [np.zeros((0, 4))], ValueError,
                       r"over dimension m of length 0")
    assert_raise_alike(serial_grid.ext2, [np.zeros((4, 0))], ValueError,
                       r"over dimension k of length 0")


# --------------------------------------------------------------------------------------------
# (1) every example kernel

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.nbx"))
# generic example kernels that also compile for an integer binding
INTEGER_EXAMPLES = {"matvec", "stats", "sum_of_squares"}


def example_args(kernel, dtype_name, lengths, rng):
    """Random arguments for an example kernel, from its signature."""
    args = []
    for _name, dtype, dims in signature_params(kernel):
        dtype = dtype if dtype in NP else dtype_name
        if dims:
            shape = tuple(lengths.get(d, lengths["*"]) for d in dims)   # "*": any other name
            args.append(random_array(rng, dtype, shape) if NP[dtype].kind != "f"
                        else rng.standard_normal(shape).astype(NP[dtype]))
        else:
            args.append(NP[dtype].type(1.5 if NP[dtype].kind == "f" else 3))
    return args


def example_cases():
    for path in EXAMPLE_FILES:
        module = nbx.load(path)  # parse and check only; compiled on first call
        for name, kernel in module.kernels.items():
            generic = any(dt not in NP for _, dt, _ in signature_params(kernel))
            dtypes = ["f64", "f32"] + (["i32"] if name in INTEGER_EXAMPLES else []) \
                if generic else ["f64"]
            for dtype in dtypes:
                yield pytest.param(path.name, name, dtype, id=f"{path.stem}-{name}-{dtype}")


@pytest.fixture(scope="module")
def example_modules():
    return {path.name: nbx.load(path) for path in EXAMPLE_FILES}


@pytest.mark.parametrize(("filename", "name", "dtype"), list(example_cases()))
def test_example(example_modules, filename, name, dtype):
    kernel = example_modules[filename][name]
    rng = np.random.default_rng(zlib.crc32(f"{name}{dtype}".encode()))
    # a large call first (the parallel entry), then small ones by keyword (also the parallel
    # entry: the serial twin is the grid's business), and empty dimensions
    for lengths in ({"n": 40000, "m": 200, "k": 300, "*": 20}, {"n": 37, "m": 5, "k": 7, "*": 3},
                    {"n": 1, "m": 1, "k": 1, "*": 1}, {"n": 0, "m": 0, "k": 3, "*": 0}):
        args = example_args(kernel, dtype, lengths, rng)
        try:
            got = as_tuple(kernel(*args) if lengths["n"] == 40000 else
                           kernel(**dict(zip(param_names(kernel), args, strict=True))))
        except ValueError as err:  # min/max over an empty dimension: the reference agrees
            assert "of length 0" in str(err)
            with pytest.raises(ValueError, match="of length 0"):
                kernel.reference(*args)
            continue
        ref = as_tuple(kernel.reference(*args))
        for i, (g, r) in enumerate(zip(got, ref, strict=True)):
            floats = np.asarray(r).dtype.kind == "f"
            # the looser of the binding's and the result's: f32 values may be returned as f64,
            # and a kernel declared f32 (not generic) runs at f32 under the f64 label
            single = dtype == "f32" or np.asarray(r).dtype == np.float32
            eps = np.finfo(np.float32 if single else np.float64).eps if floats else 0.0
            scale = float(np.max(np.abs(r), initial=1.0, where=~np.isnan(r))) if floats else 0.0
            assert_same(g, r, atol=2000 * eps * scale, what=f"{name} result {i} {lengths}")


# --------------------------------------------------------------------------------------------
# (2) fusion shapes: reductions inside element-wise expressions, multi-stage kernels, sibling
# reductions, broadcasting by name, transposed results, nested reductions

STRUCT_SOURCE = """
kernel rows(x: T[m, k], y: T[k]) -> (T[m, k], T[m], T[k, m], T[m, k], T[m], T[m], T[k], T,
                                     i64[k], T[k, m]):
    c = x - mean(x, over=k)
    e = exp(x - max(x, over=k))
    z = (x - mean(x, over=m)) / std(x, over=m)
    return (c, sum(x, over=k), z, e / sum(e, over=k), sum(x * y, over=k), max(x + y, over=k),
            min(x + y, over=m), sum(y) + sum(x), argmax(x * y, over=m), c * z)

kernel nested(x: T[m, k]) -> (T, T[k], T, T[m]):
    return (sum(x - mean(x, over=k)), max(x - min(x, over=m), over=m),
            sum(sum(x, over=k) * sum(x, over=m)), mean(x - mean(x), over=k))

kernel outer(x: T[n], y: T[m]) -> (T[n, m], T[m, n], T[n], T[m], T):
    return x + y, x * y, sum(x + y, over=m), max(x * y, over=n), sum(x * y) - sum(x) * sum(y)

kernel cube(x: T[a, b, c]) -> (T[c, a, b], T[b, a], T[a, b, c], T[c]):
    return (x - mean(x, over=(a, c)), sum(x, over=c), x / max(abs(x), over=b),
            sum(x - mean(x, over=b), over=(a, b)))

kernel misc(x: T[n], s: T) -> (T[n], i64, i64[n], T, T[n], T[n]):
    return (x * s + n, argmax(x * index(n)), index(n) * 2, sum(x) * s,
            x if x > mean(x) else -x, where(isnan(x), s, x))
"""


@pytest.fixture(scope="module")
def struct_module():
    return nbx.compile(STRUCT_SOURCE, filename="struct.nbx")


STRUCT_CASES = [("rows", [("m", "k"), ("k",)]), ("nested", [("m", "k")]),
                ("outer", [("n",), ("m",)]), ("cube", [("a", "b", "c")]),
                ("misc", [("n",), None])]
STRUCT_SIZES = [{"m": 5, "k": 7, "n": 6, "a": 3, "b": 4, "c": 5},
                {"m": 1, "k": 1, "n": 1, "a": 1, "b": 1, "c": 1},
                {"m": 0, "k": 3, "n": 0, "a": 2, "b": 0, "c": 3},
                {"m": 300, "k": 200, "n": 250, "a": 30, "b": 40, "c": 50}]


@pytest.fixture(scope="module")
def struct_serial():
    return nbx.compile(STRUCT_SOURCE, filename="struct.nbx", parallel=False)


# f64 runs every kernel; f32 one with small 3-D shapes (float32 arithmetic and literals are
# also covered by the examples and test_scalar_semantics.py)
STRUCT_PARAMS = [pytest.param(name, params, dtype, id=f"{name}-{dtype}")
                 for name, params in STRUCT_CASES for dtype in ("f64", "f32")
                 if dtype == "f64" or name == "cube"]


@pytest.mark.parametrize(("name", "params", "dtype"), STRUCT_PARAMS)
def test_fusion_shapes(struct_module, name, params, dtype):
    kernel = struct_module[name]
    rng = np.random.default_rng(zlib.crc32(f"{name}{dtype}".encode()))
    for lengths in STRUCT_SIZES:
        args = [rng.standard_normal(tuple(lengths[d] for d in dims)).astype(NP[dtype])
                if dims else NP[dtype].type(0.75) for dims in params]
        check_struct(kernel, args, lengths, dtype, kwargs=True)


@pytest.mark.parametrize(("name", "which"), [("rows", ("reversed", "strided"))])
def test_fusion_shapes_noncontiguous(struct_serial, name, which):
    """Fortran order, negative strides and steps (each one Numba compilation: serial only;
    the reduction grid covers every layout for 1-D and 2-D)."""
    params = dict(STRUCT_CASES)[name]
    kernel = struct_serial[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for lengths in STRUCT_SIZES[:2]:
        args = [rng.standard_normal(tuple(lengths[d] for d in dims)) for dims in params]
        for layout, first in layouts(args[0], which):
            check_struct(kernel, [first] + args[1:], lengths, "f64", what=layout)


def check_struct(kernel, args, lengths, dtype, kwargs=False, what=""):
    if any(a.size == 0 for a in args if isinstance(a, np.ndarray)):
        # each kernel takes a min, max or argmax over the empty dimension: both raise
        assert_raise_alike(kernel, args, ValueError, "of length 0")
        return
    got, ref = run_both(kernel, args, kwargs=kwargs)
    eps = float(np.finfo(NP[dtype]).eps)
    count = max(lengths.values())
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        # results mix sums of up to `count` terms of size ~1 with element-wise arithmetic
        scale = float(np.max(np.abs(r), initial=1.0))
        assert_same(g, r, atol=512 * eps * math.log2(count + 1) * scale,
                    what=f"{kernel.name}[{dtype}] result {i} {what} {lengths}")


# --------------------------------------------------------------------------------------------
# (2) integer and float corner cases of element-wise arithmetic, against NumPy too

ELEM_SOURCE = """
kernel arith(a: T[n], b: T[n]) -> (T[n], T[n], T[n], T[n], T[n], T[n], T[n], T[n]):
    return a + b, a - b, a * b, a // b, a % b, -a, abs(a), a ** 3

kernel shifts(a: T[n], b: T[n]) -> (T[n], T[n]):
    return a << b, a >> b

kernel power(a: T[n], b: T[n]) -> T[n]:
    return a ** b
"""


@pytest.fixture(scope="module")
def elem():
    # element-wise semantics do not depend on the parallel variant
    return nbx.compile(ELEM_SOURCE, filename="elem.nbx", parallel=False)


def edge_values(dtype_name):
    dt = NP[dtype_name]
    if dt.kind == "f":
        return np.array([-np.inf, -7.5, -7.0, -2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, 3.0,
                         7.0, 7.5, 1e30, np.inf, np.nan], dt)
    info = np.iinfo(dt)
    values = [info.min, info.min + 1, info.max - 1, info.max, 0, 1, 2, 3, 7, info.max // 2,
              info.max // 2 + 1]
    if info.min < 0:
        values += [-1, -2, -3, -7, info.min // 2]
    return np.array(values, dt)


def all_pairs(values):
    a, b = np.meshgrid(values, values, indexing="ij")
    return a.ravel(), b.ravel()


def check_against_numpy(kernel, args, wants, what):
    got, ref = run_both(kernel, args)
    for i, (g, r, w) in enumerate(zip(got, ref, wants, strict=True)):
        # exact: these operations are correctly rounded (or exact) in NumPy and in nbx
        assert_same(r, w, rtol=0, what=f"{what} result {i} reference vs NumPy")
        assert_same(g, w, rtol=0, what=f"{what} result {i} compiled vs NumPy")
        if w.dtype.kind == "f":  # -0.0 and 0.0 differ here
            np.testing.assert_array_equal(np.signbit(g), np.signbit(w),
                                          err_msg=f"{what} result {i}: sign of zero")


@pytest.mark.parametrize("dtype", ["i8", "u8", "i32", "i64", "u64", "f32", "f64"])
def test_arithmetic_corner_cases(elem, dtype):
    """Wraparound near the limits, // and % by zero (0 for integers, as NumPy), floor division
    and modulo of negative numbers, -0.0, inf and NaN."""
    a, b = all_pairs(edge_values(dtype))
    with np.errstate(all="ignore"):
        wants = [a + b, a - b, a * b, np.floor_divide(a, b), np.remainder(a, b), -a, np.abs(a),
                 a ** NP[dtype].type(3)]
    check_against_numpy(elem.arith, [a, b], wants, f"arith[{dtype}]")
    if NP[dtype].kind in "iu":
        zero = b == 0
        assert np.all(wants[3][zero] == 0) and np.all(wants[4][zero] == 0)


@pytest.mark.parametrize("dtype", ["i8", "u8", "i32", "u64"])
def test_shift_counts_out_of_range(elem, dtype):
    dt = NP[dtype]
    bits = dt.itemsize * 8
    counts = [0, 1, 3, bits - 1, bits, bits + 1, 2 * bits, min(100, np.iinfo(dt).max)]
    if dt.kind == "i":
        counts += [-1, -bits, np.iinfo(dt).min]
    a, b = np.meshgrid(edge_values(dtype), np.array(counts, dt), indexing="ij")
    a, b = a.ravel(), b.ravel()
    check_against_numpy(elem.shifts, [a, b], [np.left_shift(a, b), np.right_shift(a, b)],
                        f"shifts[{dtype}]")


@pytest.mark.parametrize("dtype", ["i8", "u8", "i32", "i64"])
def test_integer_power(elem, dtype):
    dt = NP[dtype]
    a, b = np.meshgrid(edge_values(dtype), np.array([0, 1, 2, 3, 7, 31, 63, 64, 100], dt),
                       indexing="ij")
    a, b = a.ravel(), b.ravel()
    with np.errstate(all="ignore"):
        want = np.power(a, b)  # wraps, as repeated multiplication does
    check_against_numpy(elem.power, [a, b], [want], f"power[{dtype}]")
    if dt.kind == "i":
        negative = b.copy()
        negative[len(b) // 2] = -1
        assert_raise_alike(elem.power, [a, negative], ValueError, "negative integer powers")
        with pytest.raises(ValueError):
            np.power(a, negative)


# --------------------------------------------------------------------------------------------
# (2) large sums against an exact sum (math.fsum), within LANGUAGE.md section 6's bound

SUMS_SOURCE = """
kernel total(x: T[n]) -> T:
    return sum(x)

kernel totals(x: T[m, k]) -> (T[m], T[k]):
    return sum(x, over=k), sum(x, over=m)
"""


@pytest.fixture(scope="module")
def sums():
    return nbx.compile(SUMS_SOURCE, filename="sums.nbx")


def sum_bound(terms: np.ndarray) -> float:
    """8 * eps(dtype) * sum(|terms|) * log2(count + 1)."""
    eps = float(np.finfo(terms.dtype).eps)
    return 8 * eps * math.fsum(np.abs(terms.astype(np.float64))) * math.log2(terms.size + 1)


def assert_within_bound(value, terms, what):
    exact = math.fsum(terms.astype(np.float64).ravel())
    bound = sum_bound(terms)
    error = abs(float(value) - exact)
    assert error <= bound, f"{what}: |{float(value)!r} - {exact!r}| = {error:.3g} > {bound:.3g}"


def sum_data(kind, shape, dtype, rng):
    if kind == "uniform":
        return rng.random(shape).astype(dtype)
    if kind == "normal":
        return rng.standard_normal(shape).astype(dtype)
    return np.full(shape, 0.1, dtype)  # the same rounding error again and again


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal", "constant"])
def test_large_sum_within_bound(sums, kind, dtype):
    x = sum_data(kind, 2_000_000, dtype, np.random.default_rng(7))
    got = sums.total(x)
    assert type(got) is dtype
    assert_within_bound(got, x, f"sum of 2e6 {kind} {dtype.__name__}")
    assert_within_bound(sums.total.reference(x), x, f"reference sum of {kind}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "constant"])
def test_long_rows_and_columns_within_bound(sums, kind, dtype):
    """Row sums of long rows and column sums of long columns (the blocked outer dimension)."""
    rng = np.random.default_rng(8)
    for shape in [(3, 700_000), (700_000, 3)]:
        x = sum_data(kind, shape, dtype, rng)
        for label, results in (("compiled", sums.totals(x)),
                               ("reference", sums.totals.reference(x))):
            by_row, by_column = results
            for i in range(x.shape[0]) if x.shape[0] < 10 else []:
                assert_within_bound(by_row[i], x[i], f"{label} row {i} of {shape} {kind}")
            for j in range(x.shape[1]) if x.shape[1] < 10 else []:
                assert_within_bound(by_column[j], x[:, j], f"{label} column {j} of {shape}")
