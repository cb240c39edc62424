"""Dtypes and NumPy 2 (NEP 50) promotion, including weak literals.

A value's type is `VType`: a dtype, its set of named dimensions (kept in the kernel's canonical
order) and whether it is *weak* (an untyped literal or const, which adapts to the other operand).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from ..callconv import DTYPES  # the ten dtypes by nbx name (defined with the calling convention)

NAMES: dict[np.dtype, str] = {v: k for k, v in DTYPES.items()}
RESERVED_DTYPES = {"c64", "c128", "f16"}
BOOL, I64, U64, F64 = DTYPES["bool"], DTYPES["i64"], DTYPES["u64"], DTYPES["f64"]

# Names people coming from NumPy write; each suggests the nbx spelling.
_ALIASES = {"float64": "f64", "float32": "f32", "double": "f64", "float": "f64", "int": "i64",
            "int64": "i64", "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8",
            "uint16": "u16", "uint32": "u32", "uint64": "u64", "bool_": "bool",
            "boolean": "bool", "f8": "f64", "f4": "f32", "single": "f32"}


def dtype_name(dt: np.dtype) -> str:
    return NAMES[np.dtype(dt)]


def is_type_variable(name: str) -> bool:
    return len(name) >= 1 and name[0].isupper() and name[0].isalpha() and \
        (len(name) == 1 or name[1:].isdigit())


def suggest_dtype(name: str) -> str | None:
    if name in _ALIASES:
        return _ALIASES[name]
    close = difflib.get_close_matches(name, list(DTYPES) + list(_ALIASES), n=1, cutoff=0.6)
    return _ALIASES.get(close[0], close[0]) if close else None


@dataclass(frozen=True)
class VType:
    dtype: np.dtype
    dims: tuple[str, ...] = ()
    weak: bool = False

    @property
    def kind(self) -> str:
        return self.dtype.kind

    def __str__(self) -> str:
        base = ("weak " if self.weak else "") + dtype_name(self.dtype)
        return f"{base}[{', '.join(self.dims)}]" if self.dims else base


def weak_default(value) -> np.dtype:
    """The dtype a weak value takes when it never meets a strong one."""
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, int):
        return I64
    return F64


def promote(a: VType, b: VType, a_value=None, b_value=None) -> np.dtype:
    """The common dtype of two operands, as NumPy 2 computes it (NEP 50).

    A weak operand passes its Python value so that NumPy applies its weak-scalar rules.
    Raises OverflowError where NumPy would (a weak integer out of range of a strong one).
    """
    if a.weak and b.weak:
        return np.result_type(weak_default(a_value), weak_default(b_value))
    if a.weak:
        a, b, a_value, b_value = b, a, b_value, a_value
    if b.weak:
        result = np.result_type(a.dtype, _py(b_value))
        if b.dtype.kind in "iu" and result.kind in "iu":
            info = np.iinfo(result)
            if not info.min <= int(b_value) <= info.max:
                raise OverflowError(f"{int(b_value)} is out of range for {dtype_name(result)}")
        return result
    return np.result_type(a.dtype, b.dtype)


def _py(value):
    """A Python scalar of the weak value's kind (NumPy treats Python scalars as weak)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if -2**63 <= int(value) < 2**63 else 0
    return float(value)


def can_cast_same_kind(src: np.dtype, dst: np.dtype) -> bool:
    return bool(np.can_cast(src, dst, casting="same_kind"))
