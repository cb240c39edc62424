"""Kernels at call time (LANGUAGE.md section 7) on the cpu target: argument binding and
conversion, type variables, dimension checks, results, out=, empty dimensions, introspection
and concurrent calls from Python threads.

One module is compiled once for the whole file, and arrays are small, to keep compile time low.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nbx

SRC = '''
const EPS = 1e-12

def sq(x):
    return x * x

kernel normalize(x: f64[n]) -> f64[n]:
    "Zero mean, unit variance."
    m = mean(x)
    d = x - m
    return d / sqrt(mean(sq(d)) + EPS)

kernel matvec(A: f32[m, k], v: f32[k]) -> f32[m]:
    return sum(A * v, over=k)

kernel saxpy(a: T, x: T[n], y: T[n]) -> T[n]:
    return a * x + y

kernel minmax(x: T[n]) -> (T, T):
    return min(x), max(x)

kernel affine(x: f64[n]) -> f64[n]:
    return x * 2 + 1

kernel convert(a: i32, b: u8, c: f32, d: bool) -> (i32, u8, f32, bool):
    return a, b, c, d

kernel pick(a: T, b: T) -> T:
    return maximum(a, b)

kernel widen(x: f64[n], y: f64[m]) -> f64[n, m]:
    return x

kernel narrow(x: f64[n]) -> f32[n]:
    return x * 0.5

kernel total(x: f64[n]) -> f64:
    return sum(x)

kernel rowstats(A: f64[m, k]) -> (f64[m], i64[m], f64[m]):
    return max(A, over=k), argmin(A, over=k), sum(A, over=k)

kernel argext(x: f64[n]) -> (i64, i64):
    return argmin(x), argmax(x)

kernel peak(x: f64[n]) -> i64:
    return argmax(x)
'''

mod = nbx.compile(SRC, filename="calls.nbx")

F32, F64, I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)


def normalize_np(x):
    d = x - x.mean()
    return d / np.sqrt((d * d).mean() + 1e-12)


def matrix(m=3, k=4):
    return (np.arange(m * k, dtype=np.float32).reshape(m, k) - 5) / 4


# arguments ------------------------------------------------------------------------------------
def test_positional_and_keyword_calls():
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    expected = normalize_np(x)
    np.testing.assert_allclose(mod.normalize(x), expected, rtol=1e-12)
    np.testing.assert_allclose(mod.normalize(x=x), expected, rtol=1e-12)
    A, v = matrix(), np.arange(4, dtype=np.float32)
    for result in (mod.matvec(A, v), mod.matvec(A=A, v=v), mod.matvec(v=v, A=A),
                   mod.matvec(A, v=v)):
        np.testing.assert_allclose(result, A @ v, rtol=1e-6)
        assert result.dtype == F32


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "matvec() missing argument 'A'"),
    ((matrix(),), {}, "matvec() missing argument 'v'"),
    ((matrix(), np.ones(4, np.float32), 1), {}, "matvec() takes 2 arguments, got 3"),
    ((matrix(),), {"v": np.ones(4, np.float32), "w": 1},
     "matvec() got an unexpected keyword argument 'w'"),
    ((matrix(),), {"A": matrix(), "v": np.ones(4, np.float32)},
     "matvec() got multiple values for argument 'A'"),
])
def test_missing_extra_duplicate_arguments(args, kwargs, message):
    with pytest.raises(TypeError) as info:
        mod.matvec(*args, **kwargs)
    assert str(info.value) == message


# array parameters -----------------------------------------------------------------------------
@pytest.mark.parametrize("kernel, args, message", [
    ("normalize", (np.ones(5, np.float32),),
     "normalize(): x must be a float64 array with 1 dimension (n), got float32 array of shape "
     "(5,)"),
    ("normalize", (np.ones((2, 3)),),
     "normalize(): x must be a float64 array with 1 dimension (n), got float64 array of shape "
     "(2, 3)"),
    ("normalize", (np.zeros(()),),
     "normalize(): x must be a float64 array with 1 dimension (n), got float64 array of shape ()"),
    ("normalize", (None,),
     "normalize(): x must be a float64 array with 1 dimension (n), got None"),
    ("normalize", (np.float64(1.0),),
     "normalize(): x must be a float64 array with 1 dimension (n), got float64 scalar"),
    ("normalize", (2.5,),
     "normalize(): x must be a float64 array with 1 dimension (n), got Python float 2.5"),
    ("matvec", (np.ones((3, 4)), np.ones(4, np.float32)),
     "matvec(): A must be a float32 array with 2 dimensions (m, k), got float64 array of shape "
     "(3, 4)"),
    ("matvec", (np.ones((3, 4), np.float32), np.ones((4, 1), np.float32)),
     "matvec(): v must be a float32 array with 1 dimension (k), got float32 array of shape "
     "(4, 1)"),
    ("rowstats", (np.ones(3, np.int64),),
     "rowstats(): A must be a float64 array with 2 dimensions (m, k), got int64 array of shape "
     "(3,)"),
])
def test_array_type_errors_exact_text(kernel, args, message):
    with pytest.raises(TypeError) as info:
        mod[kernel](*args)
    assert str(info.value) == message


@pytest.mark.parametrize("value, given", [
    ("abc", "got str"),
    ({1.0, 2.0}, "got set"),
    (range(3), "got range"),
    ([1.0, "a"], "got a list that does not convert"),
    ([[1.0, 2.0], [3.0]], "got a list that does not convert"),
    ([[1.0, 2.0]], "got float64 array of shape (1, 2)"),
    (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "got a masked array"),
])
def test_array_other_values_are_type_errors(value, given):
    with pytest.raises(TypeError) as info:
        mod.normalize(value)
    text = str(info.value)
    assert text.startswith("normalize(): x must be a float64 array with 1 dimension (n), ")
    assert given in text


def _layouts():
    base = matrix(6, 8)
    vec = np.linspace(-1, 1, 8, dtype=np.float32)
    return {
        "fortran": (np.asfortranarray(base[:3, :4]), vec[:4].copy()),
        "transposed": (np.ascontiguousarray(base[:4, :3].T), vec[:4].copy()),
        "steps": (base[::2, 1::2], vec[::2]),
        "negative": (base[::-2, ::-2], vec[::-2]),
        "mixed": (np.asfortranarray(base)[1:5, ::-3], vec[::3][::-1].copy()),
    }


@pytest.mark.parametrize("layout", list(_layouts()))
def test_any_strides_and_memory_order(layout):
    A, v = _layouts()[layout]
    assert A.dtype == F32 and A.ndim == 2
    before = A.copy(), v.copy()
    np.testing.assert_allclose(mod.matvec(A, v), A.astype(np.float64) @ v, rtol=1e-5)
    np.testing.assert_array_equal(A, before[0])    # inputs are never written
    np.testing.assert_array_equal(v, before[1])


def test_strided_and_readonly_inputs_elementwise():
    x = np.arange(20.0)
    np.testing.assert_array_equal(mod.affine(x[::-3]), x[::-3] * 2 + 1)
    frozen = np.arange(5.0)
    frozen.flags.writeable = False
    np.testing.assert_array_equal(mod.affine(frozen), frozen * 2 + 1)


def test_lists_and_tuples_are_converted_with_the_declared_dtype():
    np.testing.assert_allclose(mod.normalize([1, 2, 3]), normalize_np(np.array([1.0, 2, 3])))
    np.testing.assert_allclose(mod.normalize((1.0, 2.0, 4.0)),
                               normalize_np(np.array([1.0, 2, 4])))
    rows = [[1, 2], [3, 4], [5, 6]]
    result = mod.matvec(rows, (1.0, -1.0))
    assert result.dtype == F32
    np.testing.assert_array_equal(result, [-1, -1, -1])
    # np.asarray(value, dtype), as the spec says: bools and ints become f32
    np.testing.assert_array_equal(mod.matvec([[True, False]], [2, 3]), [2])


# scalar parameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    ((1, 2, 3, True), (1, 2, 3.0, True)),
    ((np.int64(-7), np.uint8(250), np.float64(0.25), np.bool_(False)), (-7, 250, 0.25, False)),
    ((np.int8(5), np.uint16(9), np.int32(3), 0.0 == 0.0), (5, 9, 3.0, True)),
    ((np.uint64(5), np.uint32(255), 1.5, np.True_), (5, 255, 1.5, True)),
    ((True, True, False, np.bool_(True)), (1, 1, 0.0, True)),
    ((np.array(7, np.int16), np.array(8, np.uint8), np.array(2.5), np.array(True)),
     (7, 8, 2.5, True)),
    ((-2**31, 255, 1e300, False), (-2**31, 255, np.float32(np.inf), False)),
    ((0, 0, np.float16(1.5), False), (0, 0, 1.5, False)),      # NumPy scalars beyond nbx's
    ((0, 0, np.longdouble(0.5), False), (0, 0, 0.5, False)),   # dtypes, when same-kind
])
def test_scalar_conversions(args, expected):
    result = mod.convert(*args)
    assert isinstance(result, tuple) and len(result) == 4
    assert [type(r) for r in result] == [np.int32, np.uint8, np.float32, np.bool_]
    assert [r.item() for r in result] == list(expected)


@pytest.mark.parametrize("position, value, given", [
    (0, 3.5, "Python float 3.5 (not a same-kind conversion)"),
    (0, np.float32(1.0), "float32 scalar (not a same-kind conversion)"),
    (0, np.array(3.0), "float64 scalar (not a same-kind conversion)"),
    (1, np.int64(3), "int64 scalar (not a same-kind conversion)"),    # signed into unsigned
    (1, np.int8(-1), "int8 scalar (not a same-kind conversion)"),
    (2, 1 + 2j, "complex"),
    (2, np.complex128(1), "complex128 scalar (not a same-kind conversion)"),
    (3, 1, "Python int 1 (not a same-kind conversion)"),
    (3, 0.0, "Python float 0.0 (not a same-kind conversion)"),
    (0, "3", "str"),
    (0, None, "None"),
    (0, np.array([3], np.int32), "int32 array of shape (1,)"),
    (0, [3], "list of length 1"),
])
def test_scalar_type_errors(position, value, given):
    args = [1, 2, 3.0, True]
    args[position] = value
    name = "abcd"[position]
    dtype = ["an int32", "a uint8", "a float32", "a bool"][position]
    with pytest.raises(TypeError) as info:
        mod.convert(*args)
    assert str(info.value) == f"convert(): {name} must be {dtype} scalar, got {given}"


@pytest.mark.parametrize("position, value, dtype", [
    (1, 300, "uint8"), (1, -1, "uint8"), (0, 2**31, "int32"), (0, -2**31 - 1, "int32"),
    (2, 10**400, "float32"),
], ids=["u8-300", "u8-minus-1", "i32-2**31", "i32-below-min", "f32-10**400"])
def test_python_ints_out_of_range_are_value_errors(position, value, dtype):
    # decision: a Python int that the declared dtype cannot hold is a ValueError (NumPy 2
    # raises OverflowError for np.uint8(300)); it is never wrapped silently
    args = [1, 2, 3.0, True]
    args[position] = value
    with pytest.raises(ValueError) as info:
        mod.convert(*args)
    assert str(info.value) == f"convert(): {'abcd'[position]} = {value} is out of range for {dtype}"


# type variables -------------------------------------------------------------------------------
def test_python_scalars_take_the_dtype_bound_by_arrays():
    x32 = np.arange(4, dtype=np.float32)
    y32 = np.full(4, 0.5, np.float32)
    for a in (2.0, 2, True, np.float32(2.0), np.array(2.0, np.float32)):
        result = mod.saxpy(a, x32, y32)
        assert result.dtype == F32
        np.testing.assert_array_equal(result, np.float32(float(a)) * x32 + y32)
    result = mod.saxpy(2.0, x=np.arange(3.0), y=[1, 2, 3])     # a list takes the bound dtype
    assert result.dtype == F64
    np.testing.assert_array_equal(result, [1, 4, 7])
    result = mod.saxpy(3, np.arange(3, dtype=np.int64), np.ones(3, np.int64))
    assert result.dtype == I64
    np.testing.assert_array_equal(result, [1, 4, 7])


def test_type_variable_mismatches():
    x32, x64 = np.ones(4, np.float32), np.ones(4)
    with pytest.raises(TypeError) as info:
        mod.saxpy(2.0, x32, x64)
    assert str(info.value) == ("saxpy(): y must be a float32 array with 1 dimension (n), got "
                               "float64 array of shape (4,) (T is float32, bound by x)")
    with pytest.raises(TypeError) as info:                     # a NumPy scalar binds first
        mod.saxpy(np.float64(2.0), x32, x32)
    assert str(info.value) == ("saxpy(): x must be a float64 array with 1 dimension (n), got "
                               "float32 array of shape (4,) (T is float64, bound by a)")
    with pytest.raises(TypeError, match=r"^saxpy\(\): a must be an int64 scalar, got Python "
                                        r"float 2\.5"):
        mod.saxpy(2.5, np.ones(3, np.int64), np.ones(3, np.int64))
    with pytest.raises(TypeError, match=r"^pick\(\): b must be an int16 scalar, got int32 "
                                        r"scalar \(T is int16, bound by a\)$"):
        mod.pick(np.int16(1), np.int32(2))
    with pytest.raises(TypeError, match=r"^pick\(\): b must be an int8 scalar, got Python "
                                        r"float 2\.5"):
        mod.pick(np.int8(1), 2.5)
    with pytest.raises(ValueError, match=r"^pick\(\): b = 300 is out of range for uint8$"):
        mod.pick(np.uint8(1), 300)
    with pytest.raises(TypeError, match=r"^saxpy\(\): x must be a T \(any dtype\) array .*"
                                        r"got complex128 array"):
        mod.saxpy(1.0, np.ones(2, complex), np.ones(2, complex))


@pytest.mark.parametrize("args, kind, value", [
    ((1, 2), np.int64, 2),
    ((1, 2.5), np.float64, 2.5),              # decision: all Python values together, as NumPy
    ((3.5, True), np.float64, 3.5),
    ((True, False), np.bool_, True),
    ((-1, True), np.int64, 1),
    ((np.int8(3), 4), np.int8, 4),             # a NumPy scalar binds; the Python int follows
    ((5, np.uint16(4)), np.uint16, 5),
    ((np.array(2, np.int16), 3), np.int16, 3),
])
def test_type_variable_binding_of_scalars(args, kind, value):
    result = mod.pick(*args)
    assert type(result) is kind
    assert result == value


def test_type_variable_bound_by_lists_only():
    result = mod.saxpy(2, [1, 2], [3, 4])
    assert result.dtype == I64
    np.testing.assert_array_equal(result, [5, 8])
    result = mod.saxpy(2, [1.5, 2], [3, 4])                    # decision: result_type of all
    assert result.dtype == F64
    np.testing.assert_array_equal(result, [6, 8])


def test_each_binding_compiles_once(monkeypatch):
    calls = []
    compile_kernel = mod._compile_kernel

    def counting(definition, binding):
        calls.append((definition.name, tuple(binding.values())))
        return compile_kernel(definition, binding)

    monkeypatch.setattr(mod, "_compile_kernel", counting)
    specs = len(mod.pick._specs)
    for _ in range(3):
        assert mod.pick(np.int32(1), np.int32(2)) == 2
        assert mod.pick(np.uint32(7), 3) == 7
        assert mod.pick(np.int32(5), -1) == 5
    assert calls == [("pick", (np.dtype(np.int32),)), ("pick", (np.dtype(np.uint32),))]
    assert len(mod.pick._specs) == specs + 2
    spec = mod.pick._specs[(np.dtype(np.int32),)]
    dispatcher = spec.entry if hasattr(spec.entry, "signatures") else spec.entry.__wrapped__
    assert len(dispatcher.signatures) == 1              # and Numba compiled it once
    x32 = np.arange(5, dtype=np.float32)
    new = {(F32,), (F64,)} - set(mod.saxpy._specs)
    for _ in range(3):
        mod.saxpy(1.0, x32, x32)
        mod.saxpy(1.0, x32.astype(np.float64), x32.astype(np.float64))
    assert mod.saxpy._specs[(F32,)] is mod.saxpy.specialize({"T": F32})
    assert [name for name, _ in calls].count("saxpy") == len(new)


# dimensions -----------------------------------------------------------------------------------
def test_two_lengths_for_one_dimension():
    with pytest.raises(ValueError) as info:
        mod.saxpy(1.0, np.ones(5), np.ones(4))
    assert str(info.value) == "saxpy(): dimension n is 5 in x but 4 in y"
    with pytest.raises(ValueError) as info:
        mod.matvec(matrix(3, 4), np.ones(3, np.float32))
    assert str(info.value) == "matvec(): dimension k is 4 in A but 3 in v"


# results --------------------------------------------------------------------------------------
def test_one_result_is_an_array_or_a_numpy_scalar():
    x = np.array([1.0, 2.0, 4.0])
    assert type(mod.affine(x)) is np.ndarray
    assert type(mod.total(x)) is np.float64 and mod.total(x) == 7.0
    lo, hi = mod.minmax(np.array([3, -2, 9], np.float32))
    assert type(lo) is np.float32 and type(hi) is np.float32 and (lo, hi) == (-2, 9)
    result = mod.minmax(np.array([3, -2, 9], np.int16))
    assert isinstance(result, tuple) and [type(r) for r in result] == [np.int16, np.int16]
    imin, imax = mod.argext(np.array([2.0, -1.0, 5.0, -1.0, 5.0]))
    assert type(imin) is np.int64 and (imin, imax) == (1, 2)
    assert type(mod.peak(np.array([1.0, 3.0, 3.0]))) is np.int64


def test_several_results_are_a_tuple():
    A = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    result = mod.rowstats(A)
    assert isinstance(result, tuple) and len(result) == 3
    np.testing.assert_array_equal(result[0], [3, 5])
    np.testing.assert_array_equal(result[1], [1, 2])
    np.testing.assert_array_equal(result[2], [6, 4])
    assert [r.dtype for r in result] == [F64, I64, F64]


def test_returned_value_is_broadcast_to_the_declared_dimensions():
    x, y = np.arange(4.0), np.arange(3.0)
    result = mod.widen(x, y)
    assert result.shape == (4, 3) and result.flags.writeable
    np.testing.assert_array_equal(result, np.broadcast_to(x[:, None], (4, 3)))


def test_returned_value_is_converted_to_the_declared_dtype():
    result = mod.narrow(np.array([1.0, 3.0]))
    assert result.dtype == F32
    np.testing.assert_array_equal(result, [0.5, 1.5])


def test_unsafe_result_conversion_and_extra_dimension_are_compile_errors():
    with pytest.raises(nbx.CompileError) as info:
        nbx.compile("kernel g(x: f64[n]) -> i32[n]:\n    return x\n", filename="k.nbx")
    assert str(info.value).startswith("k.nbx:2:")
    assert "i32(" in str(info.value)                       # suggests an explicit cast
    with pytest.raises(nbx.CompileError) as info:
        nbx.compile("kernel g(A: f64[m, k]) -> f64[m]:\n    return A\n", filename="k.nbx")
    assert "sum(..., over=k)" in str(info.value)


# out= -----------------------------------------------------------------------------------------
def test_out_is_written_and_returned():
    x = np.arange(6.0)
    out = np.zeros(6)
    assert mod.affine(x, out=out) is out
    np.testing.assert_array_equal(out, x * 2 + 1)
    strided = np.zeros(12)[::2]                           # non-contiguous, no overlap
    assert mod.affine(x, out=strided) is strided
    np.testing.assert_array_equal(strided, x * 2 + 1)
    fortran = np.zeros((6, 3), order="F")
    assert mod.widen(x, np.ones(3), out=fortran) is fortran
    np.testing.assert_array_equal(fortran, np.broadcast_to(x[:, None], (6, 3)))
    np.testing.assert_array_equal(mod.affine(x, out=None), x * 2 + 1)


@pytest.mark.parametrize("out, given", [
    (np.zeros(6, np.float32), "float32 array of shape (6,)"),
    (np.zeros(5), "float64 array of shape (5,)"),
    (np.zeros((6, 1)), "float64 array of shape (6, 1)"),
    ([0.0] * 6, "list of length 6"),
    (np.float64(0.0), "float64 scalar"),
])
def test_out_of_wrong_dtype_or_shape_is_a_type_error(out, given):
    with pytest.raises(TypeError) as info:
        mod.affine(np.arange(6.0), out=out)
    assert str(info.value) == f"affine(): out must be a float64 array of shape (6,), got {given}"


def test_read_only_out_is_a_value_error():
    out = np.zeros(6)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"^affine\(\): out is read-only$"):
        mod.affine(np.arange(6.0), out=out)
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("view", ["same", "reversed", "shifted", "strided"])
def test_out_overlapping_an_input_gives_the_fresh_result(view):
    base = np.linspace(-3, 5, 13)
    x = {"same": base, "reversed": base, "shifted": base[1:], "strided": base[::2]}[view]
    out = {"same": base, "reversed": base[::-1], "shifted": base[:-1],
           "strided": base[::2][::-1]}[view]
    expected = x * 2 + 1
    assert mod.affine(x, out=out) is out
    np.testing.assert_array_equal(out, expected)


def test_out_overlap_with_multi_pass_kernel():
    # normalize reads x in three passes: writing out=x early would corrupt later passes
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0, -3.0])
    expected = mod.normalize(x.copy())
    assert mod.normalize(x, out=x) is x
    np.testing.assert_allclose(x, expected, rtol=1e-12)
    y = np.array([1.0, 4.0, 2.0, 8.0, 5.0, -3.0])
    expected = mod.normalize(y[::-1].copy())
    rev = y[::-1]
    assert mod.normalize(rev, out=y) is y
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_out_tuple_with_none_entries():
    x = np.array([2.0, -1.0, 7.0])
    lo = np.zeros(())
    result = mod.minmax(x, out=(lo, None))
    assert result[0] is lo and lo[()] == -1.0
    assert type(result[1]) is np.float64 and result[1] == 7.0
    lo, hi = np.zeros(()), np.zeros(())
    result = mod.minmax(x, out=(lo, hi))
    assert result[0] is lo and result[1] is hi and (lo[()], hi[()]) == (-1.0, 7.0)
    A = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    arg = np.full(2, -9, np.int64)
    result = mod.rowstats(A, out=(None, arg, None))
    assert result[1] is arg
    np.testing.assert_array_equal(arg, [1, 2])


@pytest.mark.parametrize("out, error, message", [
    (np.zeros(()), TypeError,
     "minmax(): out must be a tuple of 2 arrays (or None entries), got float64 array of shape ()"),
    ((np.zeros(()),), TypeError,
     "minmax(): out must be a tuple of 2 arrays (or None entries), got tuple of length 1"),
    ([np.zeros(()), None], TypeError,
     "minmax(): out must be a tuple of 2 arrays (or None entries), got list of length 2"),
    ((np.zeros((), np.float32), None), TypeError,
     "minmax(): out[0] must be a float64 array of shape (), got float32 array of shape ()"),
    ((None, np.zeros(1)), TypeError,
     "minmax(): out[1] must be a float64 array of shape (), got float64 array of shape (1,)"),
])
def test_out_tuple_errors(out, error, message):
    with pytest.raises(error) as info:
        mod.minmax(np.ones(3), out=out)
    assert str(info.value) == message


def test_out_entries_sharing_memory_are_refused():
    # decision: two results cannot both be kept in one array, so this is a ValueError
    both = np.zeros(())
    with pytest.raises(ValueError, match=r"^minmax\(\): out\[0\] and out\[1\] overlap"):
        mod.minmax(np.ones(3), out=(both, both))
    with pytest.raises(TypeError, match=r"^rowstats\(\): out\[1\] must be an int64 array of "
                                        r"shape \(2,\), got float64 array of shape \(2,\)$"):
        mod.rowstats(np.ones((2, 3)), out=(None, np.zeros(2), None))


def test_scalar_result_into_a_zero_dimensional_out():
    out = np.zeros(())
    assert mod.total(np.array([1.0, 2.5]), out=out) is out
    assert out[()] == 3.5
    with pytest.raises(TypeError, match=r"^total\(\): out must be a float64 array of shape "
                                        r"\(\), got float64 array of shape \(1,\)$"):
        mod.total(np.ones(2), out=np.zeros(1))


# zero-length dimensions -----------------------------------------------------------------------
def test_zero_length_dimensions():
    empty = np.zeros(0)
    result = mod.normalize(empty)
    assert result.shape == (0,) and result.dtype == F64
    assert mod.affine(empty, out=np.zeros(0)).shape == (0,)
    assert mod.widen(np.ones(3), empty).shape == (3, 0)
    assert mod.widen(empty, np.ones(3)).shape == (0, 3)
    assert mod.matvec(np.ones((0, 3), np.float32), np.ones(3, np.float32)).shape == (0,)
    np.testing.assert_array_equal(
        mod.matvec(np.ones((2, 0), np.float32), np.ones(0, np.float32)), [0, 0])
    assert type(mod.total(empty)) is np.float64 and mod.total(empty) == 0.0
    assert mod.saxpy(2.0, [], []).shape == (0,)
    result = mod.rowstats(np.zeros((0, 3)))                # nothing reduced is empty
    assert [r.shape for r in result] == [(0,), (0,), (0,)]


@pytest.mark.parametrize("kernel, arg, reduction, dim", [
    ("minmax", np.zeros(0), "min", "n"),
    ("minmax", np.zeros(0, np.int32), "min", "n"),
    ("argext", np.zeros(0), "argmin", "n"),
    ("peak", np.zeros(0), "argmax", "n"),
    ("rowstats", np.zeros((2, 0)), "max", "k"),
])
def test_empty_min_max_argmin_argmax_are_value_errors(kernel, arg, reduction, dim):
    pattern = rf"^{kernel}\(\): {reduction}\(\) over dimension {dim} of length 0"
    with pytest.raises(ValueError, match=pattern):
        mod[kernel](arg)
    with pytest.raises(ValueError, match=pattern):         # the reference agrees
        mod[kernel].reference(arg)


# introspection --------------------------------------------------------------------------------
def test_doc_signature_repr():
    k = mod.normalize
    assert k.__doc__ == "normalize(x: f64[n]) -> f64[n]\n\nZero mean, unit variance."
    assert k.signature == "normalize(x: f64[n]) -> f64[n]"
    assert k.__name__ == "normalize"
    assert repr(k) == "<nbx.Kernel normalize(x: f64[n]) -> f64[n] target='cpu'>"
    assert mod.saxpy.__doc__ == "saxpy(a: T, x: T[n], y: T[n]) -> T[n]"
    assert mod.minmax.signature == "minmax(x: T[n]) -> (T, T)"
    assert mod.matvec.signature == "matvec(A: f32[m, k], v: f32[k]) -> f32[m]"
    assert repr(mod).startswith("<nbx.Module 'calls.nbx': normalize, matvec, saxpy")
    assert isinstance(mod.normalize, nbx.Kernel) and isinstance(mod, nbx.Module)


def test_source_is_the_generated_python():
    source = mod.normalize.source
    assert source.startswith("# Generated by nbx from calls.nbx: kernel normalize")
    assert "def kernel_normalize(" in source and "prange" in source
    compile(source, "generated.py", "exec")                # real Python text
    spec = mod.normalize.specialize()
    assert spec.path.read_text() == source                  # the file Numba compiled
    assert "(T=f32)" in mod.saxpy.specialize({"T": F32}).source.splitlines()[0]


def test_explain_mentions_stages():
    text = mod.normalize.explain()
    assert "3 stages" in text
    for word in ("stage 0", "stage 1", "stage 2", "reduce", "write"):
        assert word in text
    assert "T=f32" in mod.saxpy.explain({"T": "f32"})


def test_reference_agrees_and_checks_arguments_alike():
    x = np.array([1.0, 4.0, 2.0, 8.0])
    np.testing.assert_allclose(mod.normalize.reference(x), mod.normalize(x), rtol=1e-12)
    assert mod.minmax.reference(x.astype(np.float32)) == mod.minmax(x.astype(np.float32))
    with pytest.raises(TypeError, match=r"^normalize\(\): x must be a float64 array"):
        mod.normalize.reference(x.astype(np.float32))


# threads --------------------------------------------------------------------------------------
THREAD_SCRIPT = r'''
import sys, threading
import numpy as np
import numba
import nbx

mod = nbx.compile(SRC, filename="calls.nbx")
rng = np.random.default_rng(0)
n = 100_000
x = rng.standard_normal(n)
x32 = x.astype(np.float32)
A = rng.standard_normal((250, 400)).astype(np.float32)
v = rng.standard_normal(400).astype(np.float32)

def affine():
    return mod.affine(x), x * 2 + 1, 0

def saxpy():
    return mod.saxpy(2.0, x32, x32), np.float32(2.0) * x32 + x32, 1e-6

def normalize():
    d = x - x.mean()
    return mod.normalize(x), d / np.sqrt((d * d).mean() + 1e-12), 1e-9

def matvec():
    return mod.matvec(A, v), A.astype(np.float64) @ v, 1e-4

def total():
    return mod.total(x), x.sum(), 1e-9

# threads 0-3 call one kernel; threads 4-7 call different kernels, each its own mix
plans = [[affine]] * 4 + [[saxpy, total], [normalize, affine], [matvec, saxpy],
                          [total, normalize, matvec]]
barrier = threading.Barrier(len(plans))
errors = []

def work(plan):
    barrier.wait()
    try:
        for i in range(30):
            got, want, tol = plan[i % len(plan)]()
            if not np.allclose(got, want, rtol=tol, atol=tol):
                errors.append(f"{plan[i % len(plan)].__name__}: wrong result")
    except Exception as err:  # reported below, so the parent sees it
        errors.append(repr(err))

threads = [threading.Thread(target=work, args=(p,)) for p in plans]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("LAYER", numba.threading_layer())
print("ERRORS", errors)
sys.exit(1 if errors else 0)
'''


# Where neither TBB nor OpenMP loads, nbx keeps workqueue and serialises its calls.
NO_SAFE_LAYER = """
import sys
sys.modules["numba.np.ufunc.tbbpool"] = None     # import fails, as without TBB
sys.modules["numba.np.ufunc.omppool"] = None     # and without OpenMP
"""


@pytest.mark.parametrize("setup, layers", [
    ("", ("tbb", "omp")),
    (NO_SAFE_LAYER, ("workqueue",)),
], ids=["threadsafe-layer", "no-safe-layer"])
def test_concurrent_calls_from_threads(setup, layers):
    # in a subprocess: the workqueue layer aborts the process, which must fail this test only
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)                 # test the layer nbx chooses
    script = setup + f"SRC = {SRC!r}\n" + textwrap.dedent(THREAD_SCRIPT)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit status {proc.returncode}:\n{report[-3000:]}"
    assert "ERRORS []" in proc.stdout
    layer = proc.stdout.split("LAYER ")[1].split()[0]
    assert layer in layers, report


def test_threading_layer_is_thread_safe_in_this_process():
    import numba
    if os.environ.get("NUMBA_THREADING_LAYER"):
        pytest.skip("NUMBA_THREADING_LAYER is set by the user")
    mod.affine(np.ones(10))
    assert numba.threading_layer() != "workqueue"
