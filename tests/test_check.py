"""The checker (LANGUAGE.md sections 3-6): names, dtypes, dimensions, consts, defs, reductions.

Every typed result is read from the IR the checker produces; nothing here runs a kernel or
needs Numba.
"""

from __future__ import annotations

import numpy as np
import pytest

import nbx
from nbx.dsl import check, ir
from nbx.dsl.build import parse
from nbx.dsl.compile import Compiler
from nbx.dsl.ops import Op
from nbx.dsl.source import Source
from nbx.dsl.types import DTYPES, dtype_name

# --- helpers -------------------------------------------------------------------------------


def compiler(src: str) -> Compiler:
    return Compiler(src, filename="t.nbx")


def kernel_ir(src: str, name: str | None = None, binding: dict | None = None) -> ir.KernelIR:
    c = compiler(src)
    k = c.env.kernels[name] if name else next(iter(c.env.kernels.values()))
    if binding is None:
        binding = check.default_binding(c.env, k)
    return c.check_kernel(k, {tv: np.dtype(dt) for tv, dt in binding.items()})


def result(params: str, expr: str, ret: str, pre: str = "") -> ir.Node:
    """The IR of the one result of `kernel kern(params) -> ret: return expr`."""
    return kernel_ir(f"{pre}kernel kern({params}) -> {ret}:\n    return {expr}\n").results[0].expr


def all_dims(params: str) -> tuple[str, ...]:
    (k,) = parse(Source("t.nbx", f"kernel probe({params}) -> bool:\n    return 1\n")).definitions
    dims: list[str] = []
    for p in k.params:
        for d in p.type.dims or ():
            if d not in dims:
                dims.append(d)
    return tuple(dims)


def typed(params: str, expr: str, pre: str = "") -> tuple[str, tuple[str, ...]]:
    """(dtype, dims) of a (strong) expression: the declared result type for which the checker
    adds no implicit conversion."""
    dims = all_dims(params)
    suffix = f"[{', '.join(dims)}]" if dims else ""
    errors = []
    for name in DTYPES:
        try:
            node = result(params, expr, name + suffix, pre)
        except nbx.CompileError as err:
            errors.append(err)
            continue
        if not isinstance(node, ir.Cast):
            return dtype_name(node.dtype), node.dims
    raise AssertionError(f"no result type fits {expr!r}: {errors[-1] if errors else ''}")


def error(src: str) -> nbx.CompileError:
    with pytest.raises(nbx.CompileError) as info:
        compiler(src)
    return info.value


def expr_error(params: str, expr: str, ret: str = "f64", pre: str = "") -> nbx.CompileError:
    return error(f"{pre}kernel kern({params}) -> {ret}:\n    return {expr}\n")


def nodes(node: ir.Node) -> list[ir.Node]:
    return ir.topo_order([node])


# Parameters of every dtype, for the promotion tables.
P = ("b: bool[n], c: bool, xi8: i8[n], xu8: u8[n], xi16: i16[n], xu16: u16[n], xi32: i32[n], "
     "xi64: i64[n], xu64: u64[n], xf32: f32[n], xf64: f64[n], sf32: f32, si32: i32, si8: i8")


# --- NEP 50 promotion ----------------------------------------------------------------------

@pytest.mark.parametrize("expr, dtype", [
    # weak literals take the kind-compatible type of the strong operand
    ("xf32 * 2.0", "f32"), ("xf32 * 2", "f32"), ("xi32 + 1", "i32"), ("xi32 * 1.5", "f64"),
    ("xu8 * 2", "u8"), ("xi8 - 1", "i8"), ("xi16 + True", "i16"), ("xf32 * pi", "f32"),
    ("2.0 * xf32", "f32"), ("1 + xu16", "u16"), ("xi8 * 0.5", "f64"), ("xf32 + inf", "f32"),
    # mixed strong types promote as NumPy
    ("xi32 + xf32", "f64"), ("xu64 + xi64", "f64"), ("xi8 + xu8", "i16"), ("xf32 + xi8", "f32"),
    ("xf32 + xi16", "f32"), ("xi8 + xi64", "i64"), ("xu8 + xu16", "u16"), ("xf32 + xf64", "f64"),
    ("xu16 + xi16", "i32"), ("xu64 + xf32", "f64"),
    # typed scalars are strong too
    ("xi8 + si32", "i32"), ("xf32 + sf32", "f32"), ("xi16 * sf32", "f32"), ("xi32 + si8", "i32"),
    # a bool with a number promotes as NumPy
    ("b * 2", "i64"), ("b * 2.5", "f64"), ("b + xi8", "i8"), ("b + xf32", "f32"),
    ("c * xu8", "u8"), ("b - xi64", "i64"),
])
def test_promotion(expr, dtype):
    assert typed(P, expr) == (dtype, ("n",))


def test_promotion_inserts_explicit_casts():
    node = result(P, "xi32 + xf32", "f64[n]")
    assert node.op == Op.ADD
    assert [(type(a).__name__, dtype_name(a.dtype)) for a in node.args] == \
        [("Cast", "f64"), ("Cast", "f64")]


def test_weak_literal_becomes_a_const_of_the_strong_dtype():
    node = result(P, "xf32 * 2.0", "f32[n]")
    assert isinstance(node.args[1], ir.Const)
    assert dtype_name(node.args[1].dtype) == "f32" and node.args[1].value == 2.0


@pytest.mark.parametrize("expr, dtype", [
    ("xf32 * (cos(3) + 5)", "f32"),     # all-weak operations stay weak (folded)
    ("xi8 + (2 * 3 - 1)", "i8"),
    ("xi8 * (1 / 2)", "f64"),           # a weak float meets an integer array
    ("xu8 + (True and False)", "u8"),
    ("xf32 * -pi", "f32"),
    ("xf32 * sqrt(2)", "f32"),
])
def test_weak_expressions(expr, dtype):
    assert typed(P, expr) == (dtype, ("n",))


def test_all_weak_expression_is_folded():
    node = result("x: f32[n]", "x * (cos(3) + 5)", "f32[n]")
    const = node.args[1]
    assert isinstance(const, ir.Const)
    assert const.value == pytest.approx(float(np.float32(np.cos(3) + 5)))


@pytest.mark.parametrize("expr, dtype", [
    ("1 if c else 2", "i64"), ("1.5 if c else 2", "f64"), ("True if c else False", "bool"),
    ("sum(3)", "i64"), ("sum(2.5)", "f64"), ("any(1)", "bool"),
])
def test_weak_value_that_never_meets_a_strong_one(expr, dtype):
    assert typed("c: bool", expr) == (dtype, ())


@pytest.mark.parametrize("expr", ["xi8 + 300", "xu8 + -1", "xu8 - 256", "xi8 * 128",
                                  "clip(xi8, 0, 1000)", "xi64 + 9223372036854775808"])
def test_weak_integer_out_of_range_of_the_strong_one(expr):
    err = expr_error(P, expr, "f64[n]")
    assert "out of range" in err.message


@pytest.mark.parametrize("expr", ["xu8 < -1", "xu8 == 300", "xi8 != 1000"])
def test_comparison_with_an_out_of_range_literal_is_allowed(expr):
    assert typed(P, expr) == ("bool", ("n",))


@pytest.mark.parametrize("expr", ["10**20", "2**62 * 2", "-(-2**63)", "10**10**10"])
def test_weak_integer_overflow_is_an_error(expr):
    # Decision: an all-literal integer expression that does not fit i64 is an error rather
    # than a silent wrap (in Python it would be exact).
    err = expr_error("x: f64[n]", f"x * ({expr})", "f64[n]")
    assert "overflows i64" in err.message
    assert "1e20" in err.hint


def test_weak_integer_wraps_nothing_when_it_fits():
    node = result("x: i64[n]", "x + 2**62 + (2**62 - 1)", "i64[n]")
    consts = [n.value for n in nodes(node) if isinstance(n, ir.Const)]
    assert consts == [2**62, 2**62 - 1]


# --- division, powers, bools ---------------------------------------------------------------

@pytest.mark.parametrize("expr, dtype", [
    ("xi32 / xi32", "f64"), ("xi8 / 2", "f64"), ("xu64 / xi64", "f64"), ("b / c", "f64"),
    ("xf32 / 2", "f32"), ("xf32 / xf32", "f32"), ("xi16 / xf32", "f32"),
    ("xi8 // 2", "i8"), ("xi32 % xi32", "i32"), ("xf32 // 2", "f32"), ("xf32 % 2", "f32"),
    ("xi32 ** 2", "i32"), ("xi32 ** 2.0", "f64"), ("xf32 ** 2", "f32"), ("pow(xu8, 2)", "u8"),
    ("xi32 ** -1", "i32"),   # raises ValueError at call time, as NumPy
])
def test_division_and_powers(expr, dtype):
    assert typed(P, expr) == (dtype, ("n",))


@pytest.mark.parametrize("expr, what", [
    ("b + b", "'+'"), ("b - c", "'-'"), ("b * c", "'*'"), ("b // c", "'//'"), ("b % c", "'%'"),
    ("b ** c", "'**'"), ("pow(b, c)", "pow"), ("True + True", "'+'"),
])
def test_arithmetic_on_two_bools_is_an_error(expr, what):
    err = expr_error(P, expr, "f64[n]")
    assert err.message == f"arithmetic {what} on two bools"
    assert "or" in err.hint and "i64(" in err.hint


@pytest.mark.parametrize("expr", ["-b", "+c"])
def test_unary_minus_of_a_bool_is_an_error(expr):
    err = expr_error(P, expr, "f64[n]")
    assert "of a bool" in err.message
    assert "not" in err.hint


def test_true_division_of_bools_is_a_float():
    assert typed(P, "b / c") == ("f64", ("n",))


# --- bitwise operators and shifts ----------------------------------------------------------

@pytest.mark.parametrize("expr, dtype", [
    ("b & c", "bool"), ("b | c", "bool"), ("b ^ c", "bool"), ("~b", "bool"),
    ("xi8 | xu8", "i16"), ("xu8 & 15", "u8"), ("~xu8", "u8"), ("xi32 ^ b", "i32"),
    ("xi32 << 2", "i32"), ("xi32 >> si8", "i32"), ("xu8 << b", "u8"),
    ("b << 1", "i64"), ("b << c", "i8"),   # as NumPy: shifts have no bool loop
])
def test_bitwise_and_shifts(expr, dtype):
    assert typed(P, expr) == (dtype, ("n",))


@pytest.mark.parametrize("expr, column", [
    ("xf64 & 1", 12), ("1 | xf32", 16), ("~xf32", 13), ("xf64 << 1", 12), ("1 >> xf32", 17),
    ("xi8 ^ 1.5", 18),
])
def test_bitwise_on_floats_is_an_error(expr, column):
    err = expr_error(P, expr, "f64[n]")
    assert "takes integers or bools" in err.message
    assert (err.line, err.column) == (2, column)


# --- comparisons and logic -----------------------------------------------------------------

@pytest.mark.parametrize("expr", ["xi8 < xu64", "xf32 == 1", "b != c", "xf64 >= si32",
                                  "b and c", "b or xf32 > 0", "not b", "not (xi8 < 0)"])
def test_comparisons_and_logic_give_bool(expr):
    assert typed(P, expr) == ("bool", ("n",))


@pytest.mark.parametrize("expr, column, got", [
    ("xi32 and b", 12, "i32 array"), ("b or 1", 17, "an integer"), ("not xi32", 16, "i32 array"),
    ("not 1.5", 16, "a float"), ("b and xf64", 18, "f64 array"), ("si32 or c", 12, "i32"),
])
def test_logic_takes_bools_only(expr, column, got):
    err = expr_error(P, expr, "bool[n]")
    assert (err.line, err.column) == (2, column)
    assert err.message.endswith(f"takes bool operands, got {got}")
    assert err.hint == "compare explicitly: x != 0"


# --- element-wise functions ----------------------------------------------------------------

TRANSCENDENTAL = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin",
                  "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
                  "atanh", "erf", "erfc"]


@pytest.mark.parametrize("fn", TRANSCENDENTAL)
@pytest.mark.parametrize("arg, dtype", [("xi8", "f64"), ("xu16", "f64"), ("xi64", "f64"),
                                        ("b", "f64"), ("xf32", "f32"), ("xf64", "f64")])
def test_transcendental_functions(fn, arg, dtype):
    assert typed(P, f"{fn}({arg})") == (dtype, ("n",))


@pytest.mark.parametrize("fn", ["floor", "ceil", "trunc", "rint"])
@pytest.mark.parametrize("arg", ["xi8", "xu64", "xi32", "b"])
def test_rounding_an_integer_returns_it_unchanged(fn, arg):
    node = result(P, f"{fn}({arg})", f"{dict(xi8='i8', xu64='u64', xi32='i32', b='bool')[arg]}[n]")
    assert isinstance(node, ir.Param) and node.name == arg


@pytest.mark.parametrize("fn", ["floor", "ceil", "trunc", "rint"])
def test_rounding_a_float(fn):
    assert typed(P, f"{fn}(xf32)") == ("f32", ("n",))


@pytest.mark.parametrize("expr, dtype", [
    ("abs(xi8)", "i8"), ("abs(xu32)", "u32"), ("abs(b)", "bool"), ("abs(xf32)", "f32"),
    ("sign(xi16)", "i16"), ("sign(xu8)", "u8"), ("sign(xf32)", "f32"),
    ("minimum(xi16, 3)", "i16"), ("maximum(xi8, xu8)", "i16"), ("minimum(b, b)", "bool"),
    ("maximum(xf32, 0)", "f32"), ("clip(xu8, 0, 10)", "u8"), ("clip(xi32, xi8, 100)", "i32"),
    ("clip(xf32, 0, 1)", "f32"), ("clip(xi8, 0.5, 1)", "f64"),
    ("isnan(xf32)", "bool"), ("isinf(xi32)", "bool"), ("isfinite(b)", "bool"),
    ("atan2(xi8, xi8)", "f64"), ("hypot(xf32, 1)", "f32"), ("copysign(xi32, xf32)", "f64"),
    ("atan2(xf32, xf32)", "f32"),
    ("where(b, xi8, xu8)", "i16"), ("where(b, xf32, 1)", "f32"), ("xf32 if b else 1", "f32"),
    ("xi8 if c else xf64", "f64"),
])
def test_elementwise_function_dtypes(expr, dtype):
    params = P + ", xu32: u32[n]"
    assert typed(params, expr) == (dtype, ("n",))


def test_sign_of_a_bool_is_an_error():
    err = expr_error(P, "sign(b)", "bool[n]")
    assert (err.line, err.column) == (2, 17)


@pytest.mark.parametrize("expr, message", [
    ("where(xi8, 1, 2)", "the condition of where() must be bool, got i8 array"),
    ("1 if xi8 else 2", "the condition of 'if ... else' must be bool, got i8 array"),
    ("1 if 1.5 else 2", "the condition of 'if ... else' must be bool, got a float"),
])
def test_condition_must_be_bool(expr, message):
    err = expr_error(P, expr, "f64[n]")
    assert err.message == message
    assert err.hint == "compare explicitly: x != 0"


@pytest.mark.parametrize("expr, message", [
    ("sqrt(xf64, xf64)", "sqrt() takes 1 argument, got 2"),
    ("sqrt()", "sqrt() takes 1 argument, got 0"),
    ("clip(xf64, 1)", "clip() takes 3 arguments, got 2"),
    ("where(b, xf64)", "where() takes 3 arguments, got 2"),
    ("atan2(xf64)", "atan2() takes 2 arguments, got 1"),
    ("sqrt(x=xf64)", "sqrt() takes no keyword arguments"),
])
def test_function_arity(expr, message):
    assert expr_error(P, expr, "f64[n]").message == message


# --- casts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, dtype", [
    ("i32(xf64)", "i32"), ("bool(xf32)", "bool"), ("f32(xi64)", "f32"), ("i64(b)", "i64"),
    ("u8(xi32)", "u8"), ("f64(xu64)", "f64"), ("i8(xf32 * 300)", "i8"),
])
def test_casts_are_explicit_cast_nodes(expr, dtype):
    node = result(P, expr, f"{dtype}[n]")
    assert isinstance(node, ir.Cast)
    assert dtype_name(node.dtype) == dtype and node.dims == ("n",)


def test_cast_to_the_same_dtype_is_the_value():
    node = result(P, "f64(xf64)", "f64[n]")
    assert isinstance(node, ir.Param)


@pytest.mark.parametrize("expr, dtype, value", [
    ("i8(300)", "i8", 44), ("u8(-1)", "u8", 255), ("i32(2.9)", "i32", 2), ("i32(-2.9)", "i32", -2),
    ("bool(2)", "bool", True), ("bool(0.0)", "bool", False), ("f32(0.1)", "f32",
                                                               float(np.float32(0.1))),
    ("i64(True)", "i64", 1), ("u64(-1)", "u64", 2**64 - 1),
])
def test_casts_of_literals_fold(expr, dtype, value):
    node = result("c: bool", expr, dtype)
    assert isinstance(node, ir.Const)
    assert dtype_name(node.dtype) == dtype and node.value == value


def test_cast_of_a_strong_const_wraps_as_numpy():
    node = result("c: bool", "i32(2) ** 40", "i32")
    assert isinstance(node, ir.Const) and node.value == 0


@pytest.mark.parametrize("expr", ["i32(inf)", "u8(nan)", "i64(-inf)"])
def test_cast_of_a_non_finite_literal_to_an_integer_is_an_error(expr):
    assert "cannot cast" in expr_error("c: bool", expr, "i64").message


@pytest.mark.parametrize("expr, message", [
    ("f16(x)", "dtype 'f16' is not supported yet"),
    ("c64(x)", "dtype 'c64' is not supported yet"),
    ("f32(x, x)", "f32() takes exactly 1 argument"),
    ("f32()", "f32() takes exactly 1 argument"),
])
def test_cast_errors(expr, message):
    assert expr_error("x: f64[n]", expr, "f64[n]").message == message


# --- broadcasting by name and canonical order ----------------------------------------------

def test_broadcast_by_name():
    assert typed("A: f64[m, k], v: f64[k]", "A * v") == ("f64", ("m", "k"))


def test_outer_sum():
    assert typed("x: f64[n], y: f64[m]", "x + y") == ("f64", ("n", "m"))
    assert typed("x: f64[n], y: f64[m]", "y + x") == ("f64", ("n", "m"))


def test_canonical_order_is_first_appearance_in_the_parameters():
    k = kernel_ir("kernel f(v: f64[k], A: f64[m, k], B: f64[k, m]) -> f64[m, k]:\n"
                  "    return A * v + B\n")
    assert k.dims == ("k", "m")
    node = k.results[0].expr
    assert node.dims == ("k", "m")
    assert k.results[0].axes == ("m", "k")   # the declared order is kept for the result
    params = {p.name: p for p in nodes(node) if isinstance(p, ir.Param)}
    assert params["A"].axes == ("m", "k") and params["A"].dims == ("k", "m")


def test_three_way_broadcast():
    assert typed("x: f64[n], y: f32[m], z: i8[k]", "x * y + z") == ("f64", ("n", "m", "k"))


def test_scalar_with_array():
    assert typed("x: f32[n], s: f32", "x * s") == ("f32", ("n",))
    assert typed("s: f32, t: i8", "s * t") == ("f32", ())


def test_index():
    node = result("x: f64[n], y: f64[m]", "index(m)", "i64[m]")
    assert isinstance(node, ir.Index) and node.dims == ("m",) and dtype_name(node.dtype) == "i64"
    assert typed("x: f64[n], y: f64[m]", "index(n) * 1.5 + y") == ("f64", ("n", "m"))
    assert typed("x: f32[n]", "x * index(n)") == ("f64", ("n",))


@pytest.mark.parametrize("expr, column, message", [
    ("index(x)", 18, "'x' is not a dimension"),
    ("index(q)", 18, "'q' is not a dimension"),
    ("index(n, n)", 12, "index() takes one dimension name, as in index(n)"),
    ("index(n + 1)", 12, "index() takes one dimension name, as in index(n)"),
    ("index()", 12, "index() takes one dimension name, as in index(n)"),
    ("index", 12, "'index' is a function, not a value"),
])
def test_index_errors(expr, column, message):
    err = expr_error("x: f64[n]", expr, "f64[n]")
    assert (err.line, err.column, err.message) == (2, column, message)


def test_dimension_name_is_an_i64_length():
    node = result("x: f64[n]", "n", "i64")
    assert isinstance(node, ir.DimLen) and node.dim == "n" and dtype_name(node.dtype) == "i64"
    assert typed("x: f32[n]", "x * n") == ("f64", ("n",))    # a strong i64 meets f32
    assert typed("x: i64[n]", "x + n") == ("i64", ("n",))
    assert typed("x: f32[n], y: f32[m]", "n * m") == ("i64", ())


def test_mean_is_sum_over_length():
    node = result("x: f64[n]", "mean(x)", "f64")
    assert node.op == Op.TRUEDIV
    kinds = {type(n).__name__ for n in nodes(node)}
    assert {"Reduce", "DimLen"} <= kinds


# --- consts --------------------------------------------------------------------------------

def test_untyped_const_is_weak():
    assert typed("x: f32[n]", "x * H", pre="const H = 0.5\n") == ("f32", ("n",))
    assert typed("x: i8[n]", "x + K", pre="const K = 2\n") == ("i8", ("n",))
    assert typed("x: u8[n]", "x * K", pre="const K = 2 * 3 + 1\n") == ("u8", ("n",))


def test_typed_const_is_strong():
    pre = "const H = f32(0.5)\n"
    assert typed("x: f64[n]", "x * H", pre=pre) == ("f64", ("n",))
    assert typed("x: i8[n]", "x * H", pre=pre) == ("f32", ("n",))
    assert typed("x: f32[n]", "x * H", pre=pre) == ("f32", ("n",))
    assert typed("x: i32[n]", "x * H", pre=pre) == ("f64", ("n",))


def test_consts_in_any_order_are_folded():
    pre = "const A = cos(0) + B\nconst B = 1\nconst C = A * 2\n"
    node = result("x: f64[n]", "x * C", "f64[n]", pre=pre)
    assert isinstance(node.args[1], ir.Const) and node.args[1].value == 4.0


def test_const_may_use_a_def():
    pre = "def twice(a):\n    return a * 2\nconst A = twice(3)\n"
    assert typed("x: i8[n]", "x + A", pre=pre) == ("i8", ("n",))


@pytest.mark.parametrize("pre, line, cycle", [
    ("const A = A + 1\n", 1, "A -> A"),
    ("const A = B\nconst B = A\n", 1, "A -> B -> A"),
    ("const A = 1\nconst C = D * 2\nconst D = E\nconst E = C\n", 2, "C -> D -> E -> C"),
])
def test_const_cycles(pre, line, cycle):
    err = error(pre)
    assert (err.line, err.column) == (line, 7)
    assert err.message == f"consts depend on each other in a cycle: {cycle}"


@pytest.mark.parametrize("value, message", [
    ("x", "unknown name 'x'"),
    ("n", "unknown name 'n'"),
    ("sum(3)", "reduction sum() in a const"),
    ("mean(2.0)", "reduction mean() in a const"),
    ("index(n)", "'n' is not a dimension"),
    ("f(1)", "kernel 'f' cannot be called from a kernel or def"),
    ("2 ** -1", "cannot compute this constant"),
])
def test_const_errors(value, message):
    err = error(f"const A = {value}\nkernel f(x: f64[n]) -> f64[n]:\n    return x\n")
    assert err.line == 1
    assert err.message.startswith(message)


# --- defs ----------------------------------------------------------------------------------

def test_defs_are_inlined():
    node = result("x: f32[n]", "sq(x) + 1", "f32[n]", pre="def sq(a):\n    return a * a\n")
    assert node.op == Op.ADD and node.args[0].op == Op.MUL
    assert node.args[0].args[0] is node.args[0].args[1] or \
        node.args[0].args[0] == node.args[0].args[1]


def test_defs_are_generic():
    pre = "def half(a):\n    return a / 2\n"
    assert typed("x: f32[n]", "half(x)", pre=pre) == ("f32", ("n",))
    assert typed("x: i8[n]", "half(x)", pre=pre) == ("f64", ("n",))
    assert typed("x: f64[n], y: f64[m]", "half(x + y)", pre=pre) == ("f64", ("n", "m"))


def test_def_locals_and_nested_defs():
    pre = ("def sq(a):\n    return a * a\n"
           "def norm2(a, b):\n    s = sq(a)\n    t = sq(b)\n    return s + t\n")
    assert typed("x: f32[n], y: f32[m]", "norm2(x, y)", pre=pre) == ("f32", ("n", "m"))


def test_def_returning_several_values_is_unpacked():
    src = ("def polar(r, t):\n    return r * cos(t), r * sin(t)\n"
           "kernel f(r: f32[n], t: f32[n]) -> (f32[n], f32[n]):\n"
           "    a, b = polar(r, t)\n    return a, b\n")
    k = kernel_ir(src)
    assert [r.expr.op for r in k.results] == [Op.MUL, Op.MUL]
    assert [dtype_name(r.expr.dtype) for r in k.results] == ["f32", "f32"]


def test_unpacking_inside_a_def():
    pre = ("def two(a):\n    return a, a + 1\n"
           "def sum2(a):\n    p, q = two(a)\n    return p + q\n")
    assert typed("x: i16[n]", "sum2(x)", pre=pre) == ("i16", ("n",))


DEFS = "def two(a):\n    return a, a * 2\ndef one(a):\n    return a\n"


@pytest.mark.parametrize("body, line, column, message", [
    ("return two(x)", 6, 12, "def 'two' returns 2 values"),
    ("a, b, c = two(x)\n    return a", 6, 15, "def 'two' returns 2 values, not 3"),
    ("a, b = one(x)\n    return a", 6, 12, "def 'one' returns 1 value, not 2"),
    ("a, b = x\n    return a", 6, 12, "cannot unpack this into 2 names"),
    ("a, b = sqrt(x)\n    return a", 6, 12, "cannot unpack this into 2 names"),
    ("a, a = two(x)\n    return a", 6, 8, "'a' is assigned twice"),
    ("return one(x, x)", 6, 12, "def 'one' takes 1 argument, got 2"),
    ("return one()", 6, 12, "def 'one' takes 1 argument, got 0"),
    ("return one(a=x)", 6, 16, "def 'one' takes no keyword arguments"),
    ("return one", 6, 12, "'one' is a def, not a value"),
])
def test_def_call_errors(body, line, column, message):
    err = error(DEFS + f"kernel f(x: f64[n]) -> f64[n]:\n    {body}\n")
    assert (err.line, err.column, err.message) == (line, column, message)


def test_def_returning_two_values_used_as_one_hints_unpacking():
    err = error(DEFS + "kernel f(x: f64[n]) -> f64[n]:\n    return two(x)\n")
    assert err.hint == "unpack them: a, b = two(...)"


@pytest.mark.parametrize("defs, line, column, message", [
    ("def g(a):\n    return g(a)\n", 2, 12, "def 'g' calls itself"),
    ("def g(a):\n    return h(a)\ndef h(a):\n    return g(a) + 1\n", 4, 12,
     "def 'g' calls itself"),
    ("def g(a):\n    return sum(a)\n", 2, 12, "reduction sum() inside def 'g'"),
    ("def g(a):\n    return a - mean(a)\n", 2, 16, "reduction mean() inside def 'g'"),
    ("def g(a):\n    return a * n\n", 2, 16, "dimension 'n' used inside def 'g'"),
    ("def g(a):\n    return a + index(n)\n", 2, 16, "index() used inside def 'g'"),
    ("def g(a):\n    return f(a)\n", 2, 12, "kernel 'f' cannot be called from a kernel or def"),
])
def test_def_body_errors(defs, line, column, message):
    err = error(defs + "kernel f(x: f64[n]) -> f64[n]:\n    return g(x)\n")
    assert (err.line, err.column, err.message) == (line, column, message)


def test_recursion_hint():
    err = error("def g(a):\n    return g(a)\nkernel f(x: f64[n]) -> f64[n]:\n    return g(x)\n")
    assert "recursion" in err.hint


def test_def_names_are_checked_even_if_the_def_is_never_called():
    err = error("def g(a, a):\n    return a\n")
    assert (err.line, err.column, err.message) == (1, 10, "parameter 'a' is declared twice")
    err = error("def g(a):\n    b = a\n    b = a\n    return b\n")
    assert (err.line, err.column, err.message) == (3, 5, "'b' is assigned twice")


@pytest.mark.parametrize("defs, line, column, message", [
    ("def g(a):\n    return g(a)\n", 2, 12, "def 'g' calls itself"),
    ("def g(a):\n    return sum(a)\n", 2, 12, "reduction sum() inside def 'g'"),
    ("def g(a):\n    return a * n\n", 2, 16, "unknown name 'n'"),
    ("def g(a):\n    return sqr(a)\n", 2, 12, "unknown function 'sqr'"),
    ("def g(a):\n    return f(a)\n", 2, 12, "kernel 'f' cannot be called from a kernel or def"),
])
def test_def_body_errors_are_reported_even_if_no_kernel_calls_the_def(defs, line, column,
                                                                      message):
    err = error(defs + "kernel f(x: f64[n]) -> f64[n]:\n    return x\n")
    assert (err.line, err.column, err.message) == (line, column, message)


def test_an_error_in_a_called_def_is_reported_once():
    """nbxc check collects every definition's first error: the def's own check and the
    kernel that calls it find the same one."""
    errors = []
    Compiler("def g(a):\n    return sqr(a)\ndef h(a):\n    return a + m\n"
             "kernel f(x: f64[n]) -> f64[n]:\n    return g(x)\n", on_error=errors.append)
    assert [(e.line, e.message) for e in errors] == [(2, "unknown function 'sqr'"),
                                                    (4, "unknown name 'm'")]


@pytest.mark.parametrize("body", ["a << 1", "x if c else -x", "where(c, x, 0) + (a << 1)",
                                  "a / b", "-a"])
def test_a_def_not_called_is_not_held_to_one_dtype(body):
    """A def's dtype errors are found at its calls: it may be meant for integers only, or
    for a bool and a number."""
    kernel_ir(f"def g(a, b, c, x):\n    return {body}\n"
              "kernel f(x: f64[n]) -> f64[n]:\n    return x\n")


def test_def_parameter_may_share_a_name_with_a_kernel_parameter_or_dimension():
    src = ("def g(x, n):\n    return x * n\n"
           "kernel f(x: f64[n]) -> f64[n]:\n    return g(x, 2)\n")
    assert dtype_name(kernel_ir(src).results[0].expr.dtype) == "f64"


# --- kernels and module-wide names ---------------------------------------------------------

@pytest.mark.parametrize("body, column", [("return f(x)", 12), ("return 1 + g(x)", 16)])
def test_kernels_cannot_call_kernels(body, column):
    src = ("kernel g(x: f64[n]) -> f64[n]:\n    return x\n"
           f"kernel f(x: f64[n]) -> f64[n]:\n    {body}\n")
    err = error(src)
    assert (err.line, err.column) == (4, column)
    assert "cannot be called from a kernel or def" in err.message
    assert "def" in err.hint


@pytest.mark.parametrize("first, second, kind", [
    ("const A = 1\n", "const A = 2\n", "const"),
    ("const A = 1\n", "def A(a):\n    return a\n", "const"),
    ("def A(a):\n    return a\n", "kernel A(x: f64) -> f64:\n    return x\n", "def"),
    ("kernel A(x: f64) -> f64:\n    return x\n", "const A = 1\n", "kernel"),
    ("kernel A(x: f64) -> f64:\n    return x\n", "kernel A(x: f64) -> f64:\n    return x\n",
     "kernel"),
])
def test_module_names_are_unique(first, second, kind):
    err = error(first + second)
    assert err.line == first.count("\n") + 1          # the second definition
    assert err.message == "'A' is defined twice"
    assert err.hint == f"it is already a {kind}; names are module-wide"


@pytest.mark.parametrize("src, line, column, message", [
    # a dimension and a parameter, in both orders
    ("kernel f(x: f32[n], n: f32) -> f32[n]:\n    return x\n", 1, 21,
     "'n' is already a dimension name"),
    ("kernel f(n: f32, x: f32[n]) -> f32[n]:\n    return x\n", 1, 25,
     "'n' is already a parameter name"),
    ("kernel f(x: f32[x]) -> f32[x]:\n    return x\n", 1, 17, "'x' is already a parameter name"),
    # a dimension and a local
    ("kernel f(x: f32[n]) -> f32[n]:\n    n = 1\n    return x\n", 2, 5,
     "'n' is a dimension name"),
    # a dimension and a module name: the error is at whichever comes second
    ("const n = 1\nkernel f(x: f32[n]) -> f32[n]:\n    return x\n", 2, 17,
     "dimension 'n' has the name of a const"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    return x\nconst n = 1\n", 3, 7,
     "const 'n' has the name of a dimension of kernel 'f' (line 1)"),
    ("def n(a):\n    return a\nkernel f(x: f32[n]) -> f32[n]:\n    return x\n", 3, 17,
     "dimension 'n' has the name of a def"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    return x\ndef n(a):\n    return a\n", 3, 5,
     "def 'n' has the name of a dimension of kernel 'f' (line 1)"),
    ("kernel n(a: f32) -> f32:\n    return a\nkernel f(x: f32[n]) -> f32[n]:\n    return x\n",
     3, 17, "dimension 'n' has the name of a kernel"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    return x\nkernel n(a: f32) -> f32:\n    return a\n",
     3, 8, "kernel 'n' has the name of a dimension of kernel 'f' (line 1)"),
    ("kernel f(x: f32[f]) -> f32[f]:\n    return x\n", 1, 17,
     "dimension 'f' has the name of a kernel"),
    # parameters and locals against module names
    ("def g(a):\n    return a\nkernel f(g: f32[n]) -> f32[n]:\n    return g\n", 3, 10,
     "parameter 'g' has the name of a def"),
    ("kernel f(g: f32[n]) -> f32[n]:\n    return g\ndef g(a):\n    return a\n", 3, 5,
     "def 'g' has the name of a parameter of kernel 'f' (line 1)"),
    ("const C = 1\nkernel f(x: f32[n]) -> f32[n]:\n    C = x\n    return C\n", 3, 5,
     "local 'C' has the name of a const"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    C = x\n    return C\nconst C = 1\n", 4, 7,
     "const 'C' has the name of a local of kernel 'f' (line 2)"),
    ("const a = 1\ndef g(a):\n    return a\n", 2, 7, "parameter 'a' has the name of a const"),
    # parameters declared twice, names assigned twice, assigning a parameter
    ("kernel f(x: f32[n], x: f32[n]) -> f32[n]:\n    return x\n", 1, 21,
     "parameter 'x' is declared twice"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    y = x\n    y = x\n    return y\n", 3, 5,
     "'y' is assigned twice"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    x = 1\n    return x\n", 2, 5, "'x' is a parameter"),
    # use before definition
    ("kernel f(x: f32[n]) -> f32[n]:\n    y = z\n    z = x\n    return y\n", 2, 9,
     "'z' is used before it is assigned"),
    ("kernel f(x: f32[n]) -> f32[n]:\n    y = y + 1\n    return y\n", 2, 9,
     "'y' is used before it is assigned"),
    ("def g(a):\n    b = c\n    c = a\n    return b\nkernel f(x: f32[n]) -> f32[n]:\n"
     "    return g(x)\n", 2, 9, "'c' is used before it is assigned"),
])
def test_name_rules(src, line, column, message):
    err = error(src)
    assert (err.line, err.column, err.message) == (line, column, message)


def test_dimension_names_are_per_kernel():
    src = ("kernel a(x: f64[n]) -> f64[n]:\n    return x\n"
           "kernel b(y: f64[m]) -> f64[m]:\n    n = y * 2\n    return n\n")
    assert kernel_ir(src, "b").dims == ("m",)


@pytest.mark.parametrize("src", [
    "def abs(a):\n    return a * 2\nkernel f(x: f64[n]) -> f64[n]:\n    return abs(x)\n",
    "const pi = 3\nkernel f(x: f64[n]) -> f64[n]:\n    return x * pi\n",
    "kernel f(e: f32[n]) -> f32[n]:\n    sqrt = e * 2\n    return sqrt + e\n",
    "kernel f(x: f32[e]) -> i64:\n    return e\n",
    "def sum(a):\n    return a\nkernel f(x: f32[n]) -> f32[n]:\n    return sum(x)\n",
])
def test_builtin_names_may_be_shadowed(src):
    kernel_ir(src)


def test_a_kernel_name_does_not_hide_a_builtin():
    # Decision: kernels cannot be called, so a kernel named like a builtin leaves it usable.
    src = ("kernel clip(x: f64[n], lo: f64, hi: f64) -> f64[n]:\n    return clip(x, lo, hi)\n"
           "kernel pi(x: f64[n]) -> f64[n]:\n    return x * pi\n"
           "kernel sum(x: i8[n]) -> i64:\n    return sum(x)\n")
    assert kernel_ir(src, "clip").results[0].expr.op == Op.CLIP
    assert kernel_ir(src, "pi").results[0].expr.args[1].value == pytest.approx(np.pi)
    assert isinstance(kernel_ir(src, "sum").results[0].expr, ir.Reduce)


def test_shadowed_builtin_is_used():
    node = result("x: f64[n]", "abs(x)", "f64[n]", pre="def abs(a):\n    return a * 2\n")
    assert node.op == Op.MUL
    node = result("x: f64[n]", "x * pi", "f64[n]", pre="const pi = 3\n")
    assert node.args[1].value == 3.0


@pytest.mark.parametrize("expr, column, message, hint", [
    ("sqr(x)", 12, "unknown function 'sqr'", "did you mean 'sqrt'?"),
    ("summ(x)", 12, "unknown function 'summ'", "did you mean 'sum'?"),
    ("mena(x)", 12, "unknown function 'mena'", "did you mean 'mean'?"),
    ("argmn(x)", 12, "unknown function 'argmn'", "did you mean 'argmin'?"),
    ("maximun(x, 1)", 12, "unknown function 'maximun'", "did you mean 'maximum'?"),
    ("indx(n)", 12, "unknown function 'indx'", "did you mean 'index'?"),
    ("sum(xx)", 16, "unknown name 'xx'", "did you mean 'x'?"),
    ("sum(x * PI)", 20, "unknown name 'PI'", "did you mean 'pi'?"),
    ("sum(x * valu)", 20, "unknown name 'valu'", "did you mean 'value'?"),
    ("sum(x) * EPSS", 21, "unknown name 'EPSS'", "did you mean 'EPS'?"),
    ("sum(x) + qqqqqq", 21, "unknown name 'qqqqqq'", None),
])
def test_unknown_names_suggest_the_closest(expr, column, message, hint):
    src = ("const EPS = 1e-9\nkernel f(x: f64[n]) -> f64:\n    value = x\n"
           f"    return {expr}\n")
    err = error(src)
    assert (err.line, err.column, err.message, err.hint) == (4, column, message, hint)


@pytest.mark.parametrize("expr, message", [
    ("sqrt", "'sqrt' is a function, not a value"),
    ("sum", "'sum' is a function, not a value"),
    ("f64", "'f64' is a function, not a value"),
    ("x(1)", "'x' is a value, not a function"),
    ("n(1)", "'n' is a value, not a function"),
    ("pi(1)", "'pi' is a value, not a function"),
    ("C(1)", "'C' is a value, not a function"),
])
def test_function_versus_value(expr, message):
    err = error(f"const C = 1\nkernel f(x: f64[n]) -> f64[n]:\n    return {expr}\n")
    assert err.message == message


# --- reductions ----------------------------------------------------------------------------

RED_P = "x: T[n], A: T[m, k]"


def reduced(red: str, dtype: str, expr: str = "x", over: str = "") -> tuple[str, tuple]:
    params = RED_P.replace("T", dtype)
    return typed(params, f"{red}({expr}{', over=' + over if over else ''})")


@pytest.mark.parametrize("red, table", [
    ("sum", dict(i8="i64", i32="i64", i64="i64", u8="u64", u64="u64", bool="i64", f32="f32",
                 f64="f64")),
    ("prod", dict(i8="i64", i32="i64", i64="i64", u8="u64", u64="u64", bool="i64", f32="f32",
                  f64="f64")),
    ("mean", dict(i8="f64", i32="f64", i64="f64", u8="f64", u64="f64", bool="f64", f32="f32",
                  f64="f64")),
    ("var", dict(i8="f64", i32="f64", i64="f64", u8="f64", u64="f64", bool="f64", f32="f32",
                 f64="f64")),
    ("std", dict(i8="f64", i32="f64", i64="f64", u8="f64", u64="f64", bool="f64", f32="f32",
                 f64="f64")),
    ("min", dict(i8="i8", i32="i32", i64="i64", u8="u8", u64="u64", bool="bool", f32="f32",
                 f64="f64")),
    ("max", dict(i8="i8", i32="i32", i64="i64", u8="u8", u64="u64", bool="bool", f32="f32",
                 f64="f64")),
    ("any", dict.fromkeys(["i8", "i32", "i64", "u8", "u64", "bool", "f32", "f64"], "bool")),
    ("all", dict.fromkeys(["i8", "i32", "i64", "u8", "u64", "bool", "f32", "f64"], "bool")),
    ("argmin", dict.fromkeys(["i8", "i32", "i64", "u8", "u64", "bool", "f32", "f64"], "i64")),
    ("argmax", dict.fromkeys(["i8", "i32", "i64", "u8", "u64", "bool", "f32", "f64"], "i64")),
])
def test_reduction_result_dtypes(red, table):
    for dtype, expected in table.items():
        assert reduced(red, dtype) == (expected, ()), (red, dtype)
        assert reduced(red, dtype, "A", "k") == (expected, ("m",)), (red, dtype)


@pytest.mark.parametrize("expr, dims", [
    ("sum(A)", ()), ("sum(A, over=k)", ("m",)), ("sum(A, over=m)", ("k",)),
    ("sum(A, over=(m, k))", ()), ("sum(A, over=(k, m))", ()), ("sum(A, over=(k,))", ("m",)),
    ("sum(A * v, over=k)", ("m",)), ("x - mean(x)", ("n",)),
    ("A / sqrt(sum(A * A, over=k))", ("m", "k")), ("max(A, over=k) + x", ("m", "n")),
    ("argmax(A, over=m)", ("k",)), ("argmin(x)", ()),
])
def test_reduction_dimensions(expr, dims):
    assert typed("A: f64[m, k], v: f64[k], x: f64[n]", expr)[1] == dims


@pytest.mark.parametrize("expr, dtype", [
    ("sum(s)", "i64"), ("mean(s)", "f64"), ("var(s)", "f64"), ("std(s)", "f64"),
    ("min(s)", "i32"), ("mean(f)", "f32"), ("var(f)", "f32"), ("std(3)", "f64"),
    ("mean(n)", "f64"), ("prod(u)", "u64"),
])
def test_reductions_of_a_scalar(expr, dtype):
    # Reducing no dimension is the value itself, converted as the reduction would; the value's
    # dtype shows in the error for a result declared bool (nothing else converts to bool).
    params = "x: f32[n], s: i32, f: f32, u: u8"
    assert dtype_name(result(params, expr, dtype).dtype) == dtype
    err = expr_error(params, expr, "bool")
    assert err.message == f"cannot return {dtype} as bool implicitly"


def test_var_of_a_scalar_is_zero_not_a_crash():
    node = result("s: f64", "var(s)", "f64")
    assert dtype_name(node.dtype) == "f64"


@pytest.mark.parametrize("expr, column, message", [
    ("sum(x, over=m)", 24, "the reduced expression has no dimension 'm' (its dimensions: n)"),
    ("sum(s, over=n)", 24, "the reduced expression has no dimension 'n' (its dimensions: none)"),
    ("sum(x, over=q)", 24, "'q' is not a dimension"),
    ("sum(A, over=(m, m))", 28, "dimension 'm' is named twice"),
    ("sum(x, over=1)", 24, "over= takes dimension names"),
    ("sum(x, over=x)", 24, "'x' is not a dimension"),
    ("sum(x, axis=n)", 19, "sum() takes only the keyword 'over'"),
    ("sum(x, over=n, over=n)", 27, "sum() takes only the keyword 'over'"),
    ("sum(x, x)", 12, "sum() reduces one expression, got 2 arguments"),
    ("sum()", 12, "sum() reduces one expression, got 0 arguments"),
    ("argmin(A)", 12, "argmin() reduces exactly one dimension, here 2 (m, k)"),
    ("argmax(A, over=(m, k))", 12, "argmax() reduces exactly one dimension, here 2 (m, k)"),
    ("argmin(s)", 12, "argmin() reduces exactly one dimension, here 0 (none)"),
])
def test_reduction_errors(expr, column, message):
    err = expr_error("x: f64[n], A: f64[m, k], s: f64", expr, "f64[n, m, k]")
    assert (err.line, err.column, err.message) == (2, column, message)


def test_over_suggests_a_dimension():
    err = expr_error("A: f64[m, k]", "sum(A, over=kk)", "f64[m]")
    assert err.hint == "did you mean 'k'?"


@pytest.mark.parametrize("fn", ["min", "max"])
def test_min_of_two_values_suggests_minimum(fn):
    err = expr_error("x: f64[n], y: f64[n]", f"{fn}(x, y)", "f64[n]")
    assert (err.line, err.column) == (2, 12)
    assert f"{fn}imum(a, b)" in err.hint


# --- results -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, declared", [
    ("f64", "f32"), ("i64", "i32"), ("i32", "i8"), ("bool", "f32"), ("i8", "f64"),
    ("u8", "i16"), ("bool", "u8"), ("u64", "f32"), ("i64", "f64"), ("u32", "u8"),
])
def test_return_converts_within_same_kind(value, declared):
    node = result(f"x: {value}[n]", "x", f"{declared}[n]")
    assert isinstance(node, ir.Cast) and dtype_name(node.dtype) == declared


@pytest.mark.parametrize("value, declared", [
    ("f64", "i32"), ("f32", "i64"), ("i64", "u32"), ("i64", "bool"), ("f64", "bool"),
    ("i8", "u64"), ("f32", "u8"),
])
def test_return_refuses_other_conversions(value, declared):
    err = expr_error(f"x: {value}[n]", "x", f"{declared}[n]")
    assert (err.line, err.column) == (2, 12)
    assert err.message == f"cannot return {value} as {declared} implicitly"
    assert err.hint == f"cast explicitly: {declared}(...)"


@pytest.mark.parametrize("expr, declared, value", [
    ("3", "u8", 3), ("True", "f32", 1.0), ("1", "f64", 1.0), ("2.5", "f32", 2.5),
    ("-1", "i8", -1), ("1 // 0", "i64", 0), ("pi", "f64", np.pi),
])
def test_literal_results_take_the_declared_dtype(expr, declared, value):
    # Decision: a weak result adapts to the declared dtype within its kind, as a weak operand.
    node = result("x: f64[n]", expr, declared)
    assert isinstance(node, ir.Const)
    assert dtype_name(node.dtype) == declared and node.value == value


@pytest.mark.parametrize("expr, declared, message", [
    ("1.5", "i32", "cannot return a float as i32 implicitly"),
    ("1", "bool", "cannot return an integer as bool implicitly"),
    ("300", "u8", "300 is out of range for u8"),
    ("-1", "u64", "-1 is out of range for u64"),
])
def test_literal_results_that_do_not_fit(expr, declared, message):
    assert expr_error("x: f64[n]", expr, declared).message == message


def test_result_broadcasts_to_declared_dimensions():
    node = result("x: f64[n], y: f64[m]", "x", "f64[n, m]")
    assert node.dims == ("n",)
    node = result("x: f64[n]", "1.0", "f64[n]")
    assert isinstance(node, ir.Const)


def test_unreduced_extra_dimension_is_an_error():
    err = expr_error("x: f64[n], y: f64[m]", "x + y", "f64[n]")
    assert (err.line, err.column) == (2, 12)
    assert err.message == ("the returned value has dimension 'm', which the result type "
                           "f64[n] lacks")
    assert err.hint == "reduce it, e.g. sum(..., over=m)"


def test_scalar_result_of_an_array_is_an_error():
    err = expr_error("x: f64[n]", "x * 2", "f64")
    assert "sum(..., over=n)" in err.hint


def test_dimension_only_in_the_return_type():
    err = error("kernel f(x: f64[n]) -> f64[n, m]:\n    return x\n")
    assert (err.line, err.column) == (1, 31)
    assert err.message == "dimension 'm' is not bound by any parameter"


@pytest.mark.parametrize("src, column", [
    ("kernel f(x: f64[n, n]) -> f64[n]:\n    return x\n", 20),
    ("kernel f(x: f64[n, m, n]) -> f64[n]:\n    return sum(x, over=m)\n", 23),
    ("kernel f(x: f64[n], y: f64[m]) -> f64[n, m, n]:\n    return x + y\n", 45),
])
def test_same_dimension_twice_in_one_type(src, column):
    err = error(src)
    assert (err.line, err.column) == (1, column)    # the second occurrence
    assert err.message == "dimension 'n' appears twice in one type"


def test_number_of_results():
    err = error("kernel f(x: f64[n]) -> (f64[n], f64):\n    return x\n")
    assert (err.line, err.column) == (2, 5)
    assert err.message == "kernel 'f' returns 1 value but its type declares 2"


def test_several_results():
    k = kernel_ir("kernel f(x: i32[n]) -> (i32, f64, i64[n]):\n"
                  "    return min(x), mean(x), x\n")
    assert [dtype_name(r.dtype) for r in k.results] == ["i32", "f64", "i64"]
    assert k.tuple_result


def test_return_of_a_parenthesised_tuple():
    k = kernel_ir("kernel f(x: f32[n]) -> (f32[n], f32):\n    return (x, sum(x))\n")
    assert [dtype_name(r.dtype) for r in k.results] == ["f32", "f32"]
    err = error("kernel f(x: f64[n]) -> f64[n]:\n    return (x, x)\n")
    assert err.message == "kernel 'f' returns 2 values but its type declares 1"


# --- types and type variables --------------------------------------------------------------

def test_type_variable_binds_at_call_time():
    src = "kernel f(x: T[n], y: T[n], s: U) -> T[n]:\n    return x * y + s\n"
    k = kernel_ir(src, binding={"T": "float32", "U": "float32"})
    assert dtype_name(k.results[0].expr.dtype) == "f32"
    k = kernel_ir(src, binding={"T": "int32", "U": "int8"})
    assert dtype_name(k.results[0].expr.dtype) == "i32"
    assert k.binding == (("T", "i32"), ("U", "i8"))


def test_default_binding_checks_type_variables_as_f64():
    k = kernel_ir("kernel f(x: T[n]) -> T:\n    return sum(x)\n")
    assert k.binding == (("T", "f64"),)
    assert dtype_name(k.results[0].dtype) == "f64"


def test_binding_that_does_not_compile_is_a_type_error_at_call_time():
    c = compiler("kernel f(x: T[n], s: U) -> T[n]:\n    return x + s\n")
    k = c.env.kernels["f"]
    with pytest.raises(TypeError, match="cannot return f64 as i32 implicitly"):
        c.check_kernel(k, {"T": np.dtype("int32"), "U": np.dtype("float64")})


def test_generic_kernel_meant_for_integers_compiles():
    # Decision: a generic kernel is a compile error only if no dtype (the same for every type
    # variable) checks; `x << 1` is an error for T=f64 but fine for integers.
    c = compiler("kernel f(x: T[n]) -> T[n]:\n    return x << 1\n")
    k = c.env.kernels["f"]
    ir_i32 = c.check_kernel(k, {"T": np.dtype("int32")})
    assert dtype_name(ir_i32.results[0].expr.dtype) == "i32"


def test_generic_kernel_that_never_checks_reports_the_f64_error():
    err = error("kernel f(x: T[n]) -> T[n]:\n    return x + q\n")
    assert err.message == "unknown name 'q'"


@pytest.mark.parametrize("name", ["T", "U", "T2", "X10"])
def test_type_variable_names(name):
    k = kernel_ir(f"kernel f(x: {name}[n]) -> {name}[n]:\n    return x\n")
    assert k.binding == ((name, "f64"),)


def test_type_variable_in_the_result_must_be_bound():
    err = error("kernel f(x: T[n]) -> U[n]:\n    return x\n")
    assert (err.line, err.column) == (1, 22)
    assert err.message == "type variable 'U' is not bound by any parameter"


@pytest.mark.parametrize("name, suggestion", [
    ("float64", "f64"), ("float32", "f32"), ("double", "f64"), ("int", "i64"),
    ("int32", "i32"), ("uint8", "u8"), ("bool_", "bool"), ("flaot", "f64"), ("Float64", "f64"),
    ("i23", "i32"), ("f4", "f32"),
])
def test_unknown_types_suggest_an_nbx_dtype(name, suggestion):
    err = error(f"kernel f(x: {name}[n]) -> f64[n]:\n    return x\n")
    assert (err.line, err.column) == (1, 13)
    assert err.message == f"unknown type '{name}'"
    assert err.hint == f"did you mean '{suggestion}'?"


@pytest.mark.parametrize("name", ["t", "TT", "complex", "Tx"])
def test_unknown_types_without_a_close_match(name):
    err = error(f"kernel f(x: {name}[n]) -> f64[n]:\n    return x\n")
    assert err.message == f"unknown type '{name}'"
    assert "type variable" in err.hint


@pytest.mark.parametrize("name", ["c64", "c128", "f16"])
@pytest.mark.parametrize("where", ["param", "result"])
def test_reserved_dtypes_are_not_supported_yet(name, where):
    src = (f"kernel f(x: {name}[n]) -> f64[n]:\n    return x\n" if where == "param"
           else f"kernel f(x: f64[n]) -> {name}[n]:\n    return x\n")
    err = error(src)
    assert err.message == f"dtype '{name}' is not supported yet"
    assert err.column == (13 if where == "param" else 24)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_dtype_as_parameter_and_result(dtype):
    k = kernel_ir(f"kernel f(x: {dtype}[n], s: {dtype}) -> ({dtype}[n], {dtype}):\n"
                  "    return x, s\n")
    assert [dtype_name(r.dtype) for r in k.results] == [dtype, dtype]
    assert [p.dtype_spec for p in k.params] == [dtype, dtype]
