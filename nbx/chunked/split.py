"""split: a kernel's IR -> the steps of a call on chunked arrays (graph.py runs them on Dask).

A call on Dask arrays runs block by block. Each step is a kernel of its own, a KernelIR that
fuse and the backends compile like any other, together with where each of its parameters gets
its value in a block (an `Input`):

- a ReduceStep computes, in one pass over a block, the partial results of every reduction of
  one level that reduces the same dimensions of the same space; graph.py combines the blocks'
  partials with nbx's combine kernels (combine.nbx) in Dask's reduction tree;
- a MapStep computes the kernel's element-wise results over one set of dimensions, block by
  block, reading the finished reductions' values.

Inside a step, whatever depends on the whole array is a parameter: a dimension's length
(`len(n)`, and so every `mean`), where the block starts along a dimension (`index(n)` is the
block's own index plus that start), and the value of a finished reduction.

A variance, `sum((x - sum(x) / n) ** 2)` as the checker lowers var and std (and as a
hand-written normalize spells it), is recognised and computed together with its sum in one
pass: each block gives its count, mean and sum of squared deviations (M2), and blocks combine
by the parallel formula of Chan, Golub and LeVeque. The data is read once, and the result is
as accurate as the two-pass variance (not the naive sum of squares minus the squared sum).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..dsl import ir
from ..dsl.ops import Op
from ..dsl.types import BOOL, F64, I64, dtype_name


class Feed(Enum):
    """Where a step's parameter gets its value in each block."""

    ARGUMENT = "argument"   # the block of the kernel's argument number `key`
    REDUCED = "reduced"     # the block of reduction number `key`'s value (plan.reductions)
    LENGTH = "length"       # the whole length of dimension `key`
    START = "start"         # where the block starts along dimension `key`
    EXTENT = "extent"       # an array (never read) as long as the block along dimension
                            # `key`: the step's lengths come from its arrays, and no other
                            # array of the step has that dimension


@dataclass(frozen=True)
class Input:
    feed: Feed
    key: int | str


class Stats(Enum):
    """What a block's partial result of a reduction holds, and how partials combine."""

    VALUE = "value"       # the reduction over the block; partials combine by the same kind
    ARG = "arg"           # argmin/argmax: the extreme value and its position in the array
    MOMENTS = "moments"   # a sum and its squared deviations: count, sum, mean, M2 (Chan)


@dataclass(frozen=True)
class Partial:
    stats: Stats
    kind: ir.RKind            # VALUE: the reduction; ARG: ARGMIN or ARGMAX; MOMENTS: SUM
    gives: tuple[int, ...]    # the reductions (numbers in plan.reductions) it finishes;
                              # MOMENTS: the sum, then the sum of squared deviations
    results: tuple[int, ...]  # the step's results that hold it for a block
    dtype: np.dtype           # of the reduced values


@dataclass(frozen=True)
class ReduceStep:
    kernel: ir.KernelIR
    inputs: tuple[Input, ...]
    space: tuple[str, ...]    # the reduced expressions' dimensions, in canonical order
    over: tuple[str, ...]     # the dimensions reduced (the others are kept, in that order)
    partials: tuple[Partial, ...]


@dataclass(frozen=True)
class MapStep:
    kernel: ir.KernelIR
    inputs: tuple[Input, ...]
    axes: tuple[str, ...]     # the results' dimensions, in their declared order
    results: tuple[int, ...]  # which of the kernel's results it computes


@dataclass(frozen=True)
class ChunkPlan:
    kernel: ir.KernelIR
    reductions: tuple[ir.Reduce, ...]        # every reduction of the kernel, numbered
    steps: tuple[ReduceStep | MapStep, ...]  # each after the steps whose values it reads
    direct: dict[int, int]                   # kernel result -> the reduction that is it


def split(kernel: ir.KernelIR, whole: frozenset[str] = frozenset()) -> ChunkPlan:
    """The steps of a call whose arguments come in blocks. `whole` are the dimensions that
    come in one block: a reduction over those only needs no combining, so it is computed
    inside the steps that read it, as a call on NumPy arrays computes it (a row-wise softmax
    over blocks of rows is a single step)."""
    order = ir.topo_order(r.expr for r in kernel.results)
    reductions = [n for n in order if isinstance(n, ir.Reduce) and not set(n.over) <= whole]
    number = {r: i for i, r in enumerate(reductions)}
    moments: dict[ir.Reduce, ir.Reduce] = {}   # sum of squared deviations -> its sum
    for r in reductions:
        total = moment_sum(r)
        if total is not None and total not in moments.values():
            moments[r] = total
    deviations = {total: m2 for m2, total in moments.items()}
    level = levels(order, number, moments)
    canon = _canon(kernel)

    groups: dict[tuple, list[ir.Reduce]] = {}
    for r in reductions:
        if r not in moments:   # a sum of squared deviations is computed with its sum
            groups.setdefault((level[r], canon(r.arg.dims), r.over), []).append(r)
    steps: list[ReduceStep | MapStep] = []
    for (_, space, over), group in sorted(groups.items(), key=lambda g: g[0]):
        steps.append(_reduce_step(kernel, len(steps), space, over, group, number,
                                  deviations))

    direct: dict[int, int] = {}
    stores: dict[tuple[str, ...], list[int]] = {}
    for i, res in enumerate(kernel.results):
        node = res.expr
        if node in number and node.dtype == res.dtype and set(node.dims) == set(res.axes or ()):
            direct[i] = number[node]
        else:
            stores.setdefault(tuple(res.axes or ()), []).append(i)
    for axes, indices in stores.items():
        b = _StepBuilder(kernel, number)
        results = [dataclasses.replace(kernel.results[i], expr=b.rewrite(kernel.results[i].expr))
                   for i in indices]
        step_ir, inputs = b.finish(f"{kernel.name}_map{len(steps)}", results, canon(axes))
        steps.append(MapStep(step_ir, inputs, axes, tuple(indices)))
    return ChunkPlan(kernel, tuple(reductions), tuple(steps), direct)


def _reduce_step(kernel, n, space, over, group, number, deviations) -> ReduceStep:
    """One pass over a block computing every partial of `group` (reductions of `space`
    over `over`)."""
    b = _StepBuilder(kernel, number)
    kept = tuple(d for d in space if d not in over)
    results: list[ir.Node] = []
    partials = []
    for r in group:
        x = b.rewrite(r.arg)
        first = len(results)
        if r in deviations:
            # In f64 (also for f32 data): the block's sum, then around the block's mean
            # (sum / count, in the block's own lengths) the sum of deviations and of their
            # squares, which correct the rounded mean (the corrected two-pass algorithm).
            x64 = x if x.dtype == F64 else ir.Cast(F64, x.dims, x)
            total = ir.Reduce(F64, kept, ir.RKind.SUM, x64, over)
            count = ir.Cast(F64, (), _count(over))
            mean = ir.Apply(F64, kept, Op.TRUEDIV, (total, count))
            dev = ir.Apply(F64, x.dims, Op.SUB, (x64, mean))
            square = ir.Apply(F64, x.dims, Op.MUL, (dev, dev))
            results += [total, ir.Reduce(F64, kept, ir.RKind.SUM, dev, over),
                        ir.Reduce(F64, kept, ir.RKind.SUM, square, over)]
            partials.append(Partial(Stats.MOMENTS, r.kind, (number[r], number[deviations[r]]),
                                    (first, first + 1, first + 2), r.dtype))
        elif r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX):
            # the extreme value goes with the position, so that blocks can be compared
            extreme = ir.RKind.MIN if r.kind == ir.RKind.ARGMIN else ir.RKind.MAX
            results += [ir.Reduce(x.dtype, kept, extreme, x, over),
                        ir.Reduce(I64, kept, r.kind, x, over)]
            b.param(Input(Feed.START, over[0]), I64, None)   # the block's position in x
            partials.append(Partial(Stats.ARG, r.kind, (number[r],), (first, first + 1),
                                    x.dtype))
        else:
            results.append(ir.Reduce(r.dtype, kept, r.kind, x, over))
            partials.append(Partial(Stats.VALUE, r.kind, (number[r],), (first,), r.dtype))
    infos = [ir.ResultInfo(node.dtype, kept or None, node) for node in results]
    step_ir, inputs = b.finish(f"{kernel.name}_reduce{n}", infos, space)
    return ReduceStep(step_ir, inputs, space, over, tuple(partials))


def levels(order, combined, moments) -> dict[ir.Node, int]:
    """As fuse.levels, counting only the reductions whose blocks are combined (`combined`);
    a sum of squared deviations is ready with its sum."""
    level: dict[ir.Node, int] = {}
    for node in order:
        base = max((level[k] for k in ir.children(node)), default=0)
        if node in combined:
            level[node] = level[moments[node]] if node in moments else base + 1
        else:
            level[node] = base
    return level


def moment_sum(r: ir.Reduce) -> ir.Reduce | None:
    """For `r = sum((x - s / count) ** 2)` with `s = sum(x)` over the same dimensions of a
    float x and `count` their lengths' product (the checker's lowering of var and std), s;
    else None."""
    if r.kind != ir.RKind.SUM or r.dtype.kind != "f":
        return None
    sq = r.arg
    if not isinstance(sq, ir.Apply):
        return None
    squared = (sq.op == Op.MUL and sq.args[0] == sq.args[1]) or (
        sq.op in (Op.POW, Op.POWER) and isinstance(sq.args[1], ir.Const)
        and sq.args[1].value == 2)
    dev = sq.args[0]
    if not (squared and isinstance(dev, ir.Apply) and dev.op == Op.SUB):
        return None
    x, mean = dev.args
    if not (isinstance(mean, ir.Apply) and mean.op == Op.TRUEDIV):
        return None
    total, count = mean.args
    if not (isinstance(total, ir.Reduce) and total.kind == ir.RKind.SUM and total.arg == x
            and total.over == r.over and total.dtype == r.dtype == x.dtype):
        return None
    return total if _counted(count) == sorted(r.over) else None


def _counted(node: ir.Node) -> list[str] | None:
    """The dimensions whose lengths' product a count node is (sorted), else None."""
    if isinstance(node, ir.Cast):
        node = node.arg
    dims, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ir.DimLen):
            dims.append(n.dim)
        elif isinstance(n, ir.Apply) and n.op == Op.MUL:
            stack.extend(n.args)
        else:
            return None
    return sorted(dims)


def _count(dims) -> ir.Node:
    """The product of the (block's) lengths of dims, an i64."""
    count: ir.Node = ir.DimLen(I64, (), dims[0])
    for d in dims[1:]:
        count = ir.Apply(I64, (), Op.MUL, (count, ir.DimLen(I64, (), d)))
    return count


def reduced_dims(kernel: ir.KernelIR) -> set[str]:
    """Every dimension that some reduction of the kernel reduces."""
    return {d for n in ir.topo_order(r.expr for r in kernel.results)
            if isinstance(n, ir.Reduce) for d in n.over}


def _canon(kernel: ir.KernelIR):
    return lambda dims: tuple(d for d in kernel.dims if d in set(dims))


class _StepBuilder:
    """Rewrites a kernel's expressions into one step's: whatever depends on the whole array
    becomes a parameter of the step, with the Input that feeds it."""

    def __init__(self, kernel: ir.KernelIR, number: dict[ir.Reduce, int]):
        self.canon = _canon(kernel)
        self.number = number
        self.params: list[ir.Param] = []
        self.inputs: list[Input] = []
        self.by_input: dict[Input, ir.Param] = {}
        self.memo: dict[ir.Node, ir.Node] = {}

    def param(self, feed: Input, dtype: np.dtype, axes) -> ir.Param:
        p = self.by_input.get(feed)
        if p is None:
            i = len(self.params)
            p = ir.Param(dtype, self.canon(axes or ()), f"a{i}", i,
                         None if axes is None else tuple(axes))
            self.params.append(p)
            self.inputs.append(feed)
            self.by_input[feed] = p
        return p

    def rewrite(self, root: ir.Node) -> ir.Node:
        # finished reductions are leaves: their values come from earlier steps
        for node in ir.topo_order([root], leaves=self.number):
            if node not in self.memo:
                self.memo[node] = self._rewritten(node)
        return self.memo[root]

    def _rewritten(self, n: ir.Node) -> ir.Node:
        if isinstance(n, ir.Param):
            return self.param(Input(Feed.ARGUMENT, n.index), n.dtype, n.axes)
        if n in self.number:   # a reduction finished by an earlier step
            return self.param(Input(Feed.REDUCED, self.number[n]), n.dtype, n.dims or None)
        if isinstance(n, ir.Reduce):   # over dimensions in one block: computed here
            return dataclasses.replace(n, arg=self.memo[n.arg])
        if isinstance(n, ir.DimLen):
            return self.param(Input(Feed.LENGTH, n.dim), n.dtype, None)
        if isinstance(n, ir.Index):
            start = self.param(Input(Feed.START, n.dim), I64, None)
            return ir.Apply(I64, n.dims, Op.ADD, (n, start))
        if isinstance(n, ir.Cast):
            return dataclasses.replace(n, arg=self.memo[n.arg])
        if isinstance(n, ir.Apply):
            return dataclasses.replace(n, args=tuple(self.memo[a] for a in n.args))
        return n   # a Const

    def finish(self, name: str, results, space) -> tuple[ir.KernelIR, tuple[Input, ...]]:
        """The step kernel, over `space` and the dimensions it reduces inside; each of them
        has an array parameter, which gives the step its length."""
        dims = self.canon(set(space).union(*(n.dims for n in self.memo.values())))
        covered = {d for p in self.params if p.axes for d in p.axes}
        for d in dims:
            if d not in covered:
                self.param(Input(Feed.EXTENT, d), BOOL, (d,))
        params = tuple(ir.ParamInfo(p.name, dtype_name(p.dtype), p.dtype, p.axes)
                       for p in self.params)
        step = ir.KernelIR(name, params, dims, tuple(results), True, ())
        return step, tuple(self.inputs)


def format_chunk_plan(plan: ChunkPlan) -> str:
    """The steps of a call on chunked arrays, one line each (Kernel.explain_chunks)."""
    lines = [f"kernel {plan.kernel.name} on chunked arrays: {len(plan.steps)} "
             f"step{'s' if len(plan.steps) != 1 else ''} (a task per block each)"]
    for i, st in enumerate(plan.steps):
        reads = ", ".join(_input_text(plan, inp) for inp in st.inputs) or "-"
        if isinstance(st, ReduceStep):
            what = "; ".join(_partial_text(plan, p) for p in st.partials)
            lines.append(f"  step {i}: per block of {' x '.join(st.space)}: {what}, reduced "
                         f"over ({', '.join(st.over)}) by a tree of combine tasks")
        else:
            res = ", ".join(f"result {r}" for r in st.results)
            lines.append(f"  step {i}: per block of {' x '.join(st.axes) or 'a scalar'}: "
                         f"{res}")
        lines.append(f"    reads   {reads}")
    for res, r in sorted(plan.direct.items()):
        lines.append(f"  result {res} is r{r}")
    return "\n".join(lines)


def _input_text(plan: ChunkPlan, inp: Input) -> str:
    if inp.feed == Feed.ARGUMENT:
        return plan.kernel.params[inp.key].name
    if inp.feed == Feed.REDUCED:
        return f"r{inp.key}"
    return f"{inp.feed.value}({inp.key})"


def _partial_text(plan: ChunkPlan, p: Partial) -> str:
    names = ", ".join(f"r{g}" for g in p.gives)
    if p.stats == Stats.MOMENTS:
        return f"{names} = sum and sum of squared deviations (count, mean, M2; Chan)"
    if p.stats == Stats.ARG:
        return f"{names} = {p.kind.value} (value, position)"
    return f"{names} = {p.kind.value}"
