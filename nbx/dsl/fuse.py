"""fuse: typed IR -> stages, the loop nests a backend emits.

A stage is one pass over one iteration space. Element-wise work is never materialised: it is
recomputed inside whichever stage needs it. A reduction is computed in the same pass as the
expression it consumes; sibling reductions over the same space share that pass; a value that
needs a finished reduction goes to a later stage (its *level* is one more than the reduction's
input). Kernel results that are exactly a reduction are written by that reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .types import dtype_name


@dataclass(frozen=True)
class Stage:
    index: int
    level: int
    space: tuple[str, ...]                    # loop dimensions, outermost first
    reductions: tuple[ir.Reduce, ...]         # computed here, over `space`
    stores: tuple[tuple[int, ir.Node], ...]   # (result index, value) written over `space`

    @property
    def roots(self) -> list[ir.Node]:
        return [r.arg for r in self.reductions] + [v for _, v in self.stores]


@dataclass(frozen=True)
class Plan:
    kernel: ir.KernelIR
    stages: tuple[Stage, ...]
    reductions: tuple[ir.Reduce, ...]         # every reduction, in the order computed
    direct: dict[int, ir.Reduce]              # result index -> the reduction that is it
    row_groups: tuple[tuple[int, ...], ...] = ()  # consecutive stages run row by row


def row_groups(stages) -> tuple[tuple[int, ...], ...]:
    """Runs of consecutive stages over the same dimensions whose reductions all keep the
    outermost one (softmax: max, then sum, then divide, each per row m). One loop over that
    dimension can run all of them for a row before the next row: the row is read from cache
    in the later passes, and a parallel region is started once instead of once per stage."""
    groups: list[list[Stage]] = []
    for st in stages:
        fits = bool(st.space) and all(st.space[0] not in r.over for r in st.reductions)
        last = groups[-1] if groups else None
        if fits and last and last[-1].space == st.space and all(
                last[0].space[0] not in r.over for s in last for r in s.reductions):
            last.append(st)
        else:
            groups.append([st] if fits else [])
    return tuple(tuple(s.index for s in g) for g in groups if len(g) > 1)


def levels(roots) -> dict[ir.Node, int]:
    """Pass index after which each node's value is available."""
    level: dict[ir.Node, int] = {}
    for node in ir.topo_order(roots):
        kids = ir.children(node)
        base = max((level[k] for k in kids), default=0)
        level[node] = base + 1 if isinstance(node, ir.Reduce) else base
    return level


def fuse(kernel: ir.KernelIR) -> Plan:
    roots = [r.expr for r in kernel.results]
    level = levels(roots)
    order = kernel.dims
    canon = lambda dims: tuple(d for d in order if d in set(dims))  # noqa: E731
    groups: dict[tuple[int, tuple[str, ...]], tuple[list, list]] = {}

    def group(lvl: int, space) -> tuple[list, list]:
        return groups.setdefault((lvl, canon(space)), ([], []))

    reductions = [n for n in ir.topo_order(roots) if isinstance(n, ir.Reduce)]
    for r in reductions:
        group(level[r.arg], r.arg.dims)[0].append(r)
    # Equal nodes are one value (CSE), but a result may hold another object equal to the one
    # computed (`x - mean(x, over=k), sum(x, over=k)`); backends match direct results by
    # identity, so record the object that is computed.
    computed = {r: r for r in reductions}
    direct: dict[int, ir.Reduce] = {}
    for i, res in enumerate(kernel.results):
        node = res.expr
        if isinstance(node, ir.Reduce) and node.dims == tuple(res.axes or ()) \
                and node.dtype == res.dtype and node not in direct.values():
            direct[i] = computed[node]
            continue
        group(level[node], res.axes or ())[1].append((i, node))
    stages = []
    for n, (lvl, space) in enumerate(sorted(groups, key=lambda k: (k[0], len(k[1]), k[1]))):
        reds, stores = groups[(lvl, space)]
        loops = loop_order(kernel, space, reds, stores)
        stages.append(Stage(n, lvl, loops, tuple(reds), tuple(stores)))
    ordered = tuple(r for s in stages for r in s.reductions)
    return Plan(kernel, tuple(stages), ordered, direct, row_groups(stages))


def loop_order(kernel: ir.KernelIR, space: tuple[str, ...], reductions, stores
               ) -> tuple[str, ...]:
    """Outermost to innermost, chosen so that the innermost loop walks contiguous memory of
    C-ordered arrays: the axis order of the result the stage writes (nbx allocates it in
    C order), else of the highest-rank array it reads; dimensions neither covers go outside,
    in canonical order."""
    preferred: tuple[str, ...] = ()
    for i, _ in stores:
        axes = kernel.results[i].axes or ()
        if set(axes) == set(space):
            preferred = axes
            break
    if not preferred:
        roots = [r.arg for r in reductions] + [v for _, v in stores]
        arrays = [n for n in stage_nodes(roots) if isinstance(n, ir.Param) and n.axes]
        arrays.sort(key=lambda p: (-len(p.axes), p.index))
        preferred = arrays[0].axes if arrays else space
    inner = [d for d in preferred if d in space]
    return tuple(d for d in space if d not in inner) + tuple(inner)


def format_plan(plan: Plan) -> str:
    """The readable plan that `Kernel.explain()` and `nbxc explain` print."""
    k = plan.kernel
    names = {r: f"r{i}" for i, r in enumerate(plan.reductions)}
    lines = [f"kernel {k.name}: {len(plan.stages)} stage{'s' if len(plan.stages) != 1 else ''}"]
    if k.binding:
        lines[0] += "  (" + ", ".join(f"{tv}={dt}" for tv, dt in k.binding) + ")"
    for st in plan.stages:
        what = f"loop over {' x '.join(st.space)}" if st.space else "scalar arithmetic"
        lines.append(f"  stage {st.index} (pass {st.level}): {what}")
        reads = sorted({n.name for n in stage_nodes(st.roots) if isinstance(n, ir.Param)})
        used = [names[n] for n in stage_nodes(st.roots) if isinstance(n, ir.Reduce) and n in names]
        reads += sorted(set(used))
        lines.append(f"    reads   {', '.join(reads) or '-'}")
        for r in st.reductions:
            kept = f"[{', '.join(r.dims)}]" if r.dims else ""
            target = ""
            for i, d in plan.direct.items():
                if d is r:
                    target = f" -> result {i}"
            lines.append(f"    reduce  {names[r]} = {r.kind.value} over ({', '.join(r.over)})"
                         f" : {dtype_name(r.dtype)}{kept}{target}")
        for i, _ in st.stores:
            res = k.results[i]
            shape = f"[{', '.join(res.axes)}]" if res.axes else ""
            lines.append(f"    write   result {i} : {dtype_name(res.dtype)}{shape}")
        if st.space:
            read, written = bytes_per_element(plan, st)
            lines.append(f"    moves   ~{read + written} bytes per element of "
                         f"{' x '.join(st.space)} ({read} read, {written} written)")
    for group in plan.row_groups:
        d0 = plan.stages[group[0]].space[0]
        lines.append(f"  stages {', '.join(map(str, group))} run row by row in one parallel "
                     f"loop over {d0}")
    lines.append("  temporaries: none (element-wise values are recomputed in each pass)")
    return "\n".join(lines)


def bytes_per_element(plan: Plan, stage: Stage) -> tuple[int, int]:
    """Estimated memory traffic of one stage per element of its iteration space: arrays that
    span the whole space count their item size (read or written once per element); arrays and
    reduction buffers over fewer dimensions are reused across the missing ones, counted 0."""
    full = set(stage.space)
    read = sum(n.dtype.itemsize for n in stage_nodes(stage.roots)
               if isinstance(n, ir.Param) and n.axes is not None and set(n.axes) == full)
    written = sum(plan.kernel.results[i].dtype.itemsize for i, _ in stage.stores
                  if set(plan.kernel.results[i].axes or ()) == full)
    return read, written


def stage_nodes(roots, leaves=()) -> list[ir.Node]:
    """The nodes a stage computes, operands first; finished reductions (read from their
    buffers) and `leaves` (values a backend reads from elsewhere) end the walk."""
    needed: set[ir.Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed.add(n)
        if not isinstance(n, ir.Reduce) and n not in leaves:
            stack.extend(ir.children(n))
    return [n for n in ir.topo_order(roots) if n in needed]
