"""The abstract syntax tree: frozen dataclasses, every node with the Span it came from.

Built from Lark's parse tree by build.py; read by check.py. Operators are already resolved to
the op table's `Op` members; calls keep the callee's name, which the checker resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ops import Op
from .source import Span


@dataclass(frozen=True)
class Expr:
    span: Span = field(compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Num(Expr):
    value: int | float | bool


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Unary(Expr):
    op: Op
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: Op
    left: Expr
    right: Expr


@dataclass(frozen=True)
class IfExp(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]
    keywords: tuple[Keyword, ...]
    func_span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class TupleExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class StringExpr(Expr):
    value: str


@dataclass(frozen=True)
class TypeExpr:
    """`f64[m, k]` (dims is a tuple) or `f64` (dims is None)."""

    dtype: str
    dims: tuple[str, ...] | None
    span: Span = field(compare=False, repr=False)
    dtype_span: Span = field(compare=False, repr=False)
    dim_spans: tuple[Span, ...] = field(compare=False, repr=False, default=())


@dataclass(frozen=True)
class Param:
    name: str
    type: TypeExpr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Assign:
    targets: tuple[str, ...]
    target_spans: tuple[Span, ...] = field(compare=False, repr=False)
    value: Expr = field(compare=False)
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Return:
    values: tuple[Expr, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class ConstDef:
    name: str
    value: Expr
    span: Span = field(compare=False, repr=False)
    name_span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class DefDef:
    name: str
    params: tuple[str, ...]
    param_spans: tuple[Span, ...]
    body: tuple[Assign, ...]
    ret: Return
    span: Span = field(compare=False, repr=False)
    name_span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class KernelDef:
    name: str
    params: tuple[Param, ...]
    results: tuple[TypeExpr, ...]
    tuple_result: bool
    doc: str | None
    body: tuple[Assign, ...]
    ret: Return
    span: Span = field(compare=False, repr=False)
    name_span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Module:
    definitions: tuple[ConstDef | DefDef | KernelDef, ...]
    filename: str
