"""emit (cpu): a fusion plan -> Python source of @njit(parallel=True) functions with prange loops.

One function per stage and one entry function per kernel, which allocates the reduction buffers
and runs the stages in order. Loops run in the kernel's canonical dimension order, so the
innermost loop walks the last dimension (contiguous for C-ordered inputs). Reductions:

- the outermost dimension kept: `for i_m in prange(n_m)`, each thread owns its rows and writes
  the reduction buffer directly (`r0[i_m] = acc`);
- the outermost dimension reduced: blocks of a fixed number of rows (a function of the shape
  only, so results do not depend on the thread count), one partial per block, combined after
  the parallel loop (pairwise for float sums).

Float sums never chain more than SUM_CHUNK plain additions: longer chains go through Kahan's
compensated addition (`_nbx_kadd`), which keeps them within LANGUAGE.md section 6's bound.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager

import numpy as np

from ..dsl import ir
from ..dsl.fuse import Plan, Stage, stage_nodes
from ..dsl.ops import Op, Rule
from .base import CodeBuilder, Names, arith, expression, literal

BLOCK_ELEMENTS = 8192   # elements per block when the outermost dimension is reduced
MAX_PARTIAL_BLOCKS = 64  # partial buffers with kept dims have at most this many blocks
#                          (unless they hold float sums: then blocks have <= SUM_CHUNK rows)
# Float sums: an innermost loop that a sum runs through goes in chunks of this many iterations,
# plain (vectorised) additions inside a chunk, each chunk's sum then added with compensation.
# A long chain of plain additions (a row of a million, rows added one by one into a column
# sum) can exceed LANGUAGE.md section 6's bound, 8 * eps * sum(|terms|) * log2(count + 1).
SUM_CHUNK = 256

PRELUDE = '''
@njit(cache=CACHE, error_model="numpy")
def _nbx_ifloordiv(a, b):
    if b == 0:
        return a - a
    if b == -1:
        return -a
    return a // b


@njit(cache=CACHE, error_model="numpy")
def _nbx_imod(a, b):
    if b == 0 or b == -1:
        return a - a
    return a % b


@njit(cache=CACHE, error_model="numpy")
def _nbx_ffloordiv(a, b):
    # NumPy's npy_floor_divide: floor of the exact quotient, IEEE results for b == 0.
    if b == 0:
        return a / b
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != 0:
        if (b < 0) != (mod < 0):
            div -= 1
    if div != 0:
        floordiv = np.floor(div)
        if div - floordiv > 0.5:
            floordiv += 1
    else:
        floordiv = np.copysign(div - div, a / b)
    return floordiv


@njit(cache=CACHE, error_model="numpy")
def _nbx_fmod(a, b):
    # NumPy's npy_remainder: the result has the sign of b.
    mod = np.fmod(a, b)
    if b == 0:
        return mod
    if mod != 0:
        if (b < 0) != (mod < 0):
            mod += b
    else:
        mod = np.copysign(mod - mod, b)
    return mod


@njit(cache=CACHE, error_model="numpy")
def _nbx_ipow(a, b, err):
    # a and b are int64; the products run on unsigned bits, which wrap (Numba's signed ones
    # are `nsw`, and LLVM then folds comparisons of an overflowed power wrongly)
    if b < 0:
        err[0] = 1
        return a - a
    return np.int64(_nbx_upow(np.uint64(a), np.uint64(b)))


@njit(cache=CACHE, error_model="numpy")
def _nbx_upow(a, b):
    one = np.uint64(1)
    result = one
    while b > 0:
        if b & one:
            result = result * a
        a = a * a
        b = b >> one
    return result


@njit(cache=CACHE, error_model="numpy")
def _nbx_lshift(a, b, bits):
    if b < 0 or b >= bits:
        return a - a
    return a << b


@njit(cache=CACHE, error_model="numpy")
def _nbx_rshift(a, b, bits):
    if b < 0 or b >= bits:
        return (a - a) - 1 if a < 0 else a - a
    return a >> b


@njit(cache=CACHE, error_model="numpy")
def _nbx_ulshift(a, b, bits):
    if b >= bits:
        return a - a
    return a << b


@njit(cache=CACHE, error_model="numpy")
def _nbx_urshift(a, b, bits):
    if b >= bits:
        return a - a
    return a >> b


@njit(cache=CACHE, error_model="numpy")
def _nbx_fminimum(a, b):
    # NumPy's minimum: NaN propagates; between equal values (0.0 and -0.0) b wins.
    return a if (a < b or a != a) else b


@njit(cache=CACHE, error_model="numpy")
def _nbx_fmaximum(a, b):
    return a if (a > b or a != a) else b


@njit(cache=CACHE, error_model="numpy", fastmath={"reassoc"})
def _nbx_radd(acc, value):
    # Only this addition may be reassociated: LLVM then vectorises the accumulation loop
    # (several partial sums), while the element-wise arithmetic around it stays strict IEEE.
    return acc + value


@njit(cache=CACHE, error_model="numpy", fastmath={"reassoc"})
def _nbx_rmul(acc, value):
    return acc * value


@njit(cache=CACHE, error_model="numpy")
def _nbx_kadd(total, comp, value):
    # Kahan's compensated total + value: the true sum is total - comp. Once the total is not
    # finite, comp is left alone (inf - inf would make it NaN and the sum NaN, not inf).
    y = value - comp
    t = total + y
    if t - t == 0:
        comp = (t - total) - y
    return t, comp


@njit(cache=CACHE, error_model="numpy")
def _nbx_tree_sum(part):
    # Pairwise sum of the per-block partials, in a fixed order.
    n = part.shape[0]
    while n > 1:
        half = (n + 1) // 2
        for j in range(n - half):
            part[j] = part[j] + part[j + half]
        n = half
    return part[0]
'''


def header(what: str, origin: str, cache: bool, note: str = "") -> str:
    """The top of a generated module: what it is, its imports and the shared helpers."""
    b = CodeBuilder()
    b.line(f"# Generated by nbx from {origin}: {what}. Do not edit.")
    b.line(f"# {note + ' ' if note else ''}Needs only numpy and numba.")
    b.line("import math")
    b.line("")
    b.line("import numpy as np")
    b.line("from numba import njit, prange")
    b.line("")
    b.line(f"CACHE = {cache!r}")
    b.extend(PRELUDE.splitlines())
    return b.text()


def identity(kind: ir.RKind, dtype: np.dtype) -> str:
    """The starting value of an accumulator, as a typed literal."""
    if kind in (ir.RKind.SUM,):
        return literal(0, dtype)
    if kind == ir.RKind.PROD:
        return literal(1, dtype)
    if kind == ir.RKind.ANY:
        return "False"
    if kind == ir.RKind.ALL:
        return "True"
    low = kind in (ir.RKind.MIN, ir.RKind.ARGMIN)
    if dtype.kind == "f":
        return literal(np.inf if low else -np.inf, dtype)
    if dtype.kind == "b":
        return "True" if low else "False"
    info = np.iinfo(dtype)
    return literal(info.max if low else info.min, dtype)


def compensated(red: ir.Reduce) -> bool:
    """A float sum: its long chains of additions are compensated (see SUM_CHUNK)."""
    return red.kind == ir.RKind.SUM and red.dtype.kind == "f"


def value_dtype(red: ir.Reduce) -> np.dtype:
    """The dtype of a reduction's running value (the input's for argmin/argmax)."""
    return red.arg.dtype if red.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX) else red.dtype


def combine(red: ir.Reduce, target: str, value: str, target_i: str = "", value_i: str = "",
            ) -> list[str]:
    """Statements that fold `value` into the accumulator `target` (lvalues allowed)."""
    k = red.kind
    floating = value_dtype(red).kind == "f"
    if k == ir.RKind.SUM:
        return [f"{target} = _nbx_radd({target}, {value})" if floating
                else f"{target} = {arith(Op.ADD, target, value, red.dtype)}"]
    if k == ir.RKind.PROD:
        return [f"{target} = _nbx_rmul({target}, {value})" if floating
                else f"{target} = {arith(Op.MUL, target, value, red.dtype)}"]
    if k == ir.RKind.ANY:
        return [f"{target} = {target} or {value}"]
    if k == ir.RKind.ALL:
        return [f"{target} = {target} and {value}"]
    cmp = "<" if k in (ir.RKind.MIN, ir.RKind.ARGMIN) else ">"
    if k in (ir.RKind.MIN, ir.RKind.MAX):
        nan = f" or {value} != {value}" if floating else ""
        return [f"if {value} {cmp} {target}{nan}:", f"    {target} = {value}"]
    # argmin / argmax: the first extreme wins; a NaN is the extreme; index -1 means "none yet"
    nan = f" or ({value} != {value} and {target} == {target})" if floating else ""
    return [f"if {value_i} >= 0 and ({target_i} < 0 or {value} {cmp} {target}{nan}):",
            f"    {target} = {value}",
            f"    {target_i} = {value_i}"]


class CpuEmitter(Names):
    """Emits the whole generated module for one kernel under one type-variable binding."""

    def __init__(self, plan: Plan, *, fastmath: bool = False, parallel: bool = True,
                 cache: bool = True, origin: str = "", suffix: str = "") -> None:
        self.plan = plan
        self.suffix = suffix  # appended to every function name (standalone modules hold many)
        self.kernel = plan.kernel
        self.fastmath = fastmath
        self.parallel = parallel
        self.cache = cache
        self.origin = origin
        self.buffers: dict[ir.Reduce, str] = {r: f"r{i}" for i, r in enumerate(plan.reductions)}

    # names ----------------------------------------------------------------------------------
    @property
    def entry_name(self) -> str:
        return f"kernel_{self.kernel.name}{self.suffix}"

    @property
    def fast_name(self) -> str:
        return f"fast_{self.kernel.name}{self.suffix}"

    def stage_name(self, stage: Stage, parallel: bool) -> str:
        return f"_{self.kernel.name}{self.suffix}_stage{stage.index}" + \
            ("" if parallel else "_serial")

    def signature(self) -> list[str]:
        """Arguments shared by the entry and every stage function."""
        k = self.kernel
        args = [self.param(p.name) for p in k.params]
        args += [f"o{i}" for i in range(len(k.results))]
        return args + ["_err"] + [self.length(d) for d in k.dims]

    def buffer_args(self) -> list[str]:
        out = []
        for r in self.plan.reductions:
            out.append(self.buffers[r])
            if r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX):
                out.append(self.buffers[r] + "_i")
        return out

    def shape(self, dims) -> str:
        if not dims:
            return "(1,)"
        return "(" + ", ".join(self.length(d) for d in dims) + ",)"

    def index(self, dims) -> str:
        return ", ".join(self.loop(d) for d in dims) if dims else "0"

    # module ---------------------------------------------------------------------------------
    def header(self) -> str:
        """The top of a module holding this one kernel: what it is, imports and helpers."""
        k = self.kernel
        binding = ", ".join(f"{tv}={dt}" for tv, dt in k.binding)
        return header(f"kernel {k.name}" + (f" ({binding})" if binding else ""), self.origin,
                      self.cache, f"Stages: {len(self.plan.stages)}.")

    def functions(self) -> str:
        """The kernel's compiled functions (the module's header and helpers not included)."""
        b = CodeBuilder()
        variants = [True, False] if self.parallel else [False]
        for parallel in variants:
            for loop in self.loops():
                b.line("")
                b.line("")
                self.emit_stage(b, loop, parallel)
            if not self.single_stage:
                b.line("")
                b.line("")
                self.emit_entry(b, parallel)
        return b.text()

    def entry(self, parallel: bool) -> str:
        return self.entry_name if parallel or not self.parallel else self.serial_entry_name

    def loops(self) -> list[list[Stage]]:
        """The compiled loop nests: one per stage, or one per group of stages run row by row."""
        grouped = {i: g for g in self.plan.row_groups for i in g}
        out: list[list[Stage]] = []
        for stage in self.plan.stages:
            if not stage.space:
                continue
            group = grouped.get(stage.index)
            if group is None:
                out.append([stage])
            elif stage.index == group[0]:
                out.append([self.plan.stages[i] for i in group])
        return out

    @property
    def single_stage(self) -> bool:
        """One loop nest and nothing else: that loop's function is the entry point itself
        (one compiled function less to build, and to load from the cache in a new process)."""
        return len(self.loops()) == 1 and all(s.space for s in self.plan.stages)

    def emit_buffers(self, b: CodeBuilder) -> None:
        """Reduction buffers: the output itself for a result that is a reduction."""
        direct = {id(r): i for i, r in self.plan.direct.items()}
        for r in self.plan.reductions:
            buf = self.buffers[r]
            vdt = value_dtype(r)
            if id(r) in direct and r.kind not in (ir.RKind.ARGMIN, ir.RKind.ARGMAX):
                b.line(f"{buf} = o{direct[id(r)]}")
                b.line(f"{buf}.fill({identity(r.kind, vdt)})")
                continue
            b.line(f"{buf} = np.full({self.shape(r.dims)}, {identity(r.kind, vdt)}, "
                   f"np.{vdt.name})")
            if r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX):
                if id(r) in direct:
                    b.line(f"{buf}_i = o{direct[id(r)]}")
                    b.line(f"{buf}_i.fill(-1)")
                else:
                    b.line(f"{buf}_i = np.full({self.shape(r.dims)}, -1, np.int64)")

    @property
    def serial_entry_name(self) -> str | None:
        """The serial twin of the entry, for small sizes (None when only one is emitted)."""
        return f"{self.entry_name}_serial" if self.parallel else None

    def decorator(self, parallel: bool) -> str:
        # nogil: a call releases the GIL while it computes, so other Python threads run
        flags = [f"parallel={parallel}", "nogil=True", "cache=CACHE", 'error_model="numpy"']
        if self.fastmath:
            flags.append("fastmath=True")
        return f"@njit({', '.join(flags)})"

    def emit_entry(self, b: CodeBuilder, parallel: bool) -> None:
        """The kernel's compiled entry point: allocate buffers, run the stages in order.

        Stages over no dimension (scalar arithmetic on finished reductions) run inline here.
        """
        b.line(self.decorator(False))
        with b.block(f"def {self.entry(parallel)}({', '.join(self.signature())}):"):
            self.emit_buffers(b)
            args = ", ".join(self.signature() + self.buffer_args())
            first = {loop[0].index for loop in self.loops()}
            for stage in self.plan.stages:
                if stage.space:
                    if stage.index in first:
                        b.line(f"{self.stage_name(stage, parallel)}({args})")
                    continue
                b.line(f"# stage {stage.index}: scalar arithmetic (pass {stage.level})")
                body = _StageBody(self, stage, False)
                b.extend(body.lines_at[0])
                body.emit_innermost(b)
            b.line("return 0")

    # stages ---------------------------------------------------------------------------------
    def emit_stage(self, b: CodeBuilder, loop: list[Stage], parallel: bool) -> None:
        """One compiled loop nest: a stage, or stages that run one after another per row."""
        stage = loop[0]
        space = stage.space
        partial = [r for r in stage.reductions if space[0] in r.over]
        for st in loop:
            b.line(f"# stage {st.index}: pass {st.level} over ({', '.join(space)})")
        b.line(self.decorator(parallel))
        if self.single_stage:
            head = f"def {self.entry(parallel)}({', '.join(self.signature())}):"
        else:
            args = ", ".join(self.signature() + self.buffer_args())
            head = f"def {self.stage_name(stage, parallel)}({args}):"
        with b.block(head):
            if self.single_stage:
                self.emit_buffers(b)
            writes, reads = self.output_reuse(loop)
            bodies = [_StageBody(self, st, bool(partial), reads if st is loop[-1] else None,
                                 writes.get(st.index)) for st in loop]
            for body in bodies:
                b.extend(body.lines_at[0])
                body.emit_compensation_buffers(b)
            d0 = space[0]
            rng = "prange" if parallel else "range"
            if not partial:
                with b.block(f"for {self.loop(d0)} in {rng}({self.length(d0)}):"):
                    for body in bodies:
                        body.emit_depth(b, 1)
                b.line("return 0")
                return
            (body,) = bodies  # row groups never reduce the outer dimension
            inner = " * ".join(self.length(d) for d in space[1:]) or "1"
            b.line(f"_inner = {inner}")
            b.line(f"_rows = max(1, {BLOCK_ELEMENTS} // max(_inner, 1))")
            if any(r.dims for r in partial):
                b.line(f"_rows = max(_rows, ({self.length(d0)} + {MAX_PARTIAL_BLOCKS - 1}) "
                       f"// {MAX_PARTIAL_BLOCKS})")
            if any(r.dims and compensated(r) for r in partial):
                # a block's rows are added one by one into its partial (a column sum): keep
                # that chain short; the many partials are then added with compensation
                b.line(f"_rows = min(_rows, {SUM_CHUNK})")
            b.line(f"_nblk = ({self.length(d0)} + _rows - 1) // _rows")
            for r in partial:
                buf = self.buffers[r]
                shape = "(_nblk, " + ", ".join(self.length(d) for d in r.dims) + ")" \
                    if r.dims else "(_nblk,)"
                vdt = value_dtype(r)
                b.line(f"_p{buf} = np.full({shape}, {identity(r.kind, vdt)}, np.{vdt.name})")
                if r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX):
                    b.line(f"_p{buf}_i = np.full({shape}, -1, np.int64)")
                if r in body.spanning:
                    b.line(f"_p{buf}_c = np.zeros({shape}, np.{vdt.name})")
            with b.block(f"for _b in {rng}(_nblk):"):
                b.line("_lo = _b * _rows")
                b.line(f"_hi = min(_lo + _rows, {self.length(d0)})")
                # Views of this block, indexed from 0: Numba then knows the index is not
                # negative and emits no wraparound arithmetic on every load.
                for array, axes in body.sliced.items():
                    cut = ", ".join("_lo:_hi" if d == d0 else ":" for d in axes)
                    b.line(f"_s_{array} = {array}[{cut}]")
                body.emit_accumulators(b, 0, "init")
                rows = body.innermost_loop(b, "_j", "_hi - _lo") if len(space) == 1 \
                    else b.block("for _j in range(_hi - _lo):")
                with rows:
                    b.line(f"{self.loop(d0)} = _lo + _j")
                    body.emit_depth(b, 1)
                body.emit_accumulators(b, 0, "final")
            for r in partial:
                self.emit_partial_combine(b, r, rng, body.spanning)
            b.line("return 0")

    def output_reuse(self, loop: list[Stage]) -> tuple[dict, dict]:
        """In a row group, an expensive value that the last stage recomputes for its result
        (softmax's exp(x - max)) is stored into that result's element by the earlier stage
        and read back, not recomputed. The output never overlaps an input (the runtime gives
        the kernel a fresh array when the caller's out= does), so this is safe."""
        last = loop[-1]
        last_nodes = set(stage_nodes(last.roots))
        space = set(last.space)
        for i, _ in last.stores:
            res = self.kernel.results[i]
            if set(res.axes or ()) != space:
                continue
            target = f"o{i}[{self.index(res.axes)}]"
            for st in loop[:-1]:
                common = [n for n in stage_nodes(st.roots) if n in last_nodes
                          and set(n.dims) == space and n.dtype == res.dtype
                          and transcendental_count(n) > 0]
                if common:
                    best = max(common, key=transcendental_count)
                    return {st.index: {best: target}}, {best: target}
        return {}, {}

    def emit_partial_combine(self, b: CodeBuilder, r: ir.Reduce, rng: str,
                             spanning: list[ir.Reduce]) -> None:
        name = self.buffers[r]
        arg = r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX)
        if not r.dims and r.kind == ir.RKind.SUM and r.dtype.kind == "f":
            with b.block("if _nblk > 0:"):
                b.line(f"{name}[0] = _nbx_tree_sum(_p{name})")
            return
        depth = 0
        for j, d in enumerate(r.dims):
            b.line(f"for {self.loop(d)} in {rng if j == 0 else 'range'}({self.length(d)}):")
            depth += 1
            b.level += 1
        idx = self.index(r.dims)
        b.line(f"_acc = {identity(r.kind, value_dtype(r))}")
        if arg:
            b.line("_acc_i = -1")
        pidx = "_b" + ("" if not r.dims else ", " + idx)
        if compensated(r):  # many blocks: their partials are added with compensation
            part = f"_p{name}[{pidx}]"
            if r in spanning:
                part += f" - _p{name}_c[{pidx}]"
            b.line(f"_acc_c = {identity(r.kind, r.dtype)}")
            with b.block("for _b in range(_nblk):"):
                b.line(f"_acc, _acc_c = _nbx_kadd(_acc, _acc_c, {part})")
            b.line("_acc = _acc - _acc_c")
        else:
            with b.block("for _b in range(_nblk):"):
                b.extend(combine(r, "_acc", f"_p{name}[{pidx}]", "_acc_i",
                                 f"_p{name}_i[{pidx}]"))
        b.line(f"{name}[{idx}] = _acc")
        if arg:
            b.line(f"{name}_i[{idx}] = _acc_i")
        b.level -= depth


def transcendental_count(node: ir.Node) -> int:
    """How many libm calls computing `node` takes (within its stage)."""
    return sum(1 for n in stage_nodes([node]) if isinstance(n, ir.Apply)
               and n.op.info.rule in (Rule.FLOAT_FN, Rule.FLOAT_FN2))


class _StageBody:
    """The statements of one stage, bucketed by the loop depth where their inputs exist.

    `reads` maps nodes to an output element holding their value already (read, not computed);
    `writes` maps nodes to an output element to store their value in for a later stage.
    """

    def __init__(self, emitter: CpuEmitter, stage: Stage, blocked: bool,
                 reads: dict | None = None, writes: dict | None = None) -> None:
        self.reads = reads or {}
        self.writes = writes or {}
        self.e = emitter
        self.stage = stage
        self.space = stage.space
        self.blocked = blocked
        self.lines_at: dict[int, list[str]] = defaultdict(list)
        self.sliced: dict[str, tuple[str, ...]] = {}  # arrays read or written through views
        self.code: dict[ir.Node, str] = {}
        self.counter = 0
        # each reduction's running accumulator lives just inside its innermost kept loop
        self.acc_depth: dict[ir.Reduce, int] = {}
        for r in stage.reductions:
            kept = [self.space.index(d) for d in r.dims]
            self.acc_depth[r] = max(kept) + 1 if kept else 0
        # Float sums with long chains of additions (see SUM_CHUNK): `chunked` ones run through
        # the innermost loop (their accumulator lives outside it); `spanning` ones get one
        # addition per iteration of a reduced loop outside their accumulator, into a buffer
        # element, compensated through a second buffer (a middle dimension's sum). The rows of
        # a block are no such loop: blocks of partial sums are short (see emit_stage).
        self.chunked = [r for r in stage.reductions
                        if compensated(r) and self.acc_depth[r] < len(self.space)]
        self.spanning = [r for r in stage.reductions if compensated(r) and any(
            self.space.index(d) < self.acc_depth[r] for d in r.over
            if not (blocked and d == self.space[0]))]
        # the chunked innermost loop's variable, and its unsigned twin for indexing
        self.chunk_var = None
        if self.chunked:
            last = self.space[-1]
            self.chunk_var = "_j" if blocked and len(self.space) == 1 else emitter.loop(last)
        for node in stage_nodes(stage.roots, self.reads):
            self.code[node] = self.value(node)
        self.store_target = {i: self.element(f"o{i}", emitter.kernel.results[i].axes or ())
                             for i, _ in stage.stores}

    def loop_index(self, d: str, view: bool) -> str:
        """How an element access indexes dimension d: `_j` along a block's view, and in a
        chunked loop (whose start Numba cannot prove non-negative) the unsigned twin of its
        variable, so that Numba emits no negative-index wraparound on every load."""
        var = "_j" if view and self.blocked and d == self.space[0] else self.e.loop(d)
        return f"_u{var}" if var == self.chunk_var and d == self.space[-1] else var

    def element(self, array: str, axes: tuple[str, ...]) -> str:
        """`array[i_m, i_k]`, or in a blocked stage `_s_array[_j, i_k]` (its block's view)."""
        if self.blocked and self.space[0] in axes:
            self.sliced[array] = axes
            index = ", ".join(self.loop_index(d, True) for d in axes)
            return f"_s_{array}[{index}]"
        return f"{array}[{', '.join(self.loop_index(d, False) for d in axes) or '0'}]"

    def depth(self, node: ir.Node) -> int:
        return 1 + max(self.space.index(d) for d in node.dims) if node.dims else 0

    def temp(self, node: ir.Node, code: str) -> str:
        name = f"t{self.stage.index}_{self.counter}"  # unique in a function of several stages
        self.counter += 1
        self.lines_at[self.depth(node)].append(f"{name} = {code}")
        return name

    def value(self, node: ir.Node) -> str:
        """The code of a node's value; computed once into a temp at its loop depth."""
        e = self.e
        if node in self.reads:
            return self.temp(node, self.reads[node])
        if isinstance(node, ir.Const):
            return expression(node, [])
        if isinstance(node, ir.DimLen):
            return e.length(node.dim)
        if isinstance(node, ir.Index):
            return e.loop(node.dim)
        if isinstance(node, ir.Param):
            if node.axes is None:
                return e.param(node.name)
            return self.temp(node, self.element(e.param(node.name), node.axes))
        if isinstance(node, ir.Reduce):
            name = e.buffers[node]
            if node.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX):
                name += "_i"
            index = ", ".join(self.loop_index(d, False) for d in node.dims) or "0"
            return self.temp(node, f"{name}[{index}]")
        if isinstance(node, (ir.Cast, ir.Apply)):
            return self.temp(node, expression(node, [self.code[a] for a in ir.children(node)]))
        raise TypeError(node)  # pragma: no cover

    # emission -------------------------------------------------------------------------------
    def accumulators(self, depth: int) -> list[ir.Reduce]:
        return [r for r in self.stage.reductions if self.acc_depth[r] == depth]

    def emit_accumulators(self, b: CodeBuilder, depth: int, what: str) -> None:
        for r in self.accumulators(depth):
            acc = f"_a{self.e.buffers[r]}"
            arg = r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX)
            if what == "init":
                b.line(f"{acc} = {identity(r.kind, value_dtype(r))}")
                if arg:
                    b.line(f"{acc}_i = -1")
                if r in self.chunked:
                    b.line(f"{acc}_c = {identity(r.kind, r.dtype)}")
                continue
            name = self.e.buffers[r]
            if self.blocked and self.space[0] in r.over:
                idx = "_b" + ("" if not r.dims else ", " + self.e.index(r.dims))
                name, comp = f"_p{name}", f"_p{name}_c"
            else:
                idx = self.e.index(r.dims)
                comp = f"_c{name}"
            value = f"({acc} - {acc}_c)" if r in self.chunked else acc
            if r in self.spanning:
                b.line(f"{name}[{idx}], {comp}[{idx}] = _nbx_kadd({name}[{idx}], "
                       f"{comp}[{idx}], {value})")
            else:
                b.extend(combine(r, f"{name}[{idx}]", value, f"{name}_i[{idx}]", f"{acc}_i"))

    def emit_depth(self, b: CodeBuilder, depth: int) -> None:
        """Code inside loop `depth - 1`: its values, accumulators, the next loop or the body."""
        for line in self.lines_at[depth]:
            b.line(line)
        self.emit_accumulators(b, depth, "init")
        if depth < len(self.space):
            d = self.space[depth]
            loop = self.innermost_loop(b, self.e.loop(d), self.e.length(d)) \
                if depth == len(self.space) - 1 else \
                b.block(f"for {self.e.loop(d)} in range({self.e.length(d)}):")
            with loop:
                self.emit_depth(b, depth + 1)
        else:
            self.emit_innermost(b)
        self.emit_accumulators(b, depth, "final")
        if depth == 1:
            self.emit_compensation_fold(b)

    @contextmanager
    def innermost_loop(self, b: CodeBuilder, var: str, count: str):
        """`for var in range(count):`, in chunks of SUM_CHUNK when float sums run through it:

            for _q in range(0, n_k, 256):
                _kr0 = np.float64(0.0)
                for i_k in range(_q, min(_q + 256, n_k)):
                    ...
                    _kr0 = _nbx_radd(_kr0, t0_1)
                _ar0, _ar0_c = _nbx_kadd(_ar0, _ar0_c, _kr0)
        """
        if not self.chunked:
            with b.block(f"for {var} in range({count}):"):
                yield
            return
        with b.block(f"for _q in range(0, {count}, {SUM_CHUNK}):"):
            for r in self.chunked:
                b.line(f"_k{self.e.buffers[r]} = {identity(r.kind, r.dtype)}")
            with b.block(f"for {var} in range(_q, min(_q + {SUM_CHUNK}, {count})):"):
                b.line(f"_u{var} = np.uint64({var})")
                yield
            for r in self.chunked:
                acc = f"_a{self.e.buffers[r]}"
                b.line(f"{acc}, {acc}_c = _nbx_kadd({acc}, {acc}_c, _k{self.e.buffers[r]})")

    def row_spanning(self) -> list[ir.Reduce]:
        """Spanning sums whose buffer (not a block partial) gets one row's additions."""
        return [r for r in self.spanning if not (self.blocked and self.space[0] in r.over)]

    def emit_compensation_buffers(self, b: CodeBuilder) -> None:
        for r in self.row_spanning():
            b.line(f"_c{self.e.buffers[r]} = np.zeros({self.e.shape(r.dims)}, "
                   f"np.{r.dtype.name})")

    def emit_compensation_fold(self, b: CodeBuilder) -> None:
        """At the end of a row: its buffer elements are complete, apply their compensation
        (before any later stage of a row group reads them)."""
        for r in self.row_spanning():
            name = self.e.buffers[r]
            inner = [d for d in r.dims if d != self.space[0]]
            for d in inner:
                b.line(f"for {self.e.loop(d)} in range({self.e.length(d)}):")
                b.level += 1
            idx = self.e.index(r.dims)
            b.line(f"{name}[{idx}] = {name}[{idx}] - _c{name}[{idx}]")
            b.level -= len(inner)

    def emit_innermost(self, b: CodeBuilder) -> None:
        for r in self.stage.reductions:
            acc = f"_a{self.e.buffers[r]}"
            if r in self.chunked:
                acc = f"_k{self.e.buffers[r]}"
            index = self.e.loop(r.over[0]) if r.over else "0"
            b.extend(combine(r, acc, self.code[r.arg], f"{acc}_i", index))
        for node, target in self.writes.items():
            b.line(f"{target} = {self.code[node]}")
        for i, node in self.stage.stores:
            b.line(f"{self.store_target[i]} = {self.code[node]}")
