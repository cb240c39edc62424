"""Scalar element-wise semantics against NumPy itself (LANGUAGE.md section 5), with Hypothesis.

For a fixed set of dtype pairs, one kernel per pair computes every binary operator and
function at once (one compiled specialisation per pair: compile time is the cost here), on
arrays of a few elements that Hypothesis draws from the whole range of each dtype (NaN, inf,
-0.0, subnormals, integer limits). Each result must have NumPy's dtype (no implicit cast on
return: the checker's promotion is NumPy's) and NumPy's value, from the compiled kernel and from
the reference interpreter alike. Transcendental functions may differ from NumPy's SIMD versions
in the last bits (docs/language.md); everything else is exact, sign of zero included.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbx
from nbx.dsl import ir

NP = {"bool": np.dtype(np.bool_), "i8": np.dtype(np.int8), "i16": np.dtype(np.int16),
      "i32": np.dtype(np.int32), "i64": np.dtype(np.int64), "u8": np.dtype(np.uint8),
      "u16": np.dtype(np.uint16), "u32": np.dtype(np.uint32), "u64": np.dtype(np.uint64),
      "f32": np.dtype(np.float32), "f64": np.dtype(np.float64)}
NAME = {v: k for k, v in NP.items()}

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def to_f64(x):
    return np.asarray(x).astype(np.float64)


# (nbx expression, NumPy of (a, b, e), tolerance class). `e` is an exponent array of b's dtype,
# non-negative for integers (an integer to a negative power raises; tested elsewhere).
# Functions that nbx computes in f64 for integer operands (LANGUAGE.md section 5) are compared
# with NumPy on f64 operands there.
def float_fn2(f):
    def apply(a, b, e):
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            return f(a, b)
        return f(to_f64(a), to_f64(b))
    return apply


BINARY = [
    ("a + b", lambda a, b, e: a + b, "exact"),
    ("a - b", lambda a, b, e: a - b, "exact"),
    ("a * b", lambda a, b, e: a * b, "exact"),
    ("a / b", lambda a, b, e: a / b, "exact"),
    ("a // b", lambda a, b, e: a // b, "exact"),
    ("a % b", lambda a, b, e: a % b, "exact"),
    ("a ** e", lambda a, b, e: a ** e, "ulp"),
    ("pow(a, e)", lambda a, b, e: np.power(a, e), "ulp"),
    ("a & b", lambda a, b, e: a & b, "exact"),
    ("a | b", lambda a, b, e: a | b, "exact"),
    ("a ^ b", lambda a, b, e: a ^ b, "exact"),
    ("a << b", lambda a, b, e: a << b, "exact"),
    ("a >> b", lambda a, b, e: a >> b, "exact"),
    ("a < b", lambda a, b, e: a < b, "exact"),
    ("a <= b", lambda a, b, e: a <= b, "exact"),
    ("a > b", lambda a, b, e: a > b, "exact"),
    ("a >= b", lambda a, b, e: a >= b, "exact"),
    ("a == b", lambda a, b, e: a == b, "exact"),
    ("a != b", lambda a, b, e: a != b, "exact"),
    ("minimum(a, b)", lambda a, b, e: np.minimum(a, b), "exact"),
    ("maximum(a, b)", lambda a, b, e: np.maximum(a, b), "exact"),
    ("clip(a, b, e)", lambda a, b, e: np.clip(a, b, e), "exact"),
    ("where(a > b, a, b)", lambda a, b, e: np.where(a > b, a, b), "exact"),
    ("a if a < b else b", lambda a, b, e: np.where(a < b, a, b), "exact"),
    ("atan2(a, b)", float_fn2(np.arctan2), "ulp"),
    ("hypot(a, b)", float_fn2(np.hypot), "ulp"),
    ("copysign(a, b)", float_fn2(np.copysign), "exact"),
    # weak literals take the strong operand's type (NEP 50)
    ("a + 1", lambda a, b, e: a + 1, "exact"),
    ("b * 3", lambda a, b, e: b * 3, "exact"),
    ("a - 1.5", lambda a, b, e: a - 1.5, "exact"),
    ("b // 2", lambda a, b, e: b // 2, "exact"),
    ("a % 3", lambda a, b, e: a % 3, "exact"),
    ("b / 4", lambda a, b, e: b / 4, "exact"),
    ("a > 2", lambda a, b, e: a > 2, "exact"),
]

PAIRS = [("f64", "f64"), ("f32", "f32"), ("f32", "f64"), ("i32", "f32"), ("u16", "f64"),
         ("i8", "i8"), ("u8", "u8"), ("i8", "u8"), ("i64", "i64"), ("u64", "u64"),
         ("i16", "u32"), ("u64", "i64"), ("bool", "i32"), ("bool", "bool")]


def numpy_results(a, b, e):
    """The ops NumPy computes for these dtypes, with their results (None where it refuses)."""
    out = []
    with np.errstate(all="ignore"):
        for _expr, fn, _tol in BINARY:
            try:
                want = np.asarray(fn(a, b, e))
            except (TypeError, ValueError):  # e.g. bool - bool, u64 << i64
                out.append(None)
                continue
            out.append(want if want.dtype in NAME else None)
    return out


def binary_kernel_source(da: str, db: str) -> tuple[str, list[int]]:
    """One kernel computing every op that NumPy and nbx both define for (da, db)."""
    a, b = np.zeros(1, NP[da]), np.zeros(1, NP[db])
    e = np.ones(1, NP[db])
    wants = numpy_results(a, b, e)
    used, types, exprs = [], [], []
    for i, ((expr, _fn, _tol), want) in enumerate(zip(BINARY, wants, strict=True)):
        if want is None:
            continue
        if da == db == "bool" and any(op in expr for op in ("+", "-", "*", "/", "%", "<<",
                                                             ">>", "**", "pow")):
            continue  # arithmetic on two bools is an error in nbx (LANGUAGE.md section 5)
        used.append(i)
        types.append(f"{NAME[want.dtype]}[n]")
        exprs.append(expr)
    source = (f"kernel f(a: {da}[n], b: {db}[n], e: {db}[n]) -> ({', '.join(types)}):\n"
              f"    return {', '.join(exprs)}\n")
    return source, used


@pytest.fixture(scope="module")
def binary_kernels():
    """{(da, db): (kernel, indexes into BINARY)}, compiled lazily (serial: element-wise
    semantics do not depend on the parallel variant)."""
    out = {}
    for da, db in PAIRS:
        source, used = binary_kernel_source(da, db)
        module = nbx.compile(source, filename=f"binary_{da}_{db}.nbx", parallel=False)
        out[(da, db)] = (module.f, used)
    return out


def edge_values(dtype: np.dtype, exponent: bool = False) -> np.ndarray:
    """Values where semantics are easy to get wrong: zeros of both signs, infinities, NaN,
    halves (rounding), negatives (floor division), integer limits."""
    if dtype.kind == "b":
        return np.array([False, True])
    if dtype.kind == "f":
        return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 0.5, -0.5, 1.5, -2.5, 3.0, -7.0,
                         1e-310, np.finfo(dtype).max], dtype)
    info = np.iinfo(dtype)
    if exponent:
        return np.array([0, 1, 2, 3, 7, 62, 63, 64, 65], dtype)
    values = [0, 1, 2, 3, 7, info.max, info.max - 1]
    if info.min < 0:
        values += [-1, -2, -7, info.min, info.min + 1]
    return np.array(values, dtype)


def elements(dtype: np.dtype, exponent: bool = False):
    if exponent and dtype.kind in "iu":
        return st.integers(0, 70)  # non-negative powers (negative ones raise)
    if exponent and dtype.kind == "b":
        return st.booleans()
    return hnp.from_dtype(dtype)


def assert_matches(got, want, tol, what):
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, NumPy {want.dtype}"
    assert got.shape == want.shape
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    both_nan = np.isnan(got) & np.isnan(want)
    if tol == "exact":
        ok = both_nan | ((got == want) & (np.signbit(got) == np.signbit(want)))
    else:  # a few ulps; infinities and zeros exactly
        eps = np.finfo(want.dtype).eps
        with np.errstate(all="ignore"):
            close = np.abs(got - want) <= 4 * eps * np.abs(want)
        ok = both_nan | (got == want) | (close & np.isfinite(want))
    if not ok.all():
        i = np.flatnonzero(~ok)[:4]
        raise AssertionError(f"{what}: at {i.tolist()} got {got[i]!r}, NumPy {want[i]!r}")


@pytest.mark.parametrize(("da", "db"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_binary_ops_match_numpy(binary_kernels, da, db):
    kernel, used = binary_kernels[(da, db)]
    # each result has NumPy's dtype by promotion, not by a cast on return
    spec = kernel.specialize()
    for i, res in zip(used, spec.ir.results, strict=True):
        assert not isinstance(res.expr, ir.Cast), \
            f"{BINARY[i][0]} for ({da}, {db}): nbx computes {res.expr.arg.dtype}, " \
            f"NumPy {res.dtype}"

    def compare(a, b, e):
        wants = numpy_results(a, b, e)
        got = kernel(a, b, e)
        ref = kernel.reference(a, b, e)
        for j, i in enumerate(used):
            expr, _fn, tol = BINARY[i]
            assert_matches(got[j], wants[i], tol, f"{expr} ({da}, {db}) compiled")
            assert_matches(ref[j], wants[i], tol, f"{expr} ({da}, {db}) reference")

    # every pair of edge values, then what Hypothesis finds
    a, b = np.meshgrid(edge_values(NP[da]), edge_values(NP[db]), indexing="ij")
    a, b = a.ravel(), b.ravel()
    e = np.resize(edge_values(NP[db], exponent=True), a.size)
    compare(a, b, e)

    @SETTINGS
    @given(st.data())
    def check(data):
        n = data.draw(st.integers(1, 6), label="n")
        a = data.draw(hnp.arrays(NP[da], n, elements=elements(NP[da])), label="a")
        b = data.draw(hnp.arrays(NP[db], n, elements=elements(NP[db])), label="b")
        e = data.draw(hnp.arrays(NP[db], n, elements=elements(NP[db], exponent=True)),
                      label="e")
        compare(a, b, e)

    check()


# --------------------------------------------------------------------------------------------
# one-argument functions and operators

UNARY = [("-a", np.negative), ("+a", np.positive), ("~a", np.invert), ("abs(a)", np.abs),
         ("sign(a)", np.sign), ("isnan(a)", np.isnan), ("isinf(a)", np.isinf),
         ("isfinite(a)", np.isfinite), ("floor(a)", np.floor), ("ceil(a)", np.ceil),
         ("trunc(a)", np.trunc), ("rint(a)", np.rint)]
TRANSCENDENTAL = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
                  "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
                  "acosh", "atanh", "erf", "erfc"]
NUMPY_NAME = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
              "acosh": "arccosh", "atanh": "arctanh"}
UNARY_DTYPES = ["f64", "f32", "i32", "u8", "i64", "bool"]


def transcendental(name):
    if name in ("erf", "erfc"):
        f = np.vectorize(getattr(math, name), otypes=[np.float64])
        return lambda x: f(x.astype(np.float64)).astype(x.dtype)
    return getattr(np, NUMPY_NAME.get(name, name))


def unary_table(dtype_name):
    """[(expr, NumPy function, tolerance)] defined for this dtype, as nbx defines them."""
    dt = NP[dtype_name]
    out = []
    for expr, fn in UNARY:
        if dt.kind == "b" and expr in ("-a", "+a", "sign(a)"):
            continue  # errors in nbx: arithmetic on a bool
        if dt.kind == "f" and expr == "~a":
            continue
        if dt.kind != "f" and expr.split("(")[0] in ("floor", "ceil", "trunc", "rint"):
            out.append((expr, lambda x: x.copy(), "exact"))  # unchanged, in its dtype
            continue
        out.append((expr, fn, "exact"))
    for name in TRANSCENDENTAL:
        f = transcendental(name)
        fn = f if dt.kind == "f" else (lambda x, f=f: f(x.astype(np.float64)))
        out.append((f"{name}(a)", fn, "ulp"))
    return out


@pytest.fixture(scope="module")
def unary_kernels():
    out = {}
    for dtype_name in UNARY_DTYPES:
        table = unary_table(dtype_name)
        x = np.zeros(1, NP[dtype_name])
        with np.errstate(all="ignore"):
            types = [NAME[np.asarray(fn(x)).dtype] for _e, fn, _t in table]
        source = (f"kernel f(a: {dtype_name}[n]) -> ({', '.join(t + '[n]' for t in types)}):\n"
                  f"    return {', '.join(e for e, _f, _t in table)}\n")
        out[dtype_name] = (nbx.compile(source, filename=f"unary_{dtype_name}.nbx",
                                       parallel=False).f, table)
    return out


@pytest.mark.parametrize("dtype", UNARY_DTYPES)
def test_unary_ops_match_numpy(unary_kernels, dtype):
    kernel, table = unary_kernels[dtype]

    def compare(a):
        got, ref = kernel(a), kernel.reference(a)
        with np.errstate(all="ignore"):
            for j, (expr, fn, tol) in enumerate(table):
                want = np.asarray(fn(a))
                assert_matches(got[j], want, tol, f"{expr} [{dtype}] compiled")
                assert_matches(ref[j], want, tol, f"{expr} [{dtype}] reference")

    compare(edge_values(NP[dtype]))

    @SETTINGS
    @given(hnp.arrays(NP[dtype], st.integers(1, 8), elements=hnp.from_dtype(NP[dtype])))
    def check(a):
        compare(a)

    check()


# --------------------------------------------------------------------------------------------
# casts: every dtype name is a function; float to integer truncates toward zero (values out of
# the target's range, NaN and inf are undefined, as in NumPy, and not compared)

CAST_SOURCES = ["f64", "f32", "i64", "u64", "i8", "bool"]


@pytest.fixture(scope="module")
def cast_kernels():
    out = {}
    for src in CAST_SOURCES:
        source = (f"kernel f(a: {src}[n]) -> ({', '.join(t + '[n]' for t in NP)}):\n"
                  f"    return {', '.join(f'{t}(a)' for t in NP)}\n")
        out[src] = nbx.compile(source, filename=f"cast_{src}.nbx", parallel=False).f
    return out


@pytest.mark.parametrize("src", CAST_SOURCES)
def test_casts_match_numpy(cast_kernels, src):
    kernel = cast_kernels[src]

    @SETTINGS
    @given(hnp.arrays(NP[src], st.integers(1, 8), elements=hnp.from_dtype(NP[src])))
    def check(a):
        compare(a)

    def compare(a):
        got, ref = kernel(a), kernel.reference(a)
        for j, target in enumerate(NP.values()):
            with np.errstate(all="ignore"):
                want = a.astype(target)
            defined = np.ones(a.shape, bool)
            if a.dtype.kind == "f" and target.kind in "iu":
                info = np.iinfo(target)
                with np.errstate(all="ignore"):
                    t = np.trunc(a.astype(np.float64))
                    defined = np.isfinite(t) & (t >= info.min) & (t <= float(info.max))
                    # the largest integers are not representable in the float: stay clear
                    defined &= np.abs(t) < 2.0 ** (info.bits - 1) - 2 ** 11
            for label, value in (("compiled", got[j]), ("reference", ref[j])):
                assert_matches(value[defined], want[defined], "exact",
                               f"{NAME[target]}({src}) {label}")

    compare(edge_values(NP[src]))
    check()


def test_u64_signed_comparisons_are_exact():
    m = nbx.compile("kernel f(a: u64[n], b: i64[n]) -> (bool[n], bool[n], bool[n], bool[n], "
                    "bool[n], bool[n], bool[n]):\n"
                    "    return a == b, a != b, a < b, a <= b, a > b, a >= b, b < a\n",
                    parallel=False)
    a = np.array([2**63, 2**64 - 1, 2**53 + 1, 0, 5, 2**63 - 1], np.uint64)
    b = np.array([2**63 - 1, -1, 2**53, -(2**63), 5, 2**63 - 1], np.int64)
    expected = (a == b, a != b, a < b, a <= b, a > b, a >= b, b < a)
    for got in (m.f(a, b), m.f.reference(a, b)):
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
