"""Random well-typed nbx programs and inputs for them, and the differential check (issue 5).

`programs()` is a Hypothesis strategy of `Program`s: one kernel over 0 to 3 named dimensions
and parameters of all eleven dtypes, whose body uses every operator and function of the op
table, casts, `where` and conditional expressions, consts, defs (inlined helpers, also with
several results), reductions with and without `over=` (inside element-wise expressions, and
feeding later stages), and several results. `inputs(program)` draws arguments for it: edge
values (NaN, infinities, signed zeros, integer extremes), empty and length-1 dimensions, and
C, Fortran, reversed and strided layouts. `check(program, args, target)` runs the compiled
kernel and the reference interpreter on them and compares (`Mismatch` on a difference).

The generator types every expression itself, with NumPy 2 as the oracle of promotion (NEP 50:
literals are weak) and the language's own rules on top (LANGUAGE.md section 5), so a program
the checker refuses is a disagreement to look at, not noise. It also tracks which values both
implementations must compute bit for bit ("exact"): integer and bool arithmetic, IEEE's
correctly rounded float operations, selections; and float sums whose terms are small dyadic
numbers (then every order of summation gives the same sum). Transcendental functions and
other float reductions are "inexact": nbx calls LLVM's libm and NumPy its own SIMD code, and
summation orders differ; such values are compared within a tolerance, and so that an ulp of
difference cannot turn into a different branch or index, they never reach comparisons, casts
to integers or bools, rounding functions, arg-reductions or sums. Floats are never cast to
integers: NaN, infinities and out-of-range values give undefined results there, in NumPy too
(docs/language.md).

Reusable from a script: benchmarks/fuzz.py runs long campaigns with the same strategies.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

DTYPES = ["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"]
NP = {name: np.dtype(t) for name, t in [
    ("bool", np.bool_), ("i8", np.int8), ("i16", np.int16), ("i32", np.int32),
    ("i64", np.int64), ("u8", np.uint8), ("u16", np.uint16), ("u32", np.uint32),
    ("u64", np.uint64), ("f32", np.float32), ("f64", np.float64)]}
NAME = {dt: name for name, dt in NP.items()}
BOOL, I64, U64, F64 = NP["bool"], NP["i64"], NP["u64"], NP["f64"]
DIM_NAMES = ["n", "m", "k"]
MAX_LEN = 7                     # longest dimension drawn (sums of up to 7^3 terms)
MANTISSA = {4: 24, 8: 53}       # significant bits of f32 and f64
RTOL = {np.dtype(np.float32): 3e-5, np.dtype(np.float64): 1e-11}


class Invalid(Exception):
    """This combination does not type (or would not be comparable): choose another."""


@dataclass(frozen=True)
class V:
    """A typed expression: its source, dtype (a weak literal's: the default), weakness,
    dimensions, and whether both implementations compute it bit for bit. For exact floats,
    `bits` is (fraction bits, integer bits) while the value is a small dyadic number."""

    code: str
    dtype: np.dtype
    dims: frozenset = frozenset()
    weak: str | None = None          # "int", "float", "bool" for literals and untyped consts
    exact: bool = True
    bits: tuple | None = None
    const: bool = False              # known when compiling: the checker folds it
    rtol: float = 0.0                # an inexact value's tolerance: that of its least precise
                                     # inexact step (an f32 acosh cast to f64 keeps f32's)

    @property
    def kind(self) -> str:
        return "b" if self.dtype == BOOL else self.dtype.kind

    def sample(self):
        """A value NumPy types as this one (weak literals as Python scalars)."""
        if self.weak == "int":
            return 1
        if self.weak == "float":
            return 1.0
        if self.weak == "bool":
            return True
        return np.zeros(1, self.dtype)


# ---------------------------------------------------------------------------------------------
# the language's typing, with NumPy as the oracle of promotion

BINARY = {"+": "add", "-": "subtract", "*": "multiply", "/": "true_divide",
          "//": "floor_divide", "%": "remainder", "**": "power", "&": "bitwise_and",
          "|": "bitwise_or", "^": "bitwise_xor", "<<": "left_shift", ">>": "right_shift",
          "<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
          "==": "equal", "!=": "not_equal"}
ARITH = {"+", "-", "*", "//", "%", "**"}
BITWISE = {"&", "|", "^"}
SHIFT = {"<<", ">>"}
COMPARE = {"<", "<=", ">", ">=", "==", "!="}
FLOAT_FN = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin",
            "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
            "atanh", "erf", "erfc"]
ROUND_FN = ["floor", "ceil", "trunc", "rint"]
PREDICATE = ["isnan", "isinf", "isfinite"]
FLOAT_FN2 = ["atan2", "hypot", "copysign"]
REDUCTIONS = ["sum", "prod", "mean", "var", "std", "min", "max", "any", "all", "argmin",
              "argmax"]


# np.clip turns its first argument into an array (a literal there becomes a strong i64); its
# ufunc keeps every literal weak, as the language does (clip(1, i16, f32) is f32)
UFUNCS = {"clip": np._core.umath.clip}


def numpy_dtype(ufunc: str, args: list[V]) -> np.dtype:
    """The dtype NumPy gives the ufunc on these operands, or Invalid."""
    try:
        with np.errstate(all="ignore"):
            out = UFUNCS.get(ufunc, getattr(np, ufunc))(*[a.sample() for a in args])
    except (TypeError, OverflowError, ValueError) as err:
        raise Invalid(str(err)) from None
    return np.asarray(out).dtype


def common(args: list[V]) -> np.dtype:
    try:
        return np.result_type(*[a.sample() for a in args])
    except (TypeError, OverflowError, ValueError) as err:
        raise Invalid(str(err)) from None


def union(*args: V) -> frozenset:
    out = frozenset()
    for a in args:
        out |= a.dims
    return out


def add_bits(a: V, b: V, op: str):
    """The dyadic bits of a + b, a - b or a * b, or None when it may not be small."""
    if a.bits is None or b.bits is None:
        return None
    (fa, ia), (fb, ib) = a.bits, b.bits
    return (fa + fb, ia + ib) if op == "*" else (max(fa, fb), max(ia, ib) + 1)


def folds(typing):
    """The result is a constant when every operand is (reductions never are)."""
    @functools.wraps(typing)
    def typed(*args):
        operands = [a for a in args if isinstance(a, V)] + \
            [a for x in args if isinstance(x, list) for a in x]
        v = typing(*args)
        return dataclasses.replace(v, const=bool(operands) and all(a.const for a in operands),
                                   rtol=tolerance(v, operands))
    return typed


def tolerance(v: V, operands: list[V]) -> float:
    """The relative tolerance of v: none when exact, else the loosest of its own dtype's and
    its operands'."""
    if v.exact:
        return 0.0
    return max([RTOL.get(v.dtype, 0.0)] + [a.rtol for a in operands])


def fits(bits, dtype: np.dtype, extra: int = 0) -> bool:
    return bits is not None and sum(bits) + extra + 1 <= MANTISSA.get(dtype.itemsize, 0)


@folds
def binary(op: str, a: V, b: V) -> V:
    """a op b (an operator of section 5), typed; Invalid where the language refuses it."""
    if a.weak and b.weak:
        raise Invalid("two literals")
    dims = union(a, b)
    code = f"({a.code} {op} {b.code})"
    if op in ("and", "or"):
        if a.kind != "b" or b.kind != "b":
            raise Invalid("logic on non-bools")
        return V(code, BOOL, dims, exact=a.exact and b.exact)
    if op in ARITH and a.kind == "b" and b.kind == "b":
        raise Invalid("arithmetic on two bools")
    if op in BITWISE | SHIFT and "f" in (a.kind, b.kind):
        raise Invalid("bitwise on floats")
    dtype = numpy_dtype(BINARY[op], [a, b])
    if op == "**" and dtype.kind in "iu" and a.const and b.const:
        raise Invalid("a constant integer power (the checker folds it, maybe to an error)")
    if op in COMPARE:
        if not (a.exact and b.exact):
            raise Invalid("comparing inexact values")
        return V(code, BOOL, dims)
    if dtype.kind != "f":
        return V(code, dtype, dims)
    exact = a.exact and b.exact
    if op in ("+", "-") and not exact:
        raise Invalid("cancellation of inexact values")
    if op in ("//", "%") and not exact:
        raise Invalid("floor of inexact values")
    if op == "**":
        if not exact:
            raise Invalid("powers of inexact values")
        return V(code, dtype, dims, exact=False)
    bits = add_bits(a, b, op) if op in ("+", "-", "*") and a.kind == "f" == b.kind else None
    if bits is not None and not fits(bits, dtype):
        bits = None
    return V(code, dtype, dims, exact=exact, bits=bits)


@folds
def unary(op: str, a: V) -> V:
    """-a, +a, ~a, not a."""
    code = f"({op}{' ' if op == 'not' else ''}{a.code})"
    if a.weak:
        raise Invalid("operators on literals")
    if op == "not":
        if a.kind != "b":
            raise Invalid("not of a non-bool")
        return V(code, BOOL, a.dims, exact=a.exact)
    if op in ("-", "+") and a.kind == "b":
        raise Invalid("sign of a bool")
    if op == "~" and a.kind == "f":
        raise Invalid("~ of a float")
    return V(code, a.dtype, a.dims, exact=a.exact, bits=a.bits)


@folds
def function(name: str, args: list[V]) -> V:
    """A call of an element-wise function of section 5, typed."""
    if all(a.weak for a in args):
        raise Invalid("a function of literals")
    code = f"{name}({', '.join(a.code for a in args)})"
    dims = union(*args)
    exact = all(a.exact for a in args)
    kinds = [a.kind for a in args]
    if name in FLOAT_FN:
        (a,) = args
        if not a.exact:
            raise Invalid("a function of an inexact value")
        dtype = a.dtype if a.kind == "f" else F64
        # sqrt is correctly rounded (IEEE), the others are libm's and NumPy's own
        return V(code, dtype, dims, exact=name == "sqrt")
    if name in ROUND_FN:
        (a,) = args
        if not a.exact:
            raise Invalid("rounding an inexact value")
        return V(code, a.dtype, dims)
    if name in PREDICATE:
        if not exact:
            raise Invalid("a predicate of an inexact value")
        return V(code, BOOL, dims)
    if name == "abs":
        return V(code, args[0].dtype, dims, exact=exact, bits=args[0].bits)
    if name == "sign":
        if kinds[0] == "b" or not exact:
            raise Invalid("sign of a bool or an inexact value")
        return V(code, args[0].dtype, dims)
    if name in FLOAT_FN2:
        if not exact:
            raise Invalid("a function of inexact values")
        dtype = common(args)
        dtype = dtype if dtype.kind == "f" else F64
        return V(code, dtype, dims, exact=name == "copysign")
    if name in ("minimum", "maximum", "clip"):
        dtype = numpy_dtype(name, args)   # the clip ufunc's, which is not always result_type's
        if dtype == BOOL and name == "clip":
            raise Invalid("clip of bools")
        return V(code, dtype, dims, exact=exact)
    if name == "pow":
        typed = binary("**", *args)
        return V(code, typed.dtype, dims, exact=typed.exact)
    raise AssertionError(name)


@folds
def where(c: V, a: V, b: V, spelling: str) -> V:
    """where(c, a, b) or `a if c else b`: both branches are evaluated."""
    if c.kind != "b" or not c.exact:
        raise Invalid("the condition must be an exact bool")
    if a.weak and b.weak:
        raise Invalid("two literal branches")
    dtype = common([a, b])
    code = f"where({c.code}, {a.code}, {b.code})" if spelling == "where" else \
        f"({a.code} if {c.code} else {b.code})"
    bits = None
    if a.bits is not None and b.bits is not None and dtype.kind == "f":
        bits = (max(a.bits[0], b.bits[0]), max(a.bits[1], b.bits[1]))
    return V(code, dtype, union(c, a, b), exact=a.exact and b.exact, bits=bits)


@folds
def cast(name: str, a: V) -> V:
    """dtype(a): never a float (NaN, inf, out of range: undefined) into an integer."""
    dtype = NP[name]
    code = f"{name}({a.code})"
    if a.kind == "f" and dtype.kind in "iu":
        raise Invalid("float to integer")
    if dtype == BOOL or dtype.kind in "iu":
        if not a.exact:
            raise Invalid("truth of an inexact value")
        return V(code, dtype, a.dims)
    bits = a.bits if a.kind == "f" and fits(a.bits, dtype) else None
    if a.kind == "b":
        bits = (0, 1)
    return V(code, dtype, a.dims, exact=a.exact, bits=bits)


def reduction(kind: str, a: V, over: tuple, dims_order: list[str]) -> V:
    """kind(a) (every dimension; `over` empty) or kind(a, over=...), typed (section 6)."""
    if not a.dims or a.weak:
        raise Invalid("reducing a scalar")
    order = [d for d in dims_order if d in a.dims]
    reduced = tuple(over) or tuple(order)
    if kind in ("argmin", "argmax"):
        if len(reduced) != 1:
            raise Invalid("arg-reductions reduce one dimension")
        if not a.exact:
            raise Invalid("the index of an inexact extreme")
        dtype = I64
    elif kind in ("any", "all"):
        if not a.exact:
            raise Invalid("the truth of inexact values")
        dtype = BOOL
    elif kind in ("sum", "prod"):
        dtype = a.dtype if a.kind == "f" else (U64 if a.kind == "u" else I64)
    elif kind in ("mean", "var", "std"):
        dtype = a.dtype if a.kind == "f" else F64
    else:
        dtype = a.dtype
    if not over:
        code = f"{kind}({a.code})"
    elif len(over) == 1:
        code = f"{kind}({a.code}, over={over[0]})"
    else:
        code = f"{kind}({a.code}, over=({', '.join(over)}))"
    exact = a.exact
    bits = None
    if dtype.kind == "f" and kind in ("sum", "mean"):
        # exact when the terms are small dyadic numbers: then every order gives the sum
        terms = 3 * len(reduced)                          # 2^3 >= MAX_LEN per dimension
        exact = a.exact and a.kind == "f" and fits(a.bits, dtype, terms)
        if exact and kind == "sum":
            bits = (a.bits[0], a.bits[1] + terms)
    elif dtype.kind == "f" and kind in ("prod", "var", "std"):
        exact = False
    elif kind in ("mean", "var", "std"):           # of integers: reduced in f64
        exact = False
    v = V(code, dtype, frozenset(a.dims - set(reduced)), exact=exact, bits=bits)
    return dataclasses.replace(v, rtol=tolerance(v, [a]))


# ---------------------------------------------------------------------------------------------
# programs

@dataclass
class Program:
    source: str
    name: str
    params: list                 # (name, dtype name, dims tuple or None)
    results: list                # V of each returned value (exact, dtype)
    dims: list[str]
    dyadic: bool                 # float inputs are small dyadic numbers (see the docstring)
    parallel: bool = True
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.source


class Builder:
    """Draws one program: its parameters, consts, defs and body."""

    def __init__(self, draw, reductions: bool = True):
        self.draw = draw
        self.reductions = reductions
        self.dims = draw(st.lists(st.sampled_from(DIM_NAMES), max_size=3, unique=True))
        self.dyadic = draw(st.booleans())
        self.params: list[tuple] = []
        self.leaves: list[V] = []          # what expressions may use: params, locals, consts
        self.consts: list[str] = []
        self.defs: list[str] = []
        self.body: list[str] = []
        self.counter = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # parameters and leaves ----------------------------------------------------------------
    def add_params(self):
        count = self.draw(st.integers(1, 4))
        for i in range(count):
            dtype = self.draw(st.sampled_from(DTYPES))
            if self.dims and self.draw(st.integers(0, 3)):
                dims = tuple(d for d in self.dims if self.draw(st.booleans())) or \
                    (self.draw(st.sampled_from(self.dims)),)
            else:
                dims = None
            name = f"p{i}"
            self.params.append((name, dtype, dims))
            self.leaves.append(self.param_value(name, NP[dtype], dims))
        # every dimension must be bound by a parameter
        bound = {d for _, _, dims in self.params if dims for d in dims}
        for d in self.dims:
            if d not in bound:
                name = f"p{len(self.params)}"
                dtype = self.draw(st.sampled_from(DTYPES))
                self.params.append((name, dtype, (d,)))
                self.leaves.append(self.param_value(name, NP[dtype], (d,)))

    def param_value(self, name, dtype, dims) -> V:
        bits = (2, 5) if dtype.kind == "f" and self.dyadic else None
        if dtype == BOOL:
            bits = None
        return V(name, dtype, frozenset(dims or ()), bits=bits)

    def literal(self) -> V:
        choice = self.draw(st.integers(0, 5))
        if choice <= 2:
            k = self.draw(st.integers(0, 9))
            return V(str(k), I64, weak="int", bits=(0, max(1, k.bit_length())), const=True)
        if choice == 3:
            text, bits = self.draw(st.sampled_from([("0.5", (1, 1)), ("1.5", (1, 2)),
                                                    ("2.0", (0, 2)), ("0.25", (2, 1)),
                                                    ("3.0", (0, 2))]))
            return V(text, F64, weak="float", bits=bits, const=True)
        if choice == 4:
            return V(self.draw(st.sampled_from(["True", "False"])), BOOL, weak="bool",
                     const=True)
        name = self.draw(st.sampled_from(["f32", "f64", "i32", "u8", "i64", "u64", "i8"]))
        if name[0] == "f":
            return V(f"{name}(1.5)", NP[name], bits=(1, 2), const=True)
        return V(f"{name}(3)", NP[name], const=True)

    def leaf(self) -> V:
        choice = self.draw(st.integers(0, 9))
        if choice <= 5 and self.leaves:
            return self.draw(st.sampled_from(self.leaves))
        if choice == 6 and self.dims:
            d = self.draw(st.sampled_from(self.dims))
            if self.draw(st.booleans()):
                return V(f"index({d})", I64, frozenset([d]))
            return V(d, I64)                       # the length of d
        return self.literal()

    # expressions --------------------------------------------------------------------------
    def expr(self, depth: int, in_def: bool = False, leaves=None) -> V:
        """An expression of at most `depth` levels; retries choices that do not type."""
        for _ in range(8):
            try:
                return self.node(depth, in_def, leaves)
            except Invalid:
                continue
        return self.any_leaf(leaves)

    def any_leaf(self, leaves) -> V:
        if leaves is not None:
            return self.draw(st.sampled_from(leaves))
        for _ in range(8):
            v = self.leaf()
            if not v.weak:
                return v
        return self.leaves[0]

    def pick_leaf(self, leaves) -> V:
        """A leaf: of the program, or in a def's body one of its parameters or a literal."""
        if leaves is None:
            return self.leaf()
        return self.draw(st.sampled_from(leaves)) if self.draw(st.integers(0, 3)) else \
            self.literal()

    def node(self, depth: int, in_def: bool, leaves) -> V:
        if depth <= 0:
            return self.pick_leaf(leaves)
        sub = lambda: self.expr(depth - 1, in_def, leaves)  # noqa: E731
        what = self.draw(st.integers(0, 13))
        if what <= 3:
            op = self.draw(st.sampled_from(sorted(BINARY) + ["and", "or"]))
            return binary(op, sub(), sub())
        if what == 4:
            return unary(self.draw(st.sampled_from(["-", "+", "~", "not"])), sub())
        if what == 5:
            name = self.draw(st.sampled_from(FLOAT_FN + ROUND_FN + PREDICATE +
                                             ["abs", "sign"]))
            return function(name, [sub()])
        if what == 6:
            name = self.draw(st.sampled_from(FLOAT_FN2 + ["minimum", "maximum", "pow"]))
            return function(name, [sub(), sub()])
        if what == 7:
            return function("clip", [sub(), sub(), sub()])
        if what == 8:
            return where(sub(), sub(), sub(), self.draw(st.sampled_from(["where", "if"])))
        if what == 9:
            return cast(self.draw(st.sampled_from(DTYPES)), sub())
        if what == 10 and not in_def:
            return self.call_def(depth)
        if what in (11, 12) and not in_def and self.reductions:
            return self.reduce(depth)
        return self.pick_leaf(leaves)

    def reduce(self, depth: int) -> V:
        a = self.expr(depth - 1)
        if not a.dims:
            raise Invalid("nothing to reduce")
        kind = self.draw(st.sampled_from(REDUCTIONS))
        order = [d for d in self.dims if d in a.dims]
        if kind in ("argmin", "argmax"):
            over = (self.draw(st.sampled_from(order)),)
            if len(order) == 1 and self.draw(st.booleans()):
                over = ()                                   # argmin(x) of a vector
        elif self.draw(st.booleans()):
            over = ()
        else:
            over = tuple(d for d in order if self.draw(st.booleans())) or (order[0],)
        return reduction(kind, a, over, self.dims)

    def call_def(self, depth: int) -> V:
        """A def made for this call: its body over its parameters, typed with the arguments;
        sometimes with two results, unpacked into locals."""
        args = [self.expr(depth - 1) for _ in range(self.draw(st.integers(1, 3)))]
        names = [f"a{i}" for i in range(len(args))]
        formal = [dataclasses.replace(a, code=n) for n, a in zip(names, args)]
        body = self.expr(self.draw(st.integers(1, 3)), in_def=True, leaves=formal)
        name = self.fresh("h")
        actual = self.substitute(body, names, args)
        two = self.draw(st.integers(0, 3)) == 0
        if two:
            other = self.expr(1, in_def=True, leaves=formal)
            second = self.substitute(other, names, args)
            self.defs.append(f"def {name}({', '.join(names)}):\n"
                             f"    return {body.code}, {other.code}\n")
            u, w = self.fresh("q"), self.fresh("r")
            self.body.append(f"{u}, {w} = {name}({', '.join(a.code for a in args)})")
            self.leaves.append(self.named(w, second))
            return self.named(u, actual)
        self.defs.append(f"def {name}({', '.join(names)}):\n    return {body.code}\n")
        return dataclasses.replace(actual, code=f"{name}({', '.join(a.code for a in args)})")

    @staticmethod
    def substitute(body: V, names, args) -> V:
        """The body's type at this call: the dimensions of the arguments it uses."""
        used = frozenset()
        for n, a in zip(names, args):
            if _uses(body.code, n):
                used |= a.dims
        return dataclasses.replace(body, dims=used)

    @staticmethod
    def named(name: str, v: V) -> V:
        return dataclasses.replace(v, code=name)

    def add_const(self):
        name = self.fresh("C")
        if self.draw(st.booleans()):
            lit = self.literal()
            if lit.weak:
                self.consts.append(f"const {name} = {lit.code}")
                self.leaves.append(V(name, lit.dtype, weak=lit.weak, bits=lit.bits,
                                     const=True))
                return
        dtype = self.draw(st.sampled_from(["f32", "f64", "i16", "u32"]))
        value = "0.75" if dtype[0] == "f" else "7"
        self.consts.append(f"const {name} = {dtype}({value})")
        self.leaves.append(V(name, NP[dtype], bits=(2, 1) if dtype[0] == "f" else None,
                             const=True))


def _uses(code: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


@st.composite
def programs(draw, max_depth: int = 4, reductions: bool = True,
             max_results: int = 3) -> Program:
    """A random well-typed kernel (see the module's docstring). Without reductions and with
    one result, it is one the cuda-ufunc target takes."""
    b = Builder(draw, reductions)
    b.add_params()
    for _ in range(draw(st.integers(0, 2))):
        b.add_const()
    for _ in range(draw(st.integers(0, 3))):          # locals
        v = b.expr(draw(st.integers(1, max_depth)))
        name = b.fresh("t")
        b.body.append(f"{name} = {v.code}")
        b.leaves.append(b.named(name, v))
    results = []
    for _ in range(draw(st.integers(1, max_results))):
        results.append(b.expr(draw(st.integers(0, max_depth))))
    types, codes = [], []
    for v in results:
        dtype = v.dtype
        narrower = [n for n in DTYPES if np.can_cast(dtype, NP[n], "same_kind")
                    and NP[n].kind == dtype.kind]
        if draw(st.integers(0, 4)) == 0 and narrower:
            dtype = NP[draw(st.sampled_from(narrower))]   # converted as the result is stored
        dims = [d for d in b.dims if d in v.dims]
        if draw(st.integers(0, 5)) == 0:
            dims = list(b.dims)                             # broadcast over the others
        types.append(NAME[dtype] + (f"[{', '.join(dims)}]" if dims else ""))
        codes.append(v.code)
    params = ", ".join(f"{n}: {t}" + (f"[{', '.join(d)}]" if d else "")
                       for n, t, d in b.params)
    ret = types[0] if len(types) == 1 else f"({', '.join(types)})"
    doc = '    "A random kernel."\n' if draw(st.booleans()) else ""
    lines = [f"    {s}" for s in b.body] + [f"    return {', '.join(codes)}"]
    source = "\n".join(b.consts) + ("\n\n" if b.consts else "") + \
        "\n".join(b.defs) + ("\n" if b.defs else "") + \
        f"kernel kern({params}) -> {ret}:\n{doc}" + "\n".join(lines) + "\n"
    final = [dataclasses.replace(v, dtype=NP[t.split("[")[0]], weak=None)
             for v, t in zip(results, types)]
    return Program(source, "kern", b.params, final, b.dims, b.dyadic,
                   parallel=draw(st.integers(0, 3)) == 0)


# ---------------------------------------------------------------------------------------------
# inputs

SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0]


def float_values(rng, dtype, size, dyadic: bool):
    if dyadic:   # multiples of 1/4 up to 16 in magnitude: sums are exact in any order
        x = rng.integers(-64, 65, size).astype(dtype) / dtype.type(4)
    else:
        info = np.finfo(dtype)
        pool = np.array([info.max, -info.max, info.tiny, -info.tiny, info.smallest_subnormal,
                         info.eps, 1.0, -1.0, 0.5, 1e3, -1e-3], dtype)
        x = (rng.standard_normal(size) * 10.0 ** rng.integers(-3, 4, size)).astype(dtype)
        pick = rng.random(size) < 0.15
        x[pick] = rng.choice(pool, size=int(pick.sum()))
    special = rng.random(size) < 0.1
    x[special] = rng.choice(np.array(SPECIAL, dtype), size=int(special.sum()))
    return x


def values(rng, dtype, size, dyadic):
    if dtype == BOOL:
        return rng.random(size) < 0.5
    if dtype.kind == "f":
        return float_values(rng, dtype, size, dyadic)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
    small = rng.random(size) < 0.5
    x[small] = rng.integers(max(info.min, -5), 6, int(small.sum()))
    extreme = rng.random(size) < 0.1
    x[extreme] = rng.choice(np.array([info.min, info.max, 0, 1], dtype), int(extreme.sum()))
    return x


def layout(rng, x: np.ndarray, which: str) -> np.ndarray:
    if which == "F" and x.ndim > 1:
        return np.asfortranarray(x)
    if which == "reversed" and x.ndim:
        rev = (slice(None, None, -1),) * x.ndim
        return np.ascontiguousarray(x[rev])[rev]
    if which == "strided" and x.ndim:
        base = np.zeros(tuple(2 * s + 1 for s in x.shape), x.dtype)
        view = base[(slice(1, None, 2),) * x.ndim]
        view[...] = x
        return view
    return x


@st.composite
def inputs(draw, program: Program, max_len: int = MAX_LEN):
    """Arguments for the program: lengths (empty and length-1 dimensions among them), values,
    layouts, and the form of scalars (NumPy scalars, Python numbers, 0-d arrays)."""
    lengths = {d: draw(st.sampled_from([0, 1, 2, 3, 4, max_len])) for d in program.dims}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    args = []
    for _, dtype_name, dims in program.params:
        dtype = NP[dtype_name]
        if dims is None:
            value = values(rng, dtype, 1, program.dyadic)[0]
            form = draw(st.integers(0, 5))
            if form == 0 and dtype.kind in "f" and dtype == F64:
                value = float(value)                # a Python float for an f64
            elif form == 1:
                value = np.array(value)             # a 0-d array
            args.append(value)
            continue
        shape = tuple(lengths[d] for d in dims)
        x = values(rng, dtype, int(np.prod(shape)), program.dyadic).reshape(shape)
        args.append(layout(rng, x, draw(st.sampled_from(["C", "C", "F", "reversed",
                                                         "strided"]))))
    return lengths, args


# ---------------------------------------------------------------------------------------------
# the check

class Mismatch(AssertionError):
    """The compiled kernel and the reference interpreter disagree."""



def compare(got, want, result: V, what: str) -> None:
    if isinstance(want, np.ndarray) != isinstance(got, np.ndarray):
        raise Mismatch(f"{what}: got {type(got).__name__}, want {type(want).__name__}")
    g, w = np.asarray(got), np.asarray(want)
    if g.dtype != w.dtype or g.shape != w.shape:
        raise Mismatch(f"{what}: got {g.dtype}{g.shape}, want {w.dtype}{w.shape}")
    if w.dtype.kind != "f":
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)[:3] if g.ndim else [()]
            raise Mismatch(f"{what}: differs at {[tuple(i) for i in bad]}: got "
                           f"{[g[tuple(i)] for i in bad]}, want {[w[tuple(i)] for i in bad]}")
        return
    with np.errstate(all="ignore"):
        same_nan = np.isnan(g) == np.isnan(w)
        if result.exact:
            close = (g == w) | (np.isnan(g) & np.isnan(w))
        else:   # relative, and absolute near zero (libm functions are accurate in ulps of 1)
            close = (g == w) | (np.isnan(g) & np.isnan(w)) | \
                (np.abs(g - w) <= max(RTOL[w.dtype], result.rtol) * (np.abs(w) + 1))
    bad = ~(same_nan & close)
    if bad.any():
        idx = np.argwhere(bad)[:3] if g.ndim else [()]
        raise Mismatch(f"{what} ({'exact' if result.exact else 'within tolerance'}): "
                       f"{int(bad.sum())} of {bad.size} differ: " + ", ".join(
                           f"{tuple(i)} got {g[tuple(i)]!r} want {w[tuple(i)]!r}"
                           for i in idx))


def run(kernel, args):
    """(results as a tuple, None) or (None, the exception)."""
    try:
        with np.errstate(all="ignore"):
            out = kernel(*args)
    except Exception as err:  # noqa: BLE001  compared below
        return None, err
    return (out if isinstance(out, tuple) else (out,)), None


def check(program: Program, kernel, args) -> None:
    """The compiled kernel against the reference interpreter on these arguments: equal
    results (exact values bit for bit, others within RTOL), or the same exception type."""
    got, got_err = run(kernel, args)
    want, want_err = run(kernel.reference, args)
    if want_err is not None or got_err is not None:
        if got_err is None and "negative integer powers" in str(want_err) and \
                any(np.size(a) == 0 for a in args):
            return   # operations feeding only empty loops are not computed (docs/language.md)
        if type(got_err) is not type(want_err):
            raise Mismatch(f"compiled raised {got_err!r}, reference raised {want_err!r}")
        if not isinstance(want_err, (ValueError, TypeError)):
            raise Mismatch(f"both raised {want_err!r}") from want_err
        return
    for i, (g, w, r) in enumerate(zip(got, want, program.results, strict=True)):
        compare(g, w, r, f"result {i}")


def describe(program: Program, lengths, args) -> str:
    """The program and its arguments, as a failure report shows them."""
    lines = [program.source, f"lengths: {lengths}"]
    for (name, dtype, dims), a in zip(program.params, args):
        lines.append(f"{name} ({dtype}{list(dims) if dims else ''}): "
                     f"{np.array2string(np.asarray(a), threshold=50)}"
                     + (f" strides={a.strides}" if isinstance(a, np.ndarray) and a.ndim else ""))
    return "\n".join(lines)


__all__ = ["Program", "programs", "inputs", "check", "describe", "Mismatch", "math"]
