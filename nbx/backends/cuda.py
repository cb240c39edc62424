"""emit (cuda): a fusion plan -> a module of @cuda.jit kernels and the launcher that runs them.

Each stage of the plan becomes kernels that run one after another on one stream:

- stores (element-wise results): one grid-stride kernel over the stage's flattened iteration
  space, every element-wise operation fused into it, STORE_LANES elements per round whose reads
  are all issued before any value is computed;
- reductions, grouped by the dimensions they keep (siblings share one pass):
  * the innermost dimension reduced, or nothing kept ("rows": sum(x), sum(A, over=k)): blocks
    per segment, a segment being one element of the kept dimensions. Each thread accumulates
    a strided share of the segment, REDUCE_LANES reads in flight per round (f64 sums
    compensated, f32 sums in f64), the block combines the threads' values (warp shuffles, then
    the warps' values; under the simulator, which has no shuffles, a shared-memory tree), and
    with several blocks per segment a finishing kernel combines their partials the same way;
  * the innermost dimension kept ("columns": sum(A, over=m)): a thread per kept element (so
    neighbouring threads read neighbouring memory) loops over a chunk of the reduced elements,
    REDUCE_LANES rows per round; with several chunks, a finishing kernel combines them, a
    thread per kept element;
- scalar stages (arithmetic on finished reductions): one thread.

These kernels are bound by the instructions they issue as much as by memory (ncu on an H200),
so the code keeps per-element work small: array subscripts are unsigned (no wraparound
arithmetic), loop-invariant values are computed before the loops.

Intermediates stay on the device; the order of every combination is fixed for given sizes and
device, so results are deterministic. Each kernel is wrapped in the runtime's GridKernel with
its argument types, so that launches skip Numba's dispatch. The launcher
`launch_<kernel>(call, args, outs, err, lengths)` only enqueues launches on the call's stream;
nbx/backends/cuda_runtime.py moves data and checks `err`.

    @cuda.jit(cache=CACHE)
    def _fma_stage0(p_a, p_b, p_c, o0, _err, n_n):
        _lin = cuda.grid(1)
        _step = cuda.gridsize(1)
        while _lin + 3 * _step < n_n:
            i_n_0 = _lin + 0 * _step
            t0_0_0 = p_a[np.uint64(i_n_0)]
            ...                          # the reads of 4 elements, then their values
            o0[np.uint64(i_n_3)] = t0_3_5
            _lin += 4 * _step
        while _lin < n_n:
            ...

    _fma_stage0 = GridKernel(_fma_stage0, THREADS, (('float64', 1), ..., ('int64', None)))

    def launch_fma(call, args, outs, err, lengths):
        ...
        _fma_stage0.launch(call, grid(_n), _base)
"""

from __future__ import annotations

import textwrap

import numpy as np

from ..dsl import ir
from ..dsl.fuse import Plan, Stage, stage_nodes
from ..dsl.ops import Op
from .base import CodeBuilder, Names, arith, expression, literal
from .cpu import PRELUDE, identity, value_dtype

# Threads per block (a power of two: the shared-memory tree halves it). Under the simulator,
# where every thread is a Python thread, blocks are smaller so tests can use several blocks.
THREADS_GPU = 256
THREADS_SIMULATOR = 16
MAX_PARTS = 1024        # most partials per segment (blocks or chunks), kept small for finishing
# Measured with benchmarks/gpu_variants.py on an H200 (2^27 elements, 32768 x 4096): 4 and 8
# store lanes reach the copy bandwidth (16: 0.92x); 16 reduce lanes take column sums from 0.75x
# to 0.95x of it (rows, dot: the same either way); 2 column waves are no better than 1.
STORE_LANES = 4         # elements per round of an element-wise kernel, read before any is stored
REDUCE_LANES = 16       # elements per round of a thread's reduction, read before any is folded
# A round is that many copies of the per-element code, and NVVM's compile time grows faster
# than a kernel's size: rounds of big per-element code take fewer elements (lanes x operations
# per element at most LANE_BUDGET, at least 2 lanes).
LANE_BUDGET = 64
COLUMN_WAVES = 1        # threads of a column reduction: waves of the device's resident threads

_NOT_ON_GPU = {"_nbx_radd", "_nbx_rmul", "_nbx_tree_sum"}  # CPU-only helpers of PRELUDE


# NumPy functions inside the CPU helpers, and what the GPU calls instead (HEADER's aliases)
_HELPER_CALLS = {"np.fmod(": "_fmod(", "np.floor(": "_floor(", "np.copysign(": "_copysign("}


def device_prelude() -> str:
    """The CPU prelude's NumPy-exact scalar helpers as CUDA device functions, and sign."""
    parts = [SIGN_HELPERS.strip()]
    for chunk in PRELUDE.strip().split("\n\n\n"):
        name = chunk.split("def ", 1)[1].split("(", 1)[0]
        if name in _NOT_ON_GPU:
            continue
        decorator, body = chunk.split("\n", 1)
        for call, alias in _HELPER_CALLS.items():
            body = body.replace(call, alias)
        parts.append("@cuda.jit(device=True, cache=CACHE)\n" + body)
    return "\n\n\n".join(parts)


def is_arg(r: ir.Reduce) -> bool:
    return r.kind in (ir.RKind.ARGMIN, ir.RKind.ARGMAX)


def float_sum(r: ir.Reduce) -> bool:
    """A float64 sum: each thread accumulates with Kahan's compensation."""
    return r.kind == ir.RKind.SUM and r.dtype.kind == "f" and r.dtype.itemsize == 8


def wide_sum(r: ir.Reduce) -> bool:
    """A float32 sum: each thread accumulates in float64, exact enough for LANGUAGE.md
    section 6 with fewer instructions per element than compensation (the kernels are bound by
    instructions issued, measured: ncu on an H200); the block and finishing combines then
    add float32 partials in a tree."""
    return r.kind == ir.RKind.SUM and r.dtype.kind == "f" and r.dtype.itemsize == 4


def np_type(dtype: np.dtype) -> str:
    return f"np.{np.dtype(dtype).name}" if np.dtype(dtype).kind != "b" else "np.bool_"


class CudaEmitter(Names):
    """Emits the whole generated module for one kernel under one type-variable binding."""

    def __init__(self, plan: Plan, *, fastmath: bool = False, cache: bool = True,
                 origin: str = "", suffix: str = "") -> None:
        self.plan = plan
        self.kernel = plan.kernel
        self.fastmath = fastmath
        self.cache = cache
        self.origin = origin
        self.suffix = suffix
        self.buffers = {r: f"r{i}" for i, r in enumerate(plan.reductions)}
        self.direct = {id(r): i for i, r in plan.direct.items()}
        self.kernels: list[tuple[str, list[str]]] = []   # (name, argument names) emitted
        # (suffix, dimensions): the loop variables of those dimensions carry the suffix, one
        # set per element of a round
        self.lane: tuple[str, tuple] = ("", ())

    # names ----------------------------------------------------------------------------------
    @property
    def launcher_name(self) -> str:
        return f"launch_{self.kernel.name}{self.suffix}"

    def kernel_name(self, stage: Stage, what: str = "") -> str:
        return f"_{self.kernel.name}{self.suffix}_stage{stage.index}{what}"

    def base_args(self) -> list[str]:
        """Arguments every kernel of the module takes, in this order."""
        k = self.kernel
        args = [self.param(p.name) for p in k.params]
        args += [f"o{i}" for i in range(len(k.results))]
        args += ["_err"] + [self.length(d) for d in k.dims]
        for r in self.plan.reductions:
            args.append(self.buffers[r])
            if is_arg(r):
                args.append(self.buffers[r] + "_i")
        return args

    def arg_type(self, arg: str) -> tuple[str, int | None]:
        """(dtype name, number of dimensions or None for a scalar) of a kernel argument, as the
        launcher passes it (a scalar result is a 1-element array)."""
        k = self.kernel
        params = {self.param(p.name): p for p in k.params}
        if arg in params:
            p = params[arg]
            return p.dtype.name, (len(p.axes) if p.axes is not None else None)
        if arg.startswith("o") and arg[1:].isdigit():
            r = k.results[int(arg[1:])]
            return r.dtype.name, len(r.axes or ()) or 1
        if arg == "_err":
            return "int64", 1
        for r in self.plan.reductions:
            buf = self.buffers[r]
            ndim = len(r.dims) or 1
            if arg in (buf, buf + "_i"):
                return ("int64" if arg.endswith("_i") else value_dtype(r).name), ndim
            if arg in (f"_p{buf}", f"_p{buf}_i"):
                return ("int64" if arg.endswith("_i") else value_dtype(r).name), 2
        return "int64", None   # lengths and launch sizes: _nseg, _parts, _nkept, ...

    def loop(self, dim: str) -> str:
        suffix, dims = self.lane
        return f"i_{dim}{suffix}" if dim in dims else f"i_{dim}"

    @staticmethod
    def lanes(most: int, roots, reds=()) -> int:
        """Elements per round for per-element code computing `roots` (and folding `reds`)."""
        size = sum(1 for n in stage_nodes(roots) if n.dims) + len(reds)
        lanes = most
        while lanes > 2 and lanes * size > LANE_BUDGET:
            lanes //= 2
        return lanes

    def decorator(self) -> str:
        return "@cuda.jit(cache=CACHE" + (", fastmath=True" if self.fastmath else "") + ")"

    def count(self, dims) -> str:
        return " * ".join(self.length(d) for d in dims) or "1"

    def index(self, dims) -> str:
        """An array subscript at the current element. Indices are never negative: as unsigned
        ones, Numba indexes without its wraparound arithmetic (three instructions less per
        dimension of every access)."""
        return ", ".join(f"np.uint64({self.loop(d)})" for d in dims) if dims else "0"

    # module ---------------------------------------------------------------------------------
    def module(self) -> str:
        k = self.kernel
        binding = ", ".join(f"{tv}={dt}" for tv, dt in k.binding)
        b = CodeBuilder()
        b.line(f"# Generated by nbx from {self.origin}: kernel {k.name}"
               + (f" ({binding})" if binding else "") + " for target cuda. Do not edit.")
        b.line(f"# Stages: {len(self.plan.stages)}. Needs numpy and numba-cuda.")
        b.extend(HEADER.format(cache=self.cache, gpu=THREADS_GPU,
                               sim=THREADS_SIMULATOR).splitlines())
        b.line(RUNTIME_IMPORT)
        b.line("")
        b.line("")
        b.extend(device_prelude().splitlines())
        return b.text() + self.functions()

    def functions(self) -> str:
        """The kernels and the launcher (without the module's header and helpers)."""
        b = CodeBuilder()
        launch = CodeBuilder()
        launch.level = 1
        for stage in self.plan.stages:
            launch.line(f"# stage {stage.index}: pass {stage.level} over "
                        f"({', '.join(stage.space)})")
            if not stage.space:
                self.emit_scalar_stage(b, launch, stage)
                continue
            groups: dict[tuple, list[ir.Reduce]] = {}
            for r in stage.reductions:
                groups.setdefault(r.dims, []).append(r)
            for j, (kept, reds) in enumerate(groups.items()):
                if stage.space[-1] in kept:
                    self.emit_columns(b, launch, stage, j, kept, reds)
                else:
                    self.emit_rows(b, launch, stage, j, kept, reds)
            if stage.stores:
                self.emit_stores(b, launch, stage)
        b.line("")
        b.line("")
        b.line("# the kernels as launched, with their argument types")
        for name, args in self.kernels:
            types = tuple(self.arg_type(a) for a in args)
            b.line(f"{name} = GridKernel({name}, THREADS, {types!r})")
        self.emit_launcher(b, launch)
        return b.text()

    def emit_launcher(self, b: CodeBuilder, launch: CodeBuilder) -> None:
        k = self.kernel
        b.line("")
        b.line("")
        with b.block(f"def {self.launcher_name}(call, args, outs, err, lengths):"):
            b.line('"""Enqueue the kernels on the call\'s stream (device arrays in, nothing '
                   'copied)."""')
            b.line(f"{', '.join(self.param(p.name) for p in k.params)}, = args"
                   if k.params else "pass")
            b.line(f"{', '.join(f'o{i}' for i in range(len(k.results)))}, = outs")
            b.line("_err = err")
            if k.dims:
                b.line(f"{', '.join(self.length(d) for d in k.dims)}, = lengths")
            for r in self.plan.reductions:
                buf = self.buffers[r]
                i = self.direct.get(id(r))
                shape = "(" + ", ".join(self.length(d) for d in r.dims) + ",)" if r.dims \
                    else "(1,)"
                if i is not None and not is_arg(r):
                    b.line(f"{buf} = o{i}")
                else:
                    b.line(f"{buf} = call.empty({shape}, {np_type(value_dtype(r))})")
                if is_arg(r):
                    b.line(f"{buf}_i = o{i}" if i is not None else
                           f"{buf}_i = call.empty({shape}, np.int64)")
            b.line(f"_base = ({', '.join(self.base_args())},)")
            b.extend(line[4:] for line in launch.lines)

    # values ---------------------------------------------------------------------------------
    def values(self, b: CodeBuilder, roots, tag: str, known: dict | None = None,
               invariant: bool = False, loads: bool = False) -> dict[ir.Node, str]:
        """Lines computing every node the roots need, at the current element, beyond those
        `known`; their code. With `invariant`, only the nodes over no dimension (scalars,
        finished full reductions): computed once, before a kernel's loop. With `loads`, only
        the element's reads of arrays."""
        code: dict[ir.Node, str] = dict(known or {})
        counter = len(code)
        for node in stage_nodes(roots):
            if node in code or (invariant and node.dims):
                continue
            if loads and not (isinstance(node, (ir.Param, ir.Reduce)) and node.dims):
                continue
            if isinstance(node, ir.Const):
                code[node] = expression(node, [], "cuda")
                continue
            if isinstance(node, ir.DimLen):
                code[node] = self.length(node.dim)
                continue
            if isinstance(node, ir.Index):
                code[node] = self.loop(node.dim)
                continue
            if isinstance(node, ir.Param) and node.axes is None:
                code[node] = self.param(node.name)
                continue
            if isinstance(node, ir.Param):
                value = f"{self.param(node.name)}[{self.index(node.axes)}]"
            elif isinstance(node, ir.Reduce):   # finished in an earlier stage
                name = self.buffers[node] + ("_i" if is_arg(node) else "")
                value = f"{name}[{self.index(node.dims)}]"
            else:
                value = expression(node, [code[a] for a in ir.children(node)], "cuda")
            name = f"t{tag}_{counter}"
            counter += 1
            b.line(f"{name} = {value}")
            code[node] = name
        return code

    def decompose(self, b: CodeBuilder, linear: str, dims) -> None:
        """Loop variables of `dims` from a linear index over them (the last varies fastest)."""
        if not dims:
            return
        if len(dims) == 1:
            b.line(f"{self.loop(dims[0])} = {linear}")
            return
        b.line(f"_r = {linear}")
        for d in reversed(dims[1:]):
            b.line(f"{self.loop(d)} = _r % {self.length(d)}")
            b.line(f"_r = _r // {self.length(d)}")
        b.line(f"{self.loop(dims[0])} = _r")

    # stages ---------------------------------------------------------------------------------
    def kernel_header(self, b: CodeBuilder, name: str, extra: list[str]) -> None:
        b.line("")
        b.line("")
        b.line(self.decorator())
        args = self.base_args() + extra
        b.line(f"def {name}({', '.join(args)}):")
        self.kernels.append((name, args))

    def emit_stores(self, b: CodeBuilder, launch: CodeBuilder, stage: Stage) -> None:
        """A grid-stride loop that takes STORE_LANES elements per round: first the array reads
        of all of them, so that they are in flight together (outputs never share memory with
        inputs: the runtime sees to it), then their values and stores; then the rest one by
        one."""
        name = self.kernel_name(stage)
        self.kernel_header(b, name, [])
        b.level += 1
        total = self.count(stage.space)
        roots = [v for _, v in stage.stores]
        known = self.values(b, roots, str(stage.index), invariant=True)
        b.line("_lin = cuda.grid(1)")
        b.line("_step = cuda.gridsize(1)")
        lanes = self.lanes(STORE_LANES, roots)
        with b.block(f"while _lin + {lanes - 1} * _step < {total}:"):
            reads = []
            for u in range(lanes):
                self.lane = (f"_{u}", stage.space)
                self.decompose(b, f"_lin + {u} * _step", stage.space)
                reads.append(self.values(b, roots, f"{stage.index}_{u}", known, loads=True))
            for u in range(lanes):
                self.lane = (f"_{u}", stage.space)
                self.emit_store_values(b, stage, f"{stage.index}_{u}", reads[u])
            self.lane = ("", ())
            b.line(f"_lin += {lanes} * _step")
        with b.block(f"while _lin < {total}:"):
            self.decompose(b, "_lin", stage.space)
            self.emit_store_values(b, stage, str(stage.index), known)
            b.line("_lin += _step")
        b.level -= 1
        launch.line(f"_n = {total}")
        with launch.block("if _n > 0:"):
            launch.line(f"{name}.launch(call, grid(_n), _base)")

    def emit_store_values(self, b: CodeBuilder, stage: Stage, tag: str, known) -> None:
        code = self.values(b, [v for _, v in stage.stores], tag, known)
        for i, node in stage.stores:
            axes = self.kernel.results[i].axes or ()
            b.line(f"o{i}[{self.index(axes)}] = {code[node]}")

    def emit_scalar_stage(self, b: CodeBuilder, launch: CodeBuilder, stage: Stage) -> None:
        name = self.kernel_name(stage)
        self.kernel_header(b, name, [])
        b.level += 1
        with b.block("if cuda.grid(1) == 0:"):
            code = self.values(b, [v for _, v in stage.stores], str(stage.index))
            for i, node in stage.stores:
                b.line(f"o{i}[0] = {code[node]}")
        b.level -= 1
        launch.line(f"{name}.launch(call, 1, _base)")

    # reductions -----------------------------------------------------------------------------
    def partial_args(self, reds) -> list[str]:
        out = []
        for r in reds:
            out.append(f"_p{self.buffers[r]}")
            if is_arg(r):
                out.append(f"_p{self.buffers[r]}_i")
        return out

    def emit_partials(self, launch: CodeBuilder, reds, shape: str, needed: str) -> None:
        """Partial buffers in the launcher: real ones when `needed`, else a 1x1 stand-in."""
        for r in reds:
            p = f"_p{self.buffers[r]}"
            vdt = np_type(value_dtype(r))
            launch.line(f"{p} = call.empty({shape}, {vdt}) if {needed} else stand_in({vdt})")
            if is_arg(r):
                launch.line(f"{p}_i = call.empty({shape}, np.int64) if {needed} else "
                            "stand_in(np.int64)")

    def init_acc(self, b: CodeBuilder, reds) -> None:
        for r in reds:
            acc = f"_a{self.buffers[r]}"
            b.line(f"{acc} = np.float64(0.0)" if wide_sum(r)
                   else f"{acc} = {identity(r.kind, value_dtype(r))}")
            if float_sum(r):
                b.line(f"{acc}_c = {literal(0, r.dtype)}")
            if is_arg(r):
                b.line(f"{acc}_i = -1")

    def fold(self, b: CodeBuilder, r: ir.Reduce, value: str, value_i: str = "") -> None:
        """Fold one value (and its index) into the thread's accumulator of `r`."""
        acc = f"_a{self.buffers[r]}"
        if float_sum(r):
            b.line(f"{acc}, {acc}_c = _nbx_kadd({acc}, {acc}_c, {value})")
        elif wide_sum(r):
            b.line(f"{acc} = {acc} + np.float64({value})")
        else:
            b.extend(merge(r, acc, value, f"{acc}_i", value_i))

    def acc_value(self, r: ir.Reduce) -> str:
        acc = f"_a{self.buffers[r]}"
        if wide_sum(r):
            return f"np.float32({acc})"
        return f"({acc} - {acc}_c)" if float_sum(r) else acc

    def write(self, b: CodeBuilder, reds, source, target) -> None:
        """Store each reduction's value (and index): source(r, suffix) -> target(r, suffix)."""
        for r in reds:
            b.line(f"{target(r, '')} = {source(r, '')}")
            if is_arg(r):
                b.line(f"{target(r, '_i')} = {source(r, '_i')}")

    def emit_block_combine(self, b: CodeBuilder, reds) -> None:
        """Every thread's accumulator combined: element 0 of the shared arrays holds the
        block's value, for thread 0. On the GPU, lanes combine in registers through warp
        shuffles, then thread 0 the warps' values (two barriers); under the simulator, which
        has no shuffles, a shared-memory tree."""
        with b.block("if WARP_SHUFFLE:"):
            self.emit_warp_combine(b, reds)
        with b.block("else:"):
            self.emit_tree_combine(b, reds)

    def emit_warp_combine(self, b: CodeBuilder, reds) -> None:
        for r in reds:
            w, acc = f"_w{self.buffers[r]}", f"_a{self.buffers[r]}"
            work, _, _ = shuffle_types(r)
            value = f"1 if {acc} else 0" if r.kind in (ir.RKind.ANY, ir.RKind.ALL) \
                else self.acc_value(r)
            b.line(f"{w} = {work}({value})")
            if is_arg(r):
                b.line(f"{w}_i = {acc}_i")
        b.line("_o = 16")
        with b.block("while _o > 0:"):
            for r in reds:
                w, v = f"_w{self.buffers[r]}", f"_v{self.buffers[r]}"
                work, to, back = shuffle_types(r)
                b.line(f"{v} = {back}(cuda.shfl_down_sync(0xFFFFFFFF, {to}({w}), _o))")
                if is_arg(r):
                    b.line(f"{v}_i = cuda.shfl_down_sync(0xFFFFFFFF, {w}_i, _o)")
                b.extend(self.merge_work(r, w, v))
            b.line("_o //= 2")
        with b.block("if _t % 32 == 0:"):
            for r in reds:
                w, sh = f"_w{self.buffers[r]}", f"_sh{self.buffers[r]}"
                b.line(f"{sh}[_t // 32] = {shared_type(r)}({w})")
                if is_arg(r):
                    b.line(f"{sh}_i[_t // 32] = {w}_i")
        b.line("cuda.syncthreads()")
        with b.block("if _t == 0:"):
            for r in reds:
                w, v, sh = (f"_w{self.buffers[r]}", f"_v{self.buffers[r]}",
                            f"_sh{self.buffers[r]}")
                work, _, _ = shuffle_types(r)
                b.line(f"{w} = {work}({sh}[0])")
                if is_arg(r):
                    b.line(f"{w}_i = {sh}_i[0]")
                with b.block("for _k in range(1, THREADS // 32):"):
                    b.line(f"{v} = {work}({sh}[_k])")
                    if is_arg(r):
                        b.line(f"{v}_i = {sh}_i[_k]")
                    b.extend(self.merge_work(r, w, v))
                b.line(f"{sh}[0] = {shared_type(r)}({w})")
                if is_arg(r):
                    b.line(f"{sh}_i[0] = {w}_i")

    @staticmethod
    def merge_work(r: ir.Reduce, w: str, v: str) -> list[str]:
        """Fold v into w, both in the reduction's working type (any/all: 0 or 1)."""
        if r.kind == ir.RKind.ANY:
            return [f"{w} = max({w}, {v})"]
        if r.kind == ir.RKind.ALL:
            return [f"{w} = min({w}, {v})"]
        return merge(r, w, v, f"{w}_i", f"{v}_i")

    def emit_tree_combine(self, b: CodeBuilder, reds) -> None:
        for r in reds:
            sh = f"_sh{self.buffers[r]}"
            acc = f"_a{self.buffers[r]}"
            if r.kind in (ir.RKind.ANY, ir.RKind.ALL):
                b.line(f"{sh}[_t] = 1 if {acc} else 0")
            else:
                b.line(f"{sh}[_t] = {self.acc_value(r)}")
            if is_arg(r):
                b.line(f"{sh}_i[_t] = {acc}_i")
        b.line("cuda.syncthreads()")
        b.line("_s = THREADS // 2")
        with b.block("while _s > 0:"):
            with b.block("if _t < _s:"):
                for r in reds:
                    sh = f"_sh{self.buffers[r]}"
                    if r.kind == ir.RKind.ANY:
                        b.line(f"{sh}[_t] = max({sh}[_t], {sh}[_t + _s])")
                    elif r.kind == ir.RKind.ALL:
                        b.line(f"{sh}[_t] = min({sh}[_t], {sh}[_t + _s])")
                    else:
                        b.line(f"_v = {sh}[_t]")
                        if is_arg(r):
                            b.line(f"_v_i = {sh}_i[_t]")
                        b.extend(merge(r, "_v", f"{sh}[_t + _s]", "_v_i", f"{sh}_i[_t + _s]"))
                        b.line(f"{sh}[_t] = _v")
                        if is_arg(r):
                            b.line(f"{sh}_i[_t] = _v_i")
            b.line("cuda.syncthreads()")
            b.line("_s //= 2")

    def shared_value(self, r: ir.Reduce, suffix: str) -> str:
        sh = f"_sh{self.buffers[r]}{suffix}[0]"
        return f"{sh} != 0" if r.kind in (ir.RKind.ANY, ir.RKind.ALL) and not suffix else sh

    def emit_rows(self, b: CodeBuilder, launch: CodeBuilder, stage: Stage, j: int, kept,
                  reds) -> None:
        """Blocks per segment: see the module's docstring."""
        over = tuple(d for d in stage.space if d not in kept)
        name = self.kernel_name(stage, f"_g{j}")
        lanes = self.lanes(REDUCE_LANES, [r.arg for r in reds], reds)
        extra = ["_nseg", "_parts"] + self.partial_args(reds)
        for what in ("main", "finish"):
            kname = name if what == "main" else name + "_finish"
            self.kernel_header(b, kname, extra)
            b.level += 1
            b.line("_t = cuda.threadIdx.x")
            for r in reds:
                sdt = "np.int8" if r.kind in (ir.RKind.ANY, ir.RKind.ALL) else \
                    np_type(value_dtype(r))
                b.line(f"_sh{self.buffers[r]} = cuda.shared.array(THREADS, {sdt})")
                if is_arg(r):
                    b.line(f"_sh{self.buffers[r]}_i = cuda.shared.array(THREADS, np.int64)")
            if what == "main":
                known = self.values(b, [r.arg for r in reds], f"{stage.index}_{j}",
                                    invariant=True)
            count = self.count(over) if what == "main" else "_parts"
            segments = "_nseg * _parts" if what == "main" else "_nseg"
            with b.block(f"for _g in range(cuda.blockIdx.x, {segments}, cuda.gridDim.x):"):
                if what == "main":
                    b.line("_seg = _g // _parts")
                    b.line("_part = _g - _seg * _parts")
                    first, step = "_part * THREADS + _t", "_parts * THREADS"
                else:   # one block per segment combines its partials
                    b.line("_seg = _g")
                    first, step = "_t", "THREADS"
                self.decompose(b, "_seg", kept)
                self.init_acc(b, reds)
                if what == "main":
                    # REDUCE_LANES elements per round, their reads first, so that a thread has
                    # them all in flight; then the rest one by one. The order of accumulation
                    # is the same either way.
                    b.line(f"_j = {first}")
                    with b.block(f"while _j + {lanes - 1} * ({step}) < {count}:"):
                        self.emit_row_round(b, stage, j, over, reds, known,
                                            [f"_j + {u} * ({step})" for u in range(lanes)])
                        b.line(f"_j += {lanes} * ({step})")
                    with b.block(f"while _j < {count}:"):
                        self.emit_row_element(b, stage, j, over, reds, known, "_j")
                        b.line(f"_j += {step}")
                else:
                    with b.block(f"for _j in range({first}, {count}, {step}):"):
                        for r in reds:
                            p = f"_p{self.buffers[r]}"
                            self.fold(b, r, f"{p}[_seg, _j]", f"{p}_i[_seg, _j]"
                                      if is_arg(r) else "")
                self.emit_block_combine(b, reds)
                with b.block("if _t == 0:"):
                    target = self.target(kept)
                    if what == "main":
                        with b.block("if _parts == 1:"):
                            self.write(b, reds, self.shared_value, target)
                        with b.block("else:"):
                            self.write(b, reds, self.shared_value,
                                       lambda r, s: f"_p{self.buffers[r]}{s}[_seg, _part]")
                    else:
                        self.write(b, reds, self.shared_value, target)
                b.line("cuda.syncthreads()")
            b.level -= 1
        launch.line(f"_nseg = {self.count(kept)}")
        launch.line(f"_q = {self.count(over)}")
        launch.line(f"_parts = row_parts(_nseg, _q, {lanes})")
        self.emit_partials(launch, reds, "(_nseg, _parts)", "_parts > 1")
        args = ", ".join(["_nseg", "_parts"] + self.partial_args(reds))
        with launch.block("if _nseg > 0:"):
            launch.line(f"{name}.launch(call, blocks(_nseg * _parts), _base + ({args},))")
            with launch.block("if _parts > 1:"):
                launch.line(f"{name}_finish.launch(call, blocks(_nseg), _base + ({args},))")

    def emit_row_round(self, b: CodeBuilder, stage: Stage, j: int, over, reds, known,
                       linears: list[str]) -> None:
        """Fold the elements at `linears` in order, after reading all of them."""
        roots = [r.arg for r in reds]
        reads = []
        for u, linear in enumerate(linears):
            self.lane = (f"_{u}", over)
            self.decompose(b, linear, over)
            reads.append(self.values(b, roots, f"{stage.index}_{j}_{u}", known, loads=True))
        for u in range(len(linears)):
            self.lane = (f"_{u}", over)
            code = self.values(b, roots, f"{stage.index}_{j}_{u}", reads[u])
            for r in reds:
                self.fold(b, r, code[r.arg], self.loop(r.over[0]) if is_arg(r) else "")
        self.lane = ("", ())

    def emit_row_element(self, b: CodeBuilder, stage: Stage, j: int, over, reds, known,
                         linear: str) -> None:
        """Fold the element at `linear` (over the reduced dimensions) into the accumulators."""
        b.line(f"_e = {linear}")
        self.decompose(b, "_e", over)
        code = self.values(b, [r.arg for r in reds], f"{stage.index}_{j}", known)
        for r in reds:
            self.fold(b, r, code[r.arg], self.loop(r.over[0]) if is_arg(r) else "")

    def target(self, kept):
        return lambda r, s: f"{self.buffers[r]}{s}[{self.index(kept)}]"

    def emit_columns(self, b: CodeBuilder, launch: CodeBuilder, stage: Stage, j: int, kept,
                     reds) -> None:
        """A thread per kept element: see the module's docstring."""
        over = tuple(d for d in stage.space if d not in kept)
        name = self.kernel_name(stage, f"_g{j}")
        lanes = self.lanes(REDUCE_LANES, [r.arg for r in reds], reds)
        extra = ["_nkept", "_chunks", "_per"] + self.partial_args(reds)
        for what in ("main", "finish"):
            kname = name if what == "main" else name + "_finish"
            self.kernel_header(b, kname, extra)
            b.level += 1
            known = self.values(b, [r.arg for r in reds], f"{stage.index}_{j}",
                                invariant=True) if what == "main" else {}
            total = "_nkept * _chunks" if what == "main" else "_nkept"
            with b.block(f"for _g in range(cuda.grid(1), {total}, cuda.gridsize(1)):"):
                b.line("_chunk = _g // _nkept")
                b.line("_kept = _g - _chunk * _nkept")
                self.decompose(b, "_kept", kept)
                self.init_acc(b, reds)
                if what == "main":
                    b.line("_lo = _chunk * _per")
                    b.line(f"_hi = min(_lo + _per, {self.count(over)})")
                    b.line("_j = _lo")
                    with b.block(f"while _j + {lanes - 1} < _hi:"):  # as in emit_rows
                        self.emit_row_round(b, stage, j, over, reds, known,
                                            [f"_j + {u}" for u in range(lanes)])
                        b.line(f"_j += {lanes}")
                    with b.block("while _j < _hi:"):
                        self.emit_row_element(b, stage, j, over, reds, known, "_j")
                        b.line("_j += 1")
                else:
                    with b.block("for _c in range(_chunks):"):
                        for r in reds:
                            p = f"_p{self.buffers[r]}"
                            self.fold(b, r, f"{p}[_c, _kept]", f"{p}_i[_c, _kept]"
                                      if is_arg(r) else "")

                def acc(r, s):
                    return f"_a{self.buffers[r]}_i" if s else self.acc_value(r)
                if what == "main":
                    with b.block("if _chunks == 1:"):
                        self.write(b, reds, acc, self.target(kept))
                    with b.block("else:"):
                        self.write(b, reds, acc,
                                   lambda r, s: f"_p{self.buffers[r]}{s}[_chunk, _kept]")
                else:
                    self.write(b, reds, acc, self.target(kept))
            b.level -= 1
        launch.line(f"_nkept = {self.count(kept)}")
        launch.line(f"_q = {self.count(over)}")
        launch.line("_chunks, _per = column_chunks(_nkept, _q)")
        self.emit_partials(launch, reds, "(_chunks, _nkept)", "_chunks > 1")
        args = ", ".join(["_nkept", "_chunks", "_per"] + self.partial_args(reds))
        with launch.block("if _nkept > 0:"):
            launch.line(f"{name}.launch(call, grid(_nkept * _chunks), _base + ({args},))")
            with launch.block("if _chunks > 1:"):
                launch.line(f"{name}_finish.launch(call, grid(_nkept), _base + ({args},))")


def shared_type(r: ir.Reduce) -> str:
    """The dtype of a reduction's shared-memory values (any/all: int8 0 or 1)."""
    return "np.int8" if r.kind in (ir.RKind.ANY, ir.RKind.ALL) else np_type(value_dtype(r))


def shuffle_types(r: ir.Reduce) -> tuple[str, str, str]:
    """(working type, type shuffled as, back to the working type) of a reduction's values in
    a warp combine: warp shuffles move 32- and 64-bit ints and floats only; narrow values
    work as int32 (their order and sums are the same), uint32 shuffles as int64, and uint64
    as int64 bit for bit."""
    if r.kind in (ir.RKind.ANY, ir.RKind.ALL):
        return "np.int32", "", ""
    dtype = value_dtype(r)
    if dtype.kind == "b" or dtype.itemsize < 4:
        return "np.int32", "", ""
    if dtype.kind == "u":
        return np_type(dtype), "np.int64", np_type(dtype)
    return np_type(dtype), "", ""


def merge(r: ir.Reduce, target: str, value: str, target_i: str = "", value_i: str = ""
          ) -> list[str]:
    """Statements that fold `value` into `target` for the order-free combinations (tree and
    strided accumulation): min/max propagate NaN; argmin/argmax keep the extreme with the
    smallest index, a NaN being the extreme (index -1: no value yet)."""
    k = r.kind
    floating = value_dtype(r).kind == "f"
    if k == ir.RKind.SUM:
        return [f"{target} = {arith(Op.ADD, target, value, r.dtype)}"]
    if k == ir.RKind.PROD:
        return [f"{target} = {arith(Op.MUL, target, value, r.dtype)}"]
    if k == ir.RKind.ANY:
        return [f"{target} = {target} or {value}"]
    if k == ir.RKind.ALL:
        return [f"{target} = {target} and {value}"]
    cmp = "<" if k in (ir.RKind.MIN, ir.RKind.ARGMIN) else ">"
    if k in (ir.RKind.MIN, ir.RKind.MAX):
        nan = f" or {value} != {value}" if floating else ""
        return [f"_b = {value}", f"if _b {cmp} {target}{nan}:", f"    {target} = _b"]
    if floating:
        better = (f"(_b != _b and ({target} == {target} or _b_i < {target_i})) or "
                  f"({target} == {target} and _b == _b and (_b {cmp} {target} or "
                  f"(_b == {target} and _b_i < {target_i})))")
    else:
        better = f"_b {cmp} {target} or (_b == {target} and _b_i < {target_i})"
    return [f"_b = {value}", f"_b_i = {value_i}",
            f"if _b_i >= 0 and ({target_i} < 0 or {better}):",
            f"    {target} = _b",
            f"    {target_i} = _b_i"]


SIGN_HELPERS = '''
@cuda.jit(device=True, cache=CACHE)
def _nbx_sign(x):
    # NumPy's sign: -1, 0 or 1 in x's kind; of a float 0 never -0, and NaN for NaN
    # (x - x + 1 would be NaN for an infinite x; the caller casts to the result's dtype)
    if x > 0:
        return 1
    if x < 0:
        return -1
    return x + 0
'''

HEADER_TEMPLATE = '''import math

import numpy as np
from numba import config, cuda

CACHE = {cache!r}
{aliases}
# threads per block: a power of two (the block's combining tree halves it)
THREADS = {sim} if config.ENABLE_CUDASIM else {gpu}
# warp shuffles in block reductions (the simulator has none: it combines in shared memory)
WARP_SHUFFLE = not config.ENABLE_CUDASIM
_WAVE = None


def _wave():
    """Blocks that fill the device once (the simulator: a few, each a set of Python threads)."""
    global _WAVE
    if _WAVE is None:
        if config.ENABLE_CUDASIM:
            _WAVE = 4
        else:
            sms = getattr(cuda.get_current_device(), "MULTIPROCESSOR_COUNT", None) or 16
            _WAVE = sms * (2048 // THREADS)
    return _WAVE


def grid(n):
    """Blocks for a grid-stride loop over n items: a thread per item up to 16 waves of the
    device (more resident work hides the latency of expensive element functions)."""
    return max(1, min((n + THREADS - 1) // THREADS, 16 * (_WAVE or _wave())))


def blocks(n):
    """Blocks for a loop of n block-sized items (segments)."""
    return max(1, min(n, _wave() * 4))


def row_parts(nseg, q, lanes):
    """Blocks per segment: enough blocks to fill the device, each thread reading a whole
    round of `lanes` elements where there are that many, at most {max_parts}."""
    if nseg == 0 or q == 0:
        return 1
    fill = (_wave() + nseg - 1) // nseg
    work = (q + lanes * THREADS - 1) // (lanes * THREADS)
    return max(1, min(fill, work, {max_parts}))


def column_chunks(nkept, q):
    """Chunks of the reduced elements per kept element, and their length (at least 16):
    enough for {column_waves} waves of threads."""
    if nkept == 0 or q == 0:
        return 1, q
    fill = ({column_waves} * _wave() * THREADS + nkept - 1) // nkept
    chunks = max(1, min(fill, (q + 15) // 16, {max_parts}))
    per = (q + chunks - 1) // chunks
    return (q + per - 1) // per, per

'''

# The float functions kernels call (the op table's CUDA spellings). On the GPU they are CUDA's
# (libdevice, through math); under the simulator and in the CPU twin of a cuda-ufunc, NumPy's:
# Python's math raises where IEEE arithmetic gives inf or NaN.
NUMPY_ALIASES = """\
(_sqrt, _exp, _exp2, _expm1, _log, _log2, _log10, _log1p, _sin, _cos, _tan, _asin, _acos,
 _atan, _sinh, _cosh, _tanh, _asinh, _acosh, _atanh, _floor, _ceil, _trunc, _isnan, _isinf,
 _isfinite, _atan2, _hypot, _copysign, _fmod) = (
    np.sqrt, np.exp, np.exp2, np.expm1, np.log, np.log2, np.log10, np.log1p, np.sin, np.cos,
    np.tan, np.arcsin, np.arccos, np.arctan, np.sinh, np.cosh, np.tanh, np.arcsinh,
    np.arccosh, np.arctanh, np.floor, np.ceil, np.trunc, np.isnan, np.isinf, np.isfinite,
    np.arctan2, np.hypot, np.copysign, np.fmod)
_cbrt = _cbrtf = np.cbrt
_rint = _rintf = np.rint
_erf, _erfc = math.erf, math.erfc
"""
GPU_ALIASES = """\
from numba.cuda import libdevice

(_sqrt, _exp, _exp2, _expm1, _log, _log2, _log10, _log1p, _sin, _cos, _tan, _asin, _acos,
 _atan, _sinh, _cosh, _tanh, _asinh, _acosh, _atanh, _floor, _ceil, _trunc, _isnan, _isinf,
 _isfinite, _atan2, _hypot, _copysign, _fmod, _erf, _erfc) = (
    math.sqrt, math.exp, math.exp2, math.expm1, math.log, math.log2, math.log10,
    math.log1p, math.sin, math.cos, math.tan, math.asin, math.acos, math.atan, math.sinh,
    math.cosh, math.tanh, math.asinh, math.acosh, math.atanh, math.floor, math.ceil,
    math.trunc, math.isnan, math.isinf, math.isfinite, math.atan2, math.hypot,
    math.copysign, math.fmod, math.erf, math.erfc)
_cbrt, _cbrtf = libdevice.cbrt, libdevice.cbrtf
_rint, _rintf = libdevice.rint, libdevice.rintf
"""
# What modules of nbx's own import from the runtime (standalone modules hold a copy of it).
RUNTIME_IMPORT = "from nbx.backends.cuda_runtime import GridKernel, stand_in"



def header_source() -> str:
    """The module header, from the constants above (benchmarks/gpu_variants.py changes them
    and builds it again)."""
    return (HEADER_TEMPLATE.replace("{max_parts}", str(MAX_PARTS))
            .replace("{column_waves}", str(COLUMN_WAVES))
            .replace("{aliases}", "if config.ENABLE_CUDASIM:\n"
                     + textwrap.indent(NUMPY_ALIASES, "    ") + "else:\n"
                     + textwrap.indent(GPU_ALIASES, "    ").rstrip("\n")))


HEADER = header_source()
