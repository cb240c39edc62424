"""What every backend shares: the source builder, names, literals, and the module loader.

Generated code is a real file: written into the cache directory under a content hash and
imported from there, so that Numba's cache=True works and tracebacks show real lines. The
cache itself (keys, checks, recovery) is nbx/cache.py; its loader functions are re-exported
here for the backends.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

from ..cache import cache_root, import_module, store_module, write_module  # noqa: F401
from ..dsl.types import dtype_name


class CodeBuilder:
    """Indentation-aware lines of Python source."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("    " * self.level + text) if text else "")

    def extend(self, lines) -> None:
        for text in lines:
            self.line(text)

    @contextmanager
    def block(self, header: str):
        self.line(header)
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Names:
    """How generated code names a kernel's values: user names always behind a prefix that no
    .nbx identifier clashes with a generated one (p_x, n_k, i_k)."""

    @staticmethod
    def param(name: str) -> str:
        return f"p_{name}"

    @staticmethod
    def length(dim: str) -> str:
        return f"n_{dim}"

    @staticmethod
    def loop(dim: str) -> str:
        return f"i_{dim}"


NUMPY_CTOR = {"bool": "np.bool_", "i8": "np.int8", "i16": "np.int16", "i32": "np.int32",
              "i64": "np.int64", "u8": "np.uint8", "u16": "np.uint16", "u32": "np.uint32",
              "u64": "np.uint64", "f32": "np.float32", "f64": "np.float64"}


def ctor(dtype: np.dtype) -> str:
    """The NumPy scalar constructor of a dtype, as generated code spells it."""
    return NUMPY_CTOR[dtype_name(dtype)]


def arith(op, a: str, b: str, dtype: np.dtype) -> str:
    """`a op b` (an Op, for accumulations) on values of `dtype`, in the op table's spelling:
    signed integers on unsigned bits, so that they wrap as NumPy's (see Op.ADD), then cast
    back."""
    code = op.value.cpu_template(dtype.kind).format(a, b)
    return f"{ctor(dtype)}({code})" if dtype.kind == "i" else code


def literal(value, dtype: np.dtype) -> str:
    """A typed literal: re-printed from the checked value with repr(), never user text."""
    if dtype.kind == "b":
        return "True" if value else "False"
    if dtype.kind == "f":
        v = float(value)
        if math.isnan(v):
            text = "np.nan"
        elif math.isinf(v):
            text = "np.inf" if v > 0 else "-np.inf"
        else:
            text = repr(v)
        return f"{ctor(dtype)}({text})"
    return f"{ctor(dtype)}({int(value)!r})"


def expression(node, operands: list[str], target: str = "cpu") -> str:
    """The scalar code of a Const, Cast or Apply node, given its operands' code: the one
    spelling of every operation, shared by the backends (the op table holds the templates;
    `target` "cuda" takes its CUDA spellings where they differ).

        Apply(MUL, f64)  ["t0", "t1"]  ->  "np.float64(t0 * t1)"
    """
    from ..dsl import ir
    if isinstance(node, ir.Const):
        return literal(node.value, node.dtype)
    if isinstance(node, ir.Cast):
        (arg,) = operands
        return f"{arg} != 0" if node.dtype.kind == "b" else f"{ctor(node.dtype)}({arg})"
    if isinstance(node, ir.Apply):
        operand = node.args[1] if node.op.name == "WHERE" else node.args[0]
        kind = "b" if operand.dtype.kind == "b" else operand.dtype.kind
        info = node.op.info
        template = info.cuda_template(kind) if target == "cuda" else info.cpu_template(kind)
        code = template.format(*operands, bits=operand.dtype.itemsize * 8,
                               s="f" if operand.dtype.itemsize == 4 else "")
        return code if node.dtype.kind == "b" else f"{ctor(node.dtype)}({code})"
    raise TypeError(node)  # pragma: no cover

