"""Calls with arguments of every wrong (or unusual) kind, on cpu and cuda (the simulator in CI):
each gives the documented TypeError or ValueError, naming the kernel and the parameter, or the
right result; never a Numba error, a wrong result or a crash. tests/test_calls.py has the
calling convention's main cases; these are the hostile ones (issue 5).
"""

from __future__ import annotations

import numpy as np
import pytest

import nbx

SRC = """
kernel k(x: f64[n], y: f64[n]) -> f64[n]:
    return x * 2 + y

kernel two(x: f64[n]) -> (f64[n], f64[n]):
    return x, -x

kernel generic(x: T[n], a: T) -> T[n]:
    return x * a
"""
TARGETS = ["cpu", "cuda"]
MODULES = {target: nbx.compile(SRC, filename="bad.nbx", target=target) for target in TARGETS}
X = np.arange(4.0)


def unaligned(values):
    """float64 values at an odd address (from a byte buffer)."""
    buf = np.zeros(values.size * 8 + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=np.float64, count=values.size, offset=1)
    out[...] = values
    return out


class Sub(np.ndarray):
    """A subclass of ndarray: taken as the array it is."""


def readonly(values):
    out = np.array(values)
    out.flags.writeable = False
    return out


RIGHT = {   # arguments that are odd but valid: the right result
    "big-endian": np.arange(4, dtype=">f8"),
    "unaligned": unaligned(X),
    "zero-stride": np.broadcast_to(np.float64(3), (4,)),
    "subclass": X.view(Sub),
    "read-only": readonly(X),
    "reversed": X[::-1].copy()[::-1],
    "list": [0.0, 1.0, 2.0, 3.0],
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(RIGHT))
def test_odd_valid_arguments_give_the_right_result(target, name):
    x = RIGHT[name]
    got = MODULES[target].k(x, X)
    np.testing.assert_array_equal(got, 2 * np.asarray(x, np.float64) + X)
    assert type(got) is np.ndarray and got.dtype == np.float64


WRONG = [
    (X.astype(complex), "complex128 array of shape (4,)"),
    (X.astype(np.float16), "float16 array of shape (4,)"),
    (X.astype(np.float32), "float32 array of shape (4,)"),
    (np.arange(4).astype("datetime64[s]"), "datetime64[s] array of shape (4,)"),
    (np.zeros(4, dtype=[("a", "f8")]), "array of shape (4,)"),
    (np.array([1.0, 2.0], dtype=object), "object array of shape (2,)"),
    (np.array(["a", "b"]), "<U1 array of shape (2,)"),
    (np.array(1.0), "float64 array of shape ()"),
    (np.ones((2, 2)), "float64 array of shape (2, 2)"),
    (np.matrix([1.0, 2.0]), "float64 array of shape (1, 2)"),
    (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "got a masked array"),
    (None, "got None"),
    ({}, "got dict"),
    ((i for i in range(4)), "got generator"),
    (b"abcd", "got bytes"),
    (memoryview(X), "got memoryview"),
    ([np.ones(2), np.ones(2)], "float64 array of shape (2, 2)"),
    ("1.0", "got str"),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("value, given", WRONG, ids=[str(i) for i in range(len(WRONG))])
def test_wrong_arguments_are_type_errors_naming_the_parameter(target, value, given):
    with pytest.raises(TypeError) as info:
        MODULES[target].k(value, X)
    text = str(info.value)
    assert text.startswith("k(): x must be a float64 array with 1 dimension (n), got ")
    assert given in text


@pytest.mark.parametrize("target", TARGETS)
def test_type_variables_bind_big_endian_arrays_as_their_dtype(target):
    got = MODULES[target].generic(np.arange(3, dtype=">i4"), 2)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [0, 2, 4])
    with pytest.raises(TypeError, match=r"a must be an int32 scalar, got float64 scalar "
                                        r"\(T is int32, bound by x\)"):
        MODULES[target].generic(np.arange(3, dtype=">i4"), np.float64(2))


@pytest.mark.parametrize("target", TARGETS)
def test_out_arguments(target):
    m = MODULES[target]
    with pytest.raises(TypeError, match=r"out must be a float64 array of shape \(4,\), got "
                                        r">f8 array"):
        m.k(X, X, out=np.zeros(4, ">f8"))          # written in place: native order only
    with pytest.raises(ValueError, match=r"^k\(\): out is read-only$"):
        m.k(X, X, out=readonly(np.zeros(4)))
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] overlap"):
        o = np.zeros(4)
        m.two(X, out=(o, o))
    x = np.arange(5.0)
    got = m.k(x[:4], x[1:], out=x[1:])             # overlapping both inputs
    np.testing.assert_array_equal(got, 2 * np.arange(4.0) + np.arange(1.0, 5.0))
    target_out = unaligned(np.zeros(4))
    assert m.k(X, X, out=target_out) is target_out
    np.testing.assert_array_equal(target_out, 3 * X)


@pytest.mark.parametrize("target", TARGETS)
def test_lengths_and_counts(target):
    m = MODULES[target]
    with pytest.raises(ValueError, match=r"^k\(\): dimension n is 4 in x but 3 in y$"):
        m.k(X, X[:3])
    with pytest.raises(TypeError, match=r"^k\(\) takes 2 arguments, got 3$"):
        m.k(X, X, X)
    with pytest.raises(TypeError, match=r"^k\(\) missing argument 'y'$"):
        m.k(X)
    with pytest.raises(TypeError, match=r"^k\(\) got an unexpected keyword argument 'z'$"):
        m.k(X, X, z=1)
