"""THE op table: every operator and function of nbx, once.

Each entry says how the checker types the op (`Rule`), how the NumPy reference interpreter
computes it, and how the CPU backend spells it for floats, integers and bools. The checker,
the reference interpreter, the emitters and the docs all read this table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Rule(Enum):
    """How an op's operand and result dtypes are decided (see check.py: `type_op`)."""

    ARITH = "arith"          # + - * // % ** and pow: common dtype; two bools are an error
    TRUEDIV = "truediv"      # /: common dtype, integers and bools computed in f64
    BITWISE = "bitwise"      # & | ^: integers or bools, common dtype
    SHIFT = "shift"          # << >>: integers, common dtype
    COMPARE = "compare"      # < <= > >= == !=: common dtype, result bool
    LOGIC = "logic"          # and or not: bools only
    NEG = "neg"              # unary -: numbers, not bool
    POS = "pos"              # unary +: numbers
    INVERT = "invert"        # ~: integers or bools
    FLOAT_FN = "float_fn"    # sqrt, sin, ...: integers and bools computed in f64
    ROUND_FN = "round_fn"    # floor ceil trunc rint: integers unchanged
    KEEP_FN = "keep_fn"      # abs, sign: keep the dtype
    PREDICATE = "predicate"  # isnan isinf isfinite: result bool
    FLOAT_FN2 = "float_fn2"  # atan2 hypot copysign: common dtype, integers in f64
    MINMAX = "minmax"        # minimum maximum clip: common dtype, NaN propagates
    WHERE = "where"          # where(c, a, b): c bool, a and b to their common dtype


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(np.asarray(x).dtype)


def _erfc(x):
    return np.vectorize(math.erfc, otypes=[np.float64])(x).astype(np.asarray(x).dtype)


@dataclass(frozen=True)
class OpInfo:
    name: str           # the source spelling: a function name or an operator symbol
    arity: int
    rule: Rule
    numpy: object       # the reference: a NumPy function of the (already cast) operands
    cpu: str            # Numba spelling for float operands; {0} {1} {2} are operand names
    cpu_int: str | None = None   # for integer operands, where it differs
    cpu_bool: str | None = None  # for bool operands, where it differs
    cpu_uint: str | None = None  # for unsigned operands, where they differ from signed ones
    # CUDA spelling for float operands where the CPU's does not compile for the GPU (NumPy
    # ufuncs beyond a few); {s} is "f" for float32 ("_cbrtf"). The names are the generated
    # module's own aliases (nbx/backends/cuda.py HEADER).
    cuda: str | None = None
    cuda_int: str | None = None  # for integer operands, where the CPU's does not compile

    def cuda_template(self, kind: str) -> str:
        if kind == "f" and self.cuda is not None:
            return self.cuda
        if kind in "iu" and self.cuda_int is not None:
            return self.cuda_int
        return self.cpu_template(kind)

    def cpu_template(self, kind: str) -> str:
        """The spelling for operands of NumPy kind `kind` ('f', 'i', 'u' or 'b')."""
        if kind == "b" and self.cpu_bool is not None:
            return self.cpu_bool
        if kind == "u" and self.cpu_uint is not None:
            return self.cpu_uint
        if kind in "iub" and self.cpu_int is not None:
            return self.cpu_int
        return self.cpu


class Op(Enum):
    # operators. Signed +, - and * run on unsigned bits (the result is cast back), which wrap
    # as NumPy's: Numba marks signed arithmetic `nsw`, so LLVM takes an overflow for impossible
    # and folds comparisons of overflowed values (`3 ** x < 1` was False for every x).
    # Accumulations use the same spellings (backends/base.py arith).
    ADD = OpInfo("+", 2, Rule.ARITH, np.add, "{0} + {1}",
                cpu_int="np.uint64({0}) + np.uint64({1})", cpu_uint="{0} + {1}")
    SUB = OpInfo("-", 2, Rule.ARITH, np.subtract, "{0} - {1}",
                cpu_int="np.uint64({0}) - np.uint64({1})", cpu_uint="{0} - {1}")
    MUL = OpInfo("*", 2, Rule.ARITH, np.multiply, "{0} * {1}",
                cpu_int="np.uint64({0}) * np.uint64({1})", cpu_uint="{0} * {1}")
    TRUEDIV = OpInfo("/", 2, Rule.TRUEDIV, np.true_divide, "{0} / {1}")
    FLOORDIV = OpInfo("//", 2, Rule.ARITH, np.floor_divide, "_nbx_ffloordiv({0}, {1})",
                      cpu_int="_nbx_ifloordiv({0}, {1})")
    MOD = OpInfo("%", 2, Rule.ARITH, np.remainder, "_nbx_fmod({0}, {1})",
                 cpu_int="_nbx_imod({0}, {1})")
    POW = OpInfo("**", 2, Rule.ARITH, np.power, "{0} ** {1}",
                 cpu_int="_nbx_ipow(np.int64({0}), np.int64({1}), _err)",
                 cpu_uint="_nbx_upow(np.uint64({0}), np.uint64({1}))")
    BIT_AND = OpInfo("&", 2, Rule.BITWISE, np.bitwise_and, "{0} & {1}")
    BIT_OR = OpInfo("|", 2, Rule.BITWISE, np.bitwise_or, "{0} | {1}")
    BIT_XOR = OpInfo("^", 2, Rule.BITWISE, np.bitwise_xor, "{0} ^ {1}")
    LSHIFT = OpInfo("<<", 2, Rule.SHIFT, np.left_shift, "",
                    cpu_int="_nbx_lshift(np.int64({0}), np.int64({1}), {bits})",
                    cpu_uint="_nbx_ulshift(np.uint64({0}), np.uint64({1}), {bits})")
    RSHIFT = OpInfo(">>", 2, Rule.SHIFT, np.right_shift, "",
                    cpu_int="_nbx_rshift(np.int64({0}), np.int64({1}), {bits})",
                    cpu_uint="_nbx_urshift(np.uint64({0}), np.uint64({1}), {bits})")
    LT = OpInfo("<", 2, Rule.COMPARE, np.less, "{0} < {1}")
    LE = OpInfo("<=", 2, Rule.COMPARE, np.less_equal, "{0} <= {1}")
    GT = OpInfo(">", 2, Rule.COMPARE, np.greater, "{0} > {1}")
    GE = OpInfo(">=", 2, Rule.COMPARE, np.greater_equal, "{0} >= {1}")
    EQ = OpInfo("==", 2, Rule.COMPARE, np.equal, "{0} == {1}")
    NE = OpInfo("!=", 2, Rule.COMPARE, np.not_equal, "{0} != {1}")
    AND = OpInfo("and", 2, Rule.LOGIC, np.logical_and, "{0} and {1}")
    OR = OpInfo("or", 2, Rule.LOGIC, np.logical_or, "{0} or {1}")
    NOT = OpInfo("not", 1, Rule.LOGIC, np.logical_not, "not {0}")
    NEG = OpInfo("-x", 1, Rule.NEG, np.negative, "-{0}")
    POS = OpInfo("+x", 1, Rule.POS, np.positive, "{0}")
    INVERT = OpInfo("~", 1, Rule.INVERT, np.invert, "~{0}", cpu_bool="not {0}")
    # one-argument functions
    ABS = OpInfo("abs", 1, Rule.KEEP_FN, np.abs, "abs({0})", cpu_bool="{0}")
    # NumPy's sign is +0.0 for -0.0 (Numba's np.sign keeps -0.0; adding 0.0 clears it) and
    # 1 for every non-zero unsigned value (Numba's np.sign of a uint8 >= 128 gives 255).
    SIGN = OpInfo("sign", 1, Rule.KEEP_FN, np.sign, "np.sign({0}) + 0.0",
                  cpu_int="np.sign({0})", cpu_uint="min({0}, 1)",
                  cuda="_nbx_sign({0})", cuda_int="_nbx_sign({0})")
    SQRT = OpInfo("sqrt", 1, Rule.FLOAT_FN, np.sqrt, "np.sqrt({0})",
                  cuda="_sqrt({0})")
    CBRT = OpInfo("cbrt", 1, Rule.FLOAT_FN, np.cbrt, "np.cbrt({0})",
                  cuda="_cbrt{s}({0})")
    EXP = OpInfo("exp", 1, Rule.FLOAT_FN, np.exp, "np.exp({0})", cuda="_exp({0})")
    EXP2 = OpInfo("exp2", 1, Rule.FLOAT_FN, np.exp2, "np.exp2({0})", cuda="_exp2({0})")
    EXPM1 = OpInfo("expm1", 1, Rule.FLOAT_FN, np.expm1, "np.expm1({0})",
                   cuda="_expm1({0})")
    LOG = OpInfo("log", 1, Rule.FLOAT_FN, np.log, "np.log({0})", cuda="_log({0})")
    LOG2 = OpInfo("log2", 1, Rule.FLOAT_FN, np.log2, "np.log2({0})", cuda="_log2({0})")
    LOG10 = OpInfo("log10", 1, Rule.FLOAT_FN, np.log10, "np.log10({0})",
                   cuda="_log10({0})")
    LOG1P = OpInfo("log1p", 1, Rule.FLOAT_FN, np.log1p, "np.log1p({0})",
                   cuda="_log1p({0})")
    SIN = OpInfo("sin", 1, Rule.FLOAT_FN, np.sin, "np.sin({0})",
                 cuda="_sin({0})")
    COS = OpInfo("cos", 1, Rule.FLOAT_FN, np.cos, "np.cos({0})",
                 cuda="_cos({0})")
    TAN = OpInfo("tan", 1, Rule.FLOAT_FN, np.tan, "np.tan({0})",
                 cuda="_tan({0})")
    ASIN = OpInfo("asin", 1, Rule.FLOAT_FN, np.arcsin, "np.arcsin({0})",
                  cuda="_asin({0})")
    ACOS = OpInfo("acos", 1, Rule.FLOAT_FN, np.arccos, "np.arccos({0})",
                  cuda="_acos({0})")
    ATAN = OpInfo("atan", 1, Rule.FLOAT_FN, np.arctan, "np.arctan({0})",
                  cuda="_atan({0})")
    SINH = OpInfo("sinh", 1, Rule.FLOAT_FN, np.sinh, "np.sinh({0})",
                  cuda="_sinh({0})")
    COSH = OpInfo("cosh", 1, Rule.FLOAT_FN, np.cosh, "np.cosh({0})",
                  cuda="_cosh({0})")
    TANH = OpInfo("tanh", 1, Rule.FLOAT_FN, np.tanh, "np.tanh({0})",
                  cuda="_tanh({0})")
    ASINH = OpInfo("asinh", 1, Rule.FLOAT_FN, np.arcsinh, "np.arcsinh({0})",
                   cuda="_asinh({0})")
    ACOSH = OpInfo("acosh", 1, Rule.FLOAT_FN, np.arccosh, "np.arccosh({0})",
                   cuda="_acosh({0})")
    ATANH = OpInfo("atanh", 1, Rule.FLOAT_FN, np.arctanh, "np.arctanh({0})",
                   cuda="_atanh({0})")
    ERF = OpInfo("erf", 1, Rule.FLOAT_FN, _erf, "math.erf({0})",
                 cuda="_erf({0})")
    ERFC = OpInfo("erfc", 1, Rule.FLOAT_FN, _erfc, "math.erfc({0})",
                  cuda="_erfc({0})")
    FLOOR = OpInfo("floor", 1, Rule.ROUND_FN, np.floor, "np.floor({0})", cpu_int="{0}",
                   cuda="_floor({0})")
    CEIL = OpInfo("ceil", 1, Rule.ROUND_FN, np.ceil, "np.ceil({0})", cpu_int="{0}",
                  cuda="_ceil({0})")
    TRUNC = OpInfo("trunc", 1, Rule.ROUND_FN, np.trunc, "np.trunc({0})", cpu_int="{0}",
                   cuda="_trunc({0})")
    RINT = OpInfo("rint", 1, Rule.ROUND_FN, np.rint, "np.rint({0})", cpu_int="{0}",
                  cuda="_rint{s}({0})")
    ISNAN = OpInfo("isnan", 1, Rule.PREDICATE, np.isnan, "np.isnan({0})", cpu_int="False",
                   cuda="_isnan({0})")
    ISINF = OpInfo("isinf", 1, Rule.PREDICATE, np.isinf, "np.isinf({0})", cpu_int="False",
                   cuda="_isinf({0})")
    ISFINITE = OpInfo("isfinite", 1, Rule.PREDICATE, np.isfinite, "np.isfinite({0})",
                      cpu_int="True", cuda="_isfinite({0})")
    # two- and three-argument functions
    ATAN2 = OpInfo("atan2", 2, Rule.FLOAT_FN2, np.arctan2, "np.arctan2({0}, {1})",
                   cuda="_atan2({0}, {1})")
    HYPOT = OpInfo("hypot", 2, Rule.FLOAT_FN2, np.hypot, "np.hypot({0}, {1})",
                   cuda="_hypot({0}, {1})")
    COPYSIGN = OpInfo("copysign", 2, Rule.FLOAT_FN2, np.copysign, "np.copysign({0}, {1})",
                      cuda="_copysign({0}, {1})")
    POWER = OpInfo("pow", 2, Rule.ARITH, np.power, "{0} ** {1}",
                   cpu_int="_nbx_ipow(np.int64({0}), np.int64({1}), _err)",
                   cpu_uint="_nbx_upow(np.uint64({0}), np.uint64({1}))")
    MINIMUM = OpInfo("minimum", 2, Rule.MINMAX, np.minimum, "_nbx_fminimum({0}, {1})",
                     cpu_int="min({0}, {1})")
    MAXIMUM = OpInfo("maximum", 2, Rule.MINMAX, np.maximum, "_nbx_fmaximum({0}, {1})",
                     cpu_int="max({0}, {1})")
    CLIP = OpInfo("clip", 3, Rule.MINMAX, np.clip,
                  "_nbx_fminimum(_nbx_fmaximum({0}, {1}), {2})",
                  cpu_int="min(max({0}, {1}), {2})")
    WHERE = OpInfo("where", 3, Rule.WHERE, np.where, "{1} if {0} else {2}")

    @property
    def info(self) -> OpInfo:
        return self.value


# Source spelling of a callable function -> op. Operators are mapped by the grammar's aliases.
FUNCTIONS: dict[str, Op] = {
    op.info.name: op for op in Op if op.info.name.isidentifier() and op.info.rule != Rule.LOGIC
}


class Reduction(Enum):
    """The reductions of the source language. mean, var and std are lowered to sum (check.py)."""

    SUM = "sum"
    PROD = "prod"
    MIN = "min"
    MAX = "max"
    MEAN = "mean"
    VAR = "var"
    STD = "std"
    ANY = "any"
    ALL = "all"
    ARGMIN = "argmin"
    ARGMAX = "argmax"


REDUCTIONS: dict[str, Reduction] = {r.value: r for r in Reduction}

BUILTIN_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "inf": math.inf,
                                       "nan": math.nan}
