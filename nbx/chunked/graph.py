"""graph: a kernel call with Dask arrays -> a lazy Dask computation of its steps (split.py).

The arguments are aligned by dimension name: arrays that share a dimension get the same chunks
along it (dask.array.core.unify_chunks), NumPy arrays in the call are chunked to match, and
blocks of length 0 are dropped. Then each step of the kernel's chunk plan becomes one layer of
tasks, one task per block:

- a ReduceStep: `dask.array.blockwise` over the reduced expressions' dimensions, each task
  computing the block's partials (`BlockCall`), then `dask.array.reduction`'s tree, whose
  combine and aggregate tasks run nbx's combine kernels (combine.nbx) on a few blocks'
  partials at a time (`Combine`);
- a MapStep: `dask.array.blockwise` over the results' dimensions (their index strings are the
  kernel's dimension names), each task computing the results for its block.

The functions in the tasks pickle as the kernel (an nbx.Kernel pickles as its source and
options) and the step's place in the plan: a dask.distributed worker rebuilds the kernel from
its source and loads the step's compiled code from the compile cache.

Each step runs its serial loops on the block (compiled with parallel=False): Dask runs the
blocks in parallel, and Numba's threads inside each task would compete with Dask's.
"""

from __future__ import annotations

import math
import operator
import threading
from pathlib import Path

import numpy as np

from ..dsl import ir
from ..dsl.compile import DEVICE_TARGETS
from .split import Feed, Input, MapStep, ReduceStep, Stats, reduced_dims, split

_LOCK = threading.Lock()


def is_dask_array(value) -> bool:
    """A Dask array, recognised without importing Dask (a call with one imports it)."""
    return type(value).__module__.startswith("dask.") and hasattr(value, "__dask_graph__") \
        and hasattr(value, "chunks")


def call(kernel, args, kwargs):
    """A call of `kernel` (an nbx.Kernel) in which an argument is a Dask array: the results
    as Dask arrays (0-d for scalar results), nothing computed yet."""
    name = kernel.name
    if "out" in kwargs and not kernel._has_out_param:
        raise TypeError(f"{name}(): out= cannot be used with Dask arrays, which are never "
                        "written in place: use the returned arrays")
    if "stream" in kwargs and not kernel._has_stream_param:
        raise TypeError(f"{name}(): stream= cannot be used with Dask arrays: Dask runs the "
                        "blocks")
    args, kwargs, lazy = _stand_ins(kernel, args, kwargs)
    values, binding, lengths = kernel._bind(args, kwargs)   # checks, as for NumPy
    for i, v in lazy.items():
        values[i] = v
    kernel_ir = kernel._module._compiler.check_kernel(kernel._def, binding)
    kernel._check_empty(ir.empty_checks(kernel_ir), lengths)   # now, as a NumPy call would
    arrays, chunks = _align(kernel, values, lazy, lengths)
    target = _chunk_target(kernel, lazy.values())
    key = tuple(binding[tv].str for tv in kernel._typevars)
    over = reduced_dims(kernel_ir)
    whole = tuple(d for d in kernel_ir.dims if d in over and len(chunks[d]) == 1)
    plan = step_kernels(kernel, key, target, whole).plan

    reduced: dict[int, object] = {}   # reduction number -> its value, a Dask array
    results: list[object] = [None] * len(plan.kernel.results)
    for n, step in enumerate(plan.steps):
        out_dims = step.space if isinstance(step, ReduceStep) else step.axes
        pairs = []
        for inp in step.inputs:
            pairs += _feed(inp, values, arrays, reduced, plan, lengths, chunks, out_dims)
        task = BlockCall(kernel, key, target, whole, n)
        token = f"nbx-{name}-step{n}"
        if isinstance(step, ReduceStep):
            merge = Combine(kernel, key, target, whole, n)
            reduced.update(_reduction(step, plan, pairs, task, merge, token))
        else:
            for i, value in zip(step.results, _map(step, plan, pairs, task, token)):
                results[i] = value
    given = set()
    for i, g in plan.direct.items():
        axes = tuple(plan.kernel.results[i].axes or ())
        dims = plan.reductions[g].dims
        value = reduced[g] if axes == dims else \
            reduced[g].transpose([dims.index(d) for d in axes])
        if g in given:   # the same reduction returned again: its own array, as NumPy calls give
            value = value.map_blocks(np.copy, dtype=value.dtype)
        given.add(g)
        results[i] = value
    return tuple(results) if kernel._tuple_result else results[0]


def _align(kernel, values, lazy, lengths):
    """The array arguments as Dask arrays with one chunking per dimension name (NumPy ones
    cut to match), by parameter index; and that chunking, without blocks of length 0."""
    import dask.array as da
    from dask.array.core import unify_chunks

    params = kernel._params
    indices = [i for i in lazy if params[i].axes is not None]
    pairs = [x for i in indices for x in (lazy[i], params[i].axes)]
    chunks, aligned = unify_chunks(*pairs) if pairs else ({}, [])
    chunks = {d: _without_empty_blocks(c) for d, c in chunks.items()}
    arrays = dict(zip(indices, aligned))
    for i, v in enumerate(values):
        if isinstance(v, np.ndarray) and params[i].axes is not None:
            for d, n in zip(params[i].axes, v.shape):
                chunks.setdefault(d, (n,))
            arrays[i] = da.from_array(v, chunks=tuple(chunks[d] for d in params[i].axes))
    chunks = {d: chunks.get(d, (n,)) for d, n in lengths.items()}
    for i, a in arrays.items():
        want = tuple(chunks[d] for d in params[i].axes)
        if a.chunks != want:   # (rechunk keeps the blocks of an array with no elements)
            arrays[i] = a.rechunk(want) if a.size else da.zeros(a.shape, dtype=a.dtype, chunks=want)
    return arrays, chunks


def _reduction(step, plan, pairs, task, merge, token) -> dict[int, object]:
    """A ReduceStep's layers: the blocks' partials, then Dask's reduction tree over them; the
    values of the reductions it finishes (Dask arrays over their kept dimensions)."""
    import dask.array as da
    partials = da.blockwise(task, step.space, *pairs, align_arrays=False,
                            adjust_chunks={d: 1 for d in step.over},
                            meta=np.empty((0,) * len(step.space), object), token=token)
    gives = [(g, plan.reductions[g].dtype) for p in step.partials for g in p.gives]
    kept = len(step.space) - len(step.over)
    single = len(gives) == 1
    tree = da.reduction(partials, _identity, merge.final, combine=merge,
                        axis=tuple(step.space.index(d) for d in step.over), keepdims=False,
                        concatenate=False, dtype=gives[0][1] if single else object,
                        meta=np.empty((0,) * kept, gives[0][1] if single else object),
                        name=token.replace("step", "reduce"))
    if single:
        return {gives[0][0]: tree}
    return {g: da.map_blocks(operator.getitem, tree, j, dtype=dtype,
                             meta=np.empty((0,) * kept, dtype))
            for j, (g, dtype) in enumerate(gives)}


def _map(step, plan, pairs, task, token) -> list:
    """A MapStep's layer: its results (Dask arrays), on the device when a block it reads is
    (CuPy in, CuPy out), else NumPy."""
    import dask.array as da
    like = _device_meta([a for a in pairs[::2] if is_dask_array(a)])
    dtypes = [plan.kernel.results[i].dtype for i in step.results]
    metas = [_meta(like, len(step.axes), dt) for dt in dtypes]
    if len(dtypes) == 1:
        return [da.blockwise(task, step.axes, *pairs, align_arrays=False, token=token,
                             dtype=dtypes[0], meta=metas[0])]
    out = da.blockwise(task, step.axes, *pairs, align_arrays=False, token=token, dtype=object,
                       meta=np.empty((0,) * len(step.axes), object))
    return [da.map_blocks(operator.getitem, out, j, dtype=dt, meta=meta)
            for j, (dt, meta) in enumerate(zip(dtypes, metas))]


def _stand_ins(kernel, args, kwargs):
    """The call's arguments with each Dask array replaced by a NumPy array of its dtype and
    shape that takes no memory (a zero-stride view), for the calling convention's checks; and
    the Dask arrays by parameter index (those of a non-native byte order made native)."""
    lazy = {}

    def stand_in(index, v):
        if index is None or not is_dask_array(v):
            return v
        if any(math.isnan(n) for n in v.shape):
            raise ValueError(f"{kernel.name}(): {kernel._params[index].name} has chunks of "
                             "unknown size (call .compute_chunk_sizes() on it first)")
        if isinstance(getattr(v, "_meta", None), np.ma.MaskedArray):
            return v._meta   # refused as a NumPy masked array is, naming the parameter
        if not v.dtype.isnative:
            v = v.astype(v.dtype.newbyteorder("="))
        lazy[index] = v
        return np.broadcast_to(np.zeros((), v.dtype), v.shape)

    n = len(kernel._params)
    args = [stand_in(i if i < n else None, v) for i, v in enumerate(args)]
    kwargs = {k: stand_in(kernel._index.get(k), v) for k, v in kwargs.items()}
    return args, kwargs, lazy


def _without_empty_blocks(chunks: tuple) -> tuple:
    """Chunks without blocks of length 0 (a min has no value over an empty block); a
    dimension of length 0 keeps its one empty block."""
    kept = tuple(c for c in chunks if c)
    return kept or (0,)


def _chunk_target(kernel, lazy) -> str:
    """The target of the steps: "cuda" for a CUDA kernel, and for target="auto" when the Dask
    arrays hold device arrays (CuPy); else "cpu". A cuda-ufunc kernel's steps are cuda
    kernels, since they take parameters a ufunc cannot (block starts, partials)."""
    target = kernel.target
    if target == "auto":
        return "cuda" if _device_meta(lazy) is not None else "cpu"
    return "cuda" if target in DEVICE_TARGETS else "cpu"


def _device_meta(arrays):
    """The meta (an empty array of the blocks' kind) of the first Dask array whose blocks are
    device arrays (CuPy), else None."""
    from ..callconv import device_array_info
    for a in arrays:
        meta = getattr(a, "_meta", None)
        if meta is not None and device_array_info(meta) is not None:
            return meta
    return None


def _meta(like, ndim: int, dtype):
    if like is None:
        return np.empty((0,) * ndim, dtype)
    from dask.array.utils import meta_from_array
    return meta_from_array(like, ndim=ndim, dtype=dtype)


def _feed(inp, values, arrays, reduced, plan, lengths, chunks, out_dims) -> list:
    """The (argument, index) pair of dask.array.blockwise that feeds one step parameter."""
    from dask.layers import ArraySliceDep
    if inp.feed == Feed.ARGUMENT:
        a = arrays.get(inp.key)
        if a is not None:
            return [a, plan.kernel.params[inp.key].axes]
        v = values[inp.key]
        return [v, ()] if is_dask_array(v) else [v, None]   # a scalar (0-d Dask arrays too)
    if inp.feed == Feed.REDUCED:
        return [reduced[inp.key], plan.reductions[inp.key].dims]
    if inp.feed == Feed.LENGTH:
        return [lengths[inp.key], None]
    if inp.key in out_dims:   # START and EXTENT: each block is given its slice along it
        return [ArraySliceDep((chunks[inp.key],)), (inp.key,)]
    # a dimension reduced inside the step: one block, starting at 0, as long as the array
    return [0, None] if inp.feed == Feed.START else [_extent(lengths[inp.key]), None]


# the steps' compiled kernels, per process ---------------------------------------------------
class Steps:
    """A kernel's chunk plan for one binding, target and set of dimensions that come in one
    block (`whole`), with a compiled kernel per step."""

    def __init__(self, kernel, key: tuple, target: str, whole: tuple):
        from ..runtime import StepKernel
        binding = dict(zip(kernel._typevars, map(np.dtype, key)))
        kernel_ir = kernel._module._compiler.check_kernel(kernel._def, binding)
        self.plan = split(kernel_ir, frozenset(whole))
        options = dict(kernel._module._compiler.options, parallel=False)
        origin = kernel._module._compiler.filename
        self.kernels = [StepKernel(kernel.name, step.kernel, target, options, origin)
                        for step in self.plan.steps]


def step_kernels(kernel, key: tuple, target: str, whole: tuple) -> Steps:
    table = kernel.__dict__.setdefault("_chunk_steps", {})
    steps = table.get((key, target, whole))
    if steps is None:
        with _LOCK:
            steps = table.get((key, target, whole))
            if steps is None:
                steps = table[(key, target, whole)] = Steps(kernel, key, target, whole)
    return steps


_COMBINE = []


def combine_kernels():
    """The combine kernels (combine.nbx), compiled once per process."""
    if not _COMBINE:
        with _LOCK:
            if not _COMBINE:
                from ..dsl.compile import load
                _COMBINE.append(load(Path(__file__).with_name("combine.nbx"), parallel=False))
    return _COMBINE[0]


class _Task:
    """What a task calls: a step of a kernel's chunk plan, found again after pickling from
    the kernel (which pickles as its source and options) and the step's number."""

    def __init__(self, kernel, key: tuple, target: str, whole: tuple, step: int):
        self.kernel = kernel
        self.key = key
        self.target = target
        self.whole = whole
        self.step = step

    def __reduce__(self):
        return (type(self), (self.kernel, self.key, self.target, self.whole, self.step))

    def __dask_tokenize__(self):
        return (type(self).__name__, self.kernel.__dask_tokenize__(), self.key, self.target,
                self.whole, self.step)

    def _parts(self):
        steps = step_kernels(self.kernel, self.key, self.target, self.whole)
        return steps.plan, steps.plan.steps[self.step], steps.kernels[self.step]


class BlockCall(_Task):
    """One block of a step: its parameters from the blocks Dask gives, then the step's
    compiled kernel; a ReduceStep's partials come back as a dict of host arrays that keep
    the reduced dimensions with length 1, as dask.array.reduction wants."""

    def __call__(self, *blocks):
        plan, step, compiled = self._parts()
        values = [_value(inp.feed, b) for inp, b in zip(step.inputs, blocks)]
        out = compiled(*values)
        if isinstance(step, MapStep):
            return out[0] if len(out) == 1 else out
        lengths = _block_lengths(step, values)
        shape = tuple(1 if d in step.over else lengths[d] for d in step.space)
        count = math.prod(lengths[d] for d in step.over)
        parts = {}
        for j, p in enumerate(step.partials):
            first = np.reshape(_host(out[p.results[0]]), shape)
            if p.stats == Stats.VALUE:
                parts[j] = (first,)
            elif p.stats == Stats.ARG:
                start = values[step.inputs.index(Input(Feed.START, step.over[0]))]
                parts[j] = (first, np.reshape(_host(out[p.results[1]]), shape) + start)
            else:   # MOMENTS: count, sum, the mean as hi + lo, M2
                dev, sq = (np.reshape(_host(out[k]), shape) for k in p.results[1:])
                parts[j] = _moments(count, first, dev, sq)
        return parts


class Combine(_Task):
    """The combine (and, as `final`, aggregate) step of a ReduceStep's tree: the partials of a
    few neighbouring blocks, as nested lists (one level per reduced dimension), combined by
    the combine kernels into one partial; or into the finished values: an array, or a tuple
    of them when the step finishes several reductions."""

    def __call__(self, nested, axis, keepdims):
        return self._merge(nested, axis, keepdims, final=False)

    def final(self, nested, axis, keepdims):
        return self._merge(nested, axis, keepdims, final=True)

    def _merge(self, nested, axis, keepdims, final):
        plan, step, _ = self._parts()
        kernels = combine_kernels()
        axis = tuple(sorted(axis))
        parts = {}
        kept_shape = None
        for j, p in enumerate(step.partials):
            fields = [_join(nested, axis, lambda part, j=j, f=f: part[j][f])
                      for f in range(_FIELDS[p.stats])]
            whole = fields[0].shape
            kept_shape = tuple(n for i, n in enumerate(whole) if i not in axis)
            flat = [_flat(a, axis) for a in fields]
            if p.stats == Stats.VALUE:
                merged = (getattr(kernels, f"{p.kind.value}_k")(flat[0]),)
            elif p.stats == Stats.ARG:
                merged = getattr(kernels, f"{p.kind.value}_k")(*flat)
            else:
                merged = kernels.moments_k(*flat)
            parts[j] = tuple(np.reshape(m, kept_shape) for m in merged)
        if not final:
            shape = list(kept_shape)
            for i in axis:
                shape.insert(i, 1)
            return {j: tuple(np.reshape(m, shape) for m in ms) for j, ms in parts.items()}
        values = []
        for j, p in enumerate(step.partials):
            ms = parts[j]
            if p.stats == Stats.VALUE:
                values.append(ms[0])
            elif p.stats == Stats.ARG:
                values.append(ms[1])
            else:   # the sum and the sum of squared deviations
                values += [ms[1].astype(p.dtype), ms[4].astype(p.dtype)]
        values = [v[()] if v.ndim == 0 else v for v in values]   # NumPy scalars, as calls give
        return values[0] if len(values) == 1 else tuple(values)


_FIELDS = {Stats.VALUE: 1, Stats.ARG: 2, Stats.MOMENTS: 5}


def _moments(count: int, total, dev, sq) -> tuple:
    """A block's moments from its step's sums (f64): the sum, the sum of deviations `dev` and
    of squared deviations `sq` around mean = total / count. The mean is carried as hi + lo
    (hi that rounded mean, lo the correction dev / count), so that blocks' means far from 0
    still differ by exact amounts in Chan's formula; M2 is sq - dev**2 / count (the
    corrected two-pass algorithm). A block of no values has a sum 0, M2 0, and no mean."""
    n = np.full(total.shape, count, np.int64)
    if count == 0:
        zero = np.zeros(total.shape)
        return n, total, zero, zero, zero
    hi = total / count
    return n, total, hi, dev / count, sq - dev * dev / count


def _value(feed: Feed, block):
    """A step parameter's value from what Dask gives the task for it. An array with a
    dimension that the step reduces inside comes as a list of its blocks along it (there is
    one: such dimensions come in one block), not concatenated, which would copy it."""
    while isinstance(block, list):
        (block,) = block
    if feed == Feed.START:
        return block[0].start if isinstance(block, tuple) else block
    if feed == Feed.EXTENT and isinstance(block, tuple):
        return _extent(block[0].stop - block[0].start)
    return block


def _extent(n: int) -> np.ndarray:
    """An array of n elements that takes no memory: it gives a step a dimension's length."""
    return np.broadcast_to(np.zeros((), np.bool_), (n,))


def _block_lengths(step, values) -> dict[str, int]:
    lengths = {}
    for p, v in zip(step.kernel.params, values):
        if p.axes is not None:
            lengths.update(zip(p.axes, (int(n) for n in v.shape)))
    return lengths


def _host(a):
    """A partial result as a NumPy array (a CuPy one is copied from the device)."""
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, np.generic):
        return np.asarray(a)
    get = getattr(a, "get", None)
    return np.asarray(get() if get is not None else a)


def _join(nested, axis, pick, level=0) -> np.ndarray:
    """`pick` of each block's partials, given as nested lists (one level per reduced axis, in
    order), joined into one array along those axes."""
    if not isinstance(nested, list):
        return pick(nested)
    return np.concatenate([_join(x, axis, pick, level + 1) for x in nested], axis=axis[level])


def _flat(a: np.ndarray, axis) -> np.ndarray:
    """(kept values, blocks): the reduced axes last and flattened, the kept ones flattened."""
    rest = [i for i in range(a.ndim) if i not in axis]
    moved = np.transpose(a, rest + list(axis))
    m = math.prod(moved.shape[:len(rest)])
    return np.ascontiguousarray(moved.reshape(m, math.prod(moved.shape[len(rest):])))


def _identity(x, axis, keepdims):
    """dask.array.reduction's per-block function: the blocks are already partials."""
    return x
