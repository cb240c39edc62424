"""The NumPy reference interpreter: evaluates a kernel's typed IR with NumPy, step by step.

This defines nbx's semantics: every backend is tested against it on the same inputs. Values are
NumPy arrays with one axis per kernel dimension in canonical order (size 1 where a value lacks
that dimension), so broadcasting by name is NumPy broadcasting and reductions keep their axes.
"""

from __future__ import annotations

import numpy as np

from . import ir


def evaluate(kernel: ir.KernelIR, args: list, lengths: dict[str, int]) -> list:
    """Results of `kernel` for checked arguments (arrays in declared axis order, NumPy scalars).

    Returns one array per result (declared axis order) or a NumPy scalar for scalar results.
    """
    dims = kernel.dims
    ndim = len(dims)
    axis = {d: i for i, d in enumerate(dims)}

    def shaped(value: np.ndarray, present) -> np.ndarray:
        shape = [lengths[d] if d in present else 1 for d in dims]
        return np.reshape(value, shape)

    values: dict[ir.Node, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for node in ir.topo_order([r.expr for r in kernel.results]):
            if isinstance(node, ir.Param):
                arg = args[node.index]
                if node.axes is None:
                    v = np.asarray(arg, dtype=node.dtype).reshape((1,) * ndim)
                else:
                    order = sorted(range(len(node.axes)), key=lambda i: axis[node.axes[i]])
                    v = shaped(np.transpose(np.asarray(arg), order), node.dims)
            elif isinstance(node, ir.Const):
                v = np.full((1,) * ndim, node.value, dtype=node.dtype)
            elif isinstance(node, ir.DimLen):
                v = np.full((1,) * ndim, lengths[node.dim], dtype=np.int64)
            elif isinstance(node, ir.Index):
                v = shaped(np.arange(lengths[node.dim], dtype=np.int64), node.dims)
            elif isinstance(node, ir.Cast):
                v = values[node.arg].astype(node.dtype)
            elif isinstance(node, ir.Apply):
                operands = [values[a] for a in node.args]
                v = np.asarray(node.op.info.numpy(*operands)).astype(node.dtype, copy=False)
            elif isinstance(node, ir.Reduce):
                v = reduce(node, values[node.arg], tuple(axis[d] for d in node.over))
            else:  # pragma: no cover
                raise TypeError(node)
            values[node] = v
    out = []
    for res in kernel.results:
        v = values[res.expr]
        axes = res.axes or ()
        full = np.broadcast_to(v, [lengths[d] if d in axes else 1 for d in dims])
        keep = [axis[d] for d in axes]
        squeezed = full.reshape([full.shape[i] for i in sorted(keep)])
        order = sorted(range(len(axes)), key=lambda i: axis[axes[i]])
        inverse = np.argsort(order)
        result = np.transpose(squeezed, inverse).astype(res.dtype, copy=True)
        out.append(result if axes else result.reshape(())[()])
    return out


def reduce(node: ir.Reduce, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    k = node.kind
    if k == ir.RKind.SUM and node.dtype.kind == "f" and axes:
        # NumPy sums pairwise only along a contiguous axis; along any other it adds one row
        # after another, a chain whose error can exceed LANGUAGE.md section 6's bound. So the
        # reduced axes become one contiguous last axis first.
        moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
        kept = moved.shape[:x.ndim - len(axes)]
        count = int(np.prod(moved.shape[x.ndim - len(axes):]))
        rows = np.ascontiguousarray(moved).reshape(kept + (count,))
        return np.expand_dims(np.sum(rows, axis=-1, dtype=node.dtype), axes)
    if k == ir.RKind.SUM:
        return np.sum(x, axis=axes, keepdims=True, dtype=node.dtype)
    if k == ir.RKind.PROD:
        return np.prod(x, axis=axes, keepdims=True, dtype=node.dtype)
    if k == ir.RKind.MIN:
        return np.min(x, axis=axes, keepdims=True)
    if k == ir.RKind.MAX:
        return np.max(x, axis=axes, keepdims=True)
    if k == ir.RKind.ANY:
        return np.any(x, axis=axes, keepdims=True)
    if k == ir.RKind.ALL:
        return np.all(x, axis=axes, keepdims=True)
    (a,) = axes
    if k == ir.RKind.ARGMIN:
        return np.argmin(x, axis=a, keepdims=True).astype(np.int64)
    return np.argmax(x, axis=a, keepdims=True).astype(np.int64)
