"""The IR: a typed expression DAG over named dimensions, as the checker leaves it.

Every node carries its dtype and its dimensions (in the kernel's canonical order). Every
implicit promotion is an explicit `Cast`; literals are `Const`s of their final dtype; defs are
inlined; mean/var/std are lowered to sums. Nodes are frozen, so equal subexpressions are equal
objects for hashing: that is the common-subexpression elimination of `lower`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .ops import Op
from .source import Span
from .types import dtype_name


class RKind(Enum):
    """Reductions the backends implement (mean, var and std are lowered to SUM)."""

    SUM = "sum"
    PROD = "prod"
    MIN = "min"
    MAX = "max"
    ANY = "any"
    ALL = "all"
    ARGMIN = "argmin"
    ARGMAX = "argmax"


# Reductions that have no value over an empty dimension: a call raises ValueError instead.
NO_EMPTY_VALUE = frozenset({RKind.MIN, RKind.MAX, RKind.ARGMIN, RKind.ARGMAX})


def empty_checks(kernel: KernelIR) -> list[tuple[str, tuple[str, ...], int | None]]:
    """(reduction name, dimensions it reduces, its line) for each reduction in NO_EMPTY_VALUE:
    what a call checks against the lengths (callconv.Compiled.empty_checks)."""
    return [(n.kind.value, n.over, n.span.line if n.span is not None else None)
            for n in topo_order(r.expr for r in kernel.results)
            if isinstance(n, Reduce) and n.kind in NO_EMPTY_VALUE]


@dataclass(frozen=True)
class Node:
    dtype: np.dtype
    dims: tuple[str, ...]


@dataclass(frozen=True)
class Param(Node):
    """A kernel parameter; `axes` is the declared order of an array's dimensions."""

    name: str
    index: int
    axes: tuple[str, ...] | None  # None for a scalar parameter


@dataclass(frozen=True)
class Const(Node):
    value: object  # a Python scalar exactly representable in dtype


@dataclass(frozen=True)
class DimLen(Node):
    dim: str


@dataclass(frozen=True)
class Index(Node):
    dim: str


@dataclass(frozen=True)
class Cast(Node):
    arg: Node


@dataclass(frozen=True)
class Apply(Node):
    op: Op
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Reduce(Node):
    kind: RKind
    arg: Node
    over: tuple[str, ...]
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ParamInfo:
    name: str
    dtype_spec: str                  # a dtype name or a type variable, as declared
    dtype: np.dtype                  # under the binding this kernel was checked with
    axes: tuple[str, ...] | None     # None for scalars


@dataclass(frozen=True)
class ResultInfo:
    dtype: np.dtype
    axes: tuple[str, ...] | None     # declared order; None for a scalar result
    expr: Node


@dataclass(frozen=True)
class KernelIR:
    name: str
    params: tuple[ParamInfo, ...]
    dims: tuple[str, ...]            # canonical order
    results: tuple[ResultInfo, ...]
    tuple_result: bool
    binding: tuple[tuple[str, str], ...]   # type variable -> dtype name


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Apply):
        return node.args
    if isinstance(node, (Cast, Reduce)):
        return (node.arg,)
    return ()


def topo_order(roots, leaves=()) -> list[Node]:
    """Every node reachable from roots, each once, operands before users; the operands of
    `leaves` are not walked (their values come from elsewhere)."""
    seen: set[Node] = set()
    order: list[Node] = []
    stack = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            if node not in seen:
                seen.add(node)
                order.append(node)
            continue
        if node in seen:
            continue
        stack.append((node, True))
        if node in leaves:
            continue
        for c in reversed(children(node)):
            if c not in seen:
                stack.append((c, False))
    return order


def describe(node: Node, names: dict[Node, str]) -> str:
    """One line for a node, naming its operands by `names`."""
    def ref(n: Node) -> str:
        return names[n]

    t = dtype_name(node.dtype) + (f"[{', '.join(node.dims)}]" if node.dims else "")
    if isinstance(node, Param):
        what = f"param {node.name}"
    elif isinstance(node, Const):
        what = f"const {node.value!r}"
    elif isinstance(node, DimLen):
        what = f"len({node.dim})"
    elif isinstance(node, Index):
        what = f"index({node.dim})"
    elif isinstance(node, Cast):
        what = f"cast {ref(node.arg)}"
    elif isinstance(node, Apply):
        what = f"{node.op.info.name}({', '.join(ref(a) for a in node.args)})"
    elif isinstance(node, Reduce):
        what = f"{node.kind.value}({ref(node.arg)}, over=({', '.join(node.over)}))"
    else:  # pragma: no cover - every node class is listed above
        raise TypeError(node)
    return f"{what} : {t}"


def format_kernel(kernel: KernelIR) -> str:
    """The IR as text: one numbered line per node (`nbxc explain --emit ir`)."""
    roots = [r.expr for r in kernel.results]
    order = topo_order(roots)
    names = {n: f"%{i}" for i, n in enumerate(order)}
    lines = [f"kernel {kernel.name}  dims ({', '.join(kernel.dims)})"]
    for n in order:
        lines.append(f"  {names[n]} = {describe(n, names)}")
    for i, r in enumerate(kernel.results):
        lines.append(f"  result {i} = {names[r.expr]} as {dtype_name(r.dtype)}"
                     + (f"[{', '.join(r.axes)}]" if r.axes else ""))
    return "\n".join(lines)
