"""Failures found by the random-program campaigns (benchmarks/fuzz.py, tests/programs.py),
each kept as the smallest program that showed it, with the arguments that did.

Failures found by the other trust tests have their regression tests next to the tests that
found them:
- a huge integer literal next to a float was an internal error (OverflowError), now a
  CompileError "literal out of range": tests/test_hostile.py::test_huge_literals;
- big-endian input arrays were refused, now read as their native dtype:
  tests/test_bad_calls.py (odd valid arguments, type variables);
- kernels held the GIL while computing: tests/test_concurrency.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from programs import NP, Mismatch, V, cast, compare, function, reduction

import nbx

WIDENED_ACOSH = """
kernel kern(p0: f32[n]) -> f64[n]:
    return f64(acosh(p0))
"""


@pytest.fixture(scope="module")
def widened_acosh():
    return nbx.compile(WIDENED_ACOSH, filename="regression.nbx")["kern"]


def test_an_f32_function_widened_to_f64_is_compared_at_f32_precision(widened_acosh):
    """Campaign seed 1000, failure 1: acosh of an f32 (LLVM's acoshf is 1 ulp from NumPy's
    correctly rounded 3.0658824 at 10.75, within section 5's bounds) reached an f64 result,
    and the harness compared it at f64's tolerance. A value keeps the tolerance of its least
    precise inexact step."""
    p0 = np.array([10.75, 4.5, 1.25, 2.0], np.float32)
    widened = cast("f64", function("acosh", [V("p0", NP["f32"], frozenset("n"))]))
    assert widened.dtype == NP["f64"] and not widened.exact
    assert widened.rtol == 3e-5          # f32's, not f64's 1e-11
    got, want = widened_acosh(p0), widened_acosh.reference(p0)
    compare(got, want, widened, "result 0")
    # and the comparison is still tight enough to catch a real error of f32 size
    with pytest.raises(Mismatch, match="differ"):
        compare(got * (1 + 1e-4), want, widened, "result 0")


def test_a_clip_of_a_bool_and_a_literal_takes_the_strong_operands_type():
    """Campaign seed 100012 (device run 1): `clip(t5, 9, p0)` with t5 a bool and p0 a u16
    was refused ("cannot return i64 as u16"): the checker promoted bool with the literal
    first (i64). NumPy's clip gives u16: weak operands adapt to the strong ones' type."""
    mod = nbx.compile("kernel kern(b: bool[n], p0: u16) -> u16[n]:\n"
                      "    return clip(b, 9, p0)\n", filename="regression.nbx")
    b = np.array([True, False])
    got = mod.kern(b, np.uint16(3))
    want = np.clip(b, 9, np.uint16(3))
    assert got.dtype == want.dtype == np.uint16 and np.array_equal(got, want)


OVERFLOW = """
kernel pow_below_one(p3: u32[n]) -> bool[n]:
    return pow(i64(3), p3) < 1

kernel overflowed(x: i64[n], y: i64[n]) -> (bool[n], bool[n], bool, bool):
    return x * y < 0, x + y < x, sum(x) < 0, prod(y) == 0
"""


@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("parallel", [False, True])
def test_signed_overflow_wraps_also_in_comparisons(target, parallel):
    """Campaign seed 100017 (device run 1): `pow(i64(3), p3) < (p0 ** 0)` was False for every
    p3 with parallel=False, where the wrapped power is negative. Numba marks signed integer
    arithmetic `nsw` (overflow undefined) and LLVM folded the comparison; nbx now computes
    signed +, -, * and powers (and integer sums and products) on unsigned bits."""
    mod = nbx.compile(OVERFLOW, filename="regression.nbx", target=target, parallel=parallel)
    p3 = np.array([3, 1537262182, 2923110701, 1119824718, 0, 299732921, 1], np.uint32)
    got = mod.pow_below_one(p3)
    assert np.array_equal(got, mod.pow_below_one.reference(p3))
    assert got.any() and not got.all()
    big = 2**62
    x = np.array([big, big, 5, 7, 3], np.int64)
    y = np.array([2, big, 3**39, big, 2**32], np.int64)
    got, want = mod.overflowed(x, y), mod.overflowed.reference(x, y)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
    assert got[0].any() and got[1].any() and got[2] and got[3]


def test_a_negative_power_feeding_only_an_empty_result_does_not_raise():
    """Campaign seed 102018 (device run 1): the reference raised "negative integer powers"
    from `pow(q, s)` over [n] feeding a result over [m, n] with m = 0; the compiled kernel
    computes nothing there and returns. That is nbx's documented behaviour (docs/language.md),
    and the same kernel still raises when the result is not empty."""
    mod = nbx.compile("kernel kern(a: u32[m], q: i8[n]) -> i64[m, n]:\n"
                      "    return a + pow(q, sum(q))\n", filename="regression.nbx")
    q = np.array([-1, -2], np.int8)
    assert mod.kern(np.zeros(0, np.uint32), q).shape == (0, 2)
    with pytest.raises(ValueError, match="negative integer powers"):
        mod.kern.reference(np.zeros(0, np.uint32), q)
    with pytest.raises(ValueError, match="negative integer powers"):
        mod.kern(np.ones(1, np.uint32), q)


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_a_negative_power_feeding_only_an_empty_reduction_does_not_raise(target):
    """Campaign seed 614014 (device run 4, cuda): `mean(clip(C1 ** t2, ..., C1 < p1))` with t2
    negative over [k] and p1 over [m, k], m = 0: the power only feeds a mean over nothing (NaN),
    so nbx computes no power, where NumPy raises."""
    mod = nbx.compile("kernel kern(p1: u32[m, k]) -> f64:\n"
                      "    return mean(clip(True ** (-(8 >> index(k))), 0, p1))\n",
                      filename="regression.nbx", target=target)
    got = mod.kern(np.zeros((0, 1), np.uint32))
    assert np.isnan(got)
    with pytest.raises(ValueError, match="negative integer powers"):
        mod.kern(np.zeros((1, 1), np.uint32))


def test_a_literal_first_in_clip_stays_weak_in_the_generator():
    """Campaign seed 602004 (device run 4): `var(maximum(-C2, clip(r9, p1, p0)))` with r9 = 1,
    p1: i16, p0: f32[k] is f32 in nbx (literals are weak), but the generator asked np.clip,
    which makes its first argument a strong i64 array, and compared an f32 variance at f64's
    tolerance. The generator asks the clip ufunc now."""
    one = V("1", NP["i64"], weak="int", bits=(0, 1), const=True)
    p1, p0 = V("p1", NP["i16"]), V("p0", NP["f32"], frozenset("k"))
    clipped = function("clip", [one, p1, p0])
    assert clipped.dtype == NP["f32"]
    spread = reduction("var", clipped, (), ["k"])
    assert spread.rtol == 3e-5
    mod = nbx.compile("kernel kern(p0: f32[k], p1: i16) -> f32:\n"
                      "    return var(clip(1, p1, p0))\n", filename="regression.nbx")
    p0 = np.array([348.05396, -0.01238229, -18.209061, 0.0034870098], np.float32)
    got = mod.kern(p0, np.int16(1))
    assert got.dtype == np.float32
    compare(got, mod.kern.reference(p0, np.int16(1)), spread, "result 0")
