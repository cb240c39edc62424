"""nbxc bench FILE -k KERNEL --size n=...: time a kernel against the NumPy reference interpreter.

Per target: compile (load + the first specialisation), the first call (Numba compiles or reads
its cache here) and steady-state calls; the reference interpreter is timed the same way on the
same inputs, and every result is checked against it (a benchmark of wrong results is worthless).
Out: a table (rich) or JSON on stdout; progress on stderr when it is a terminal.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import numpy as np

from .. import load
from ..dsl.types import NAMES
from .common import add_options, add_target, options, whole_number
from .run import add_input_options, add_kernel_option, build_inputs, results_tuple, select_kernel

RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-3}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="time a kernel against the NumPy reference interpreter",
        description="Time a kernel per target: compile (load + first specialisation; the "
        "cache column says whether Numba's on-disk cache was warm, --no-cache forces a cold "
        "compile), the first call and the median and minimum of R steady-state calls, next to "
        "the NumPy reference interpreter on the same inputs. Results are checked against the "
        "reference (floats with np.allclose, rtol 1e-6 for f64 and 1e-3 where f32 is "
        "involved, scaled to the largest reference value; integers and bools exactly): a "
        "mismatch is exit 1. GB/s counts the bytes of every array input and output once.")
    p.add_argument("file", metavar="FILE", help="the .nbx file")
    add_kernel_option(p)
    add_input_options(p)
    add_target(p, many=True)
    p.add_argument("--repeat", type=whole_number(1), default=20, metavar="R",
                   help="steady-state calls to time, after the first (default: 20)")
    p.add_argument("--json", action="store_true",
                   help="print the measurements as JSON on stdout (times in seconds) instead "
                   "of a table")
    add_options(p)
    p.set_defaults(run=run)


# measuring --------------------------------------------------------------------------------
@dataclass
class Timing:
    """One row of the table: nbx on a target, or the NumPy reference (target None)."""

    target: str | None
    compile_s: float | None
    cache: str | None
    first_call_s: float
    median_s: float
    min_s: float
    ratio: float | None = None      # reference median / this median
    gbps: float | None = None
    match: bool | None = None
    mismatch: str | None = None


def timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def steady(call: Callable[[], object], repeat: int, advance: Callable[[], None]) -> list[float]:
    """Seconds per call, garbage collection off (as timeit)."""
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
            advance()
    finally:
        if enabled:
            gc.enable()
    return times


def cache_state(spec, cache: bool) -> str:
    """'warm' if the first call read every function from Numba's cache, 'cold' if it
    compiled them, 'partial' for both, 'off' with --no-cache, 'unknown' if it cannot tell."""
    if not cache:
        return "off"
    try:
        entry = spec.entry
        while hasattr(entry, "__wrapped__"):    # the serialising wrapper, the dispatcher
            entry = entry.__wrapped__
        functions = entry.__globals__.values()
        hits = misses = 0
        for f in functions:
            stats = getattr(f, "stats", None) if hasattr(f, "py_func") else None
            if stats is not None:
                hits += sum(stats.cache_hits.values())
                misses += sum(stats.cache_misses.values())
    except (AttributeError, TypeError):
        return "unknown"
    if hits and misses:
        return "partial"
    return "warm" if hits else "cold" if misses else "unknown"


def array_bytes(values) -> int:
    return sum(v.nbytes for v in values if isinstance(v, np.ndarray))


# checking ---------------------------------------------------------------------------------
def compare(got: tuple, ref: tuple, low_precision: bool) -> str | None:
    """None if the results match the reference, else what differs."""
    for i, (g, r) in enumerate(zip(got, ref)):
        g, r = np.asarray(g), np.asarray(r)
        if g.shape != r.shape:
            return f"result{i} has shape {g.shape}, the reference {r.shape}"
        if g.dtype.kind == "f" or r.dtype.kind == "f":
            rtol = RTOL[np.dtype(np.float32)] if low_precision else \
                RTOL.get(g.dtype, RTOL[np.dtype(np.float32)])
            with np.errstate(all="ignore"):
                finite = np.abs(r[np.isfinite(r)]) if r.dtype.kind == "f" else np.abs(r)
                scale = float(finite.max()) if finite.size else 0.0
                close = np.isclose(g, r, rtol=rtol, atol=rtol * scale, equal_nan=True)
        else:
            close = g == r
        if not np.all(close):
            bad = np.argwhere(~np.asarray(close))
            where = tuple(int(j) for j in bad[0]) if g.ndim else ()
            at = f" at index {where}" if g.ndim else ""
            return (f"result{i}: {len(bad)} of {max(g.size, 1)} values differ; first{at}: "
                    f"nbx {g[where]!r}, reference {r[where]!r}")
    return None


def involves_f32(values, results) -> bool:
    f32 = np.dtype(np.float32)
    return any(np.asarray(v).dtype == f32 for v in (*values, *results))


# progress ---------------------------------------------------------------------------------
class Steps(AbstractContextManager):
    """A progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, enabled: bool):
        self._progress = None
        if enabled:
            import rich.progress as rp
            from rich.console import Console
            self._progress = rp.Progress(
                rp.SpinnerColumn(), rp.TextColumn("{task.description}"), rp.BarColumn(),
                rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), console=Console(stderr=True),
                transient=True, auto_refresh=False)   # no thread running while timing
            self._task = self._progress.add_task("", total=total)

    def __enter__(self):
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return None

    def step(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description, refresh=True)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
            self._progress.refresh()


# the command ------------------------------------------------------------------------------
def run(args) -> int:
    targets = list(dict.fromkeys(args.targets or ["cpu"]))   # each once, in order
    opts = options(args)
    repeat = args.repeat
    rows: list[Timing] = []
    results: list[tuple] = []
    total = len(targets) * (2 + repeat) + 1 + repeat
    with Steps(total, sys.stderr.isatty()) as steps:
        inputs = kernel = None
        for target in targets:
            steps.step(f"{target}: compiling")
            start = time.perf_counter()
            module = load(args.file, target=target, **opts)
            k = select_kernel(module, args.file, args.kernel)
            if inputs is None:
                kernel, inputs = k, build_inputs(k, args)
            spec = k.specialize(inputs.binding)
            compile_s = time.perf_counter() - start
            steps.advance()
            steps.step(f"{target}: first call")
            first_s, value = timed(lambda k=k, kw=inputs.kwargs: k(**kw))
            cache = cache_state(spec, opts["cache"])
            steps.advance()
            steps.step(f"{target}: {repeat} calls")
            positional = inputs.positional(k)
            times = steady(lambda k=k, a=positional: k(*a), repeat, steps.advance)
            rows.append(Timing(target, compile_s, cache, first_s, statistics.median(times),
                               min(times)))
            results.append(results_tuple(k, value))
        steps.step("NumPy reference: first call")
        positional = inputs.positional(kernel)
        first_s, value = timed(lambda: kernel.reference(*positional))
        reference = results_tuple(kernel, value)
        steps.advance()
        steps.step(f"NumPy reference: {repeat} calls")
        times = steady(lambda: kernel.reference(*positional), repeat, steps.advance)
        ref = Timing(None, None, None, first_s, statistics.median(times), min(times))

    nbytes = array_bytes(positional) + array_bytes(reference)
    low = involves_f32(positional, reference)
    for row, got in zip(rows, results):
        row.mismatch = compare(got, reference, low or involves_f32((), got))
        row.match = row.mismatch is None
    for row in (*rows, ref):
        row.ratio = ref.median_s / row.median_s if row.median_s > 0 else None
        row.gbps = nbytes / row.median_s / 1e9 if row.median_s > 0 else None

    report = {"file": args.file, "kernel": kernel.name, "signature": kernel.signature,
              "sizes": inputs.lengths,
              "binding": {tv: NAMES[dt] for tv, dt in inputs.binding.items()},
              "seed": args.seed, "repeat": repeat, "options": opts, "bytes": nbytes,
              "results": [asdict(r) for r in rows], "reference": asdict(ref)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report, rows, ref)
    failed = [r for r in rows if not r.match]
    for r in failed:
        print(f"nbxc: error: MISMATCH: nbx on {r.target} does not match the NumPy reference: "
              f"{r.mismatch}", file=sys.stderr)
    return 1 if failed else 0


# the table --------------------------------------------------------------------------------
def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def print_table(report: dict, rows: list[Timing], ref: Timing) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    sizes = ", ".join(f"{d}={n:,}" for d, n in report["sizes"].items())
    binding = ", ".join(f"{tv}={dt}" for tv, dt in report["binding"].items())
    caption = "; ".join(x for x in (sizes, binding, f"median and min of {report['repeat']} "
                                    f"calls after the first, {report['bytes']:,} bytes in + out")
                        if x)
    table = Table(title=escape(report["signature"]), caption=escape(caption))
    for name, justify in (("", "left"), ("compile", "right"), ("cache", "left"),
                          ("first call", "right"), ("median", "right"), ("min", "right"),
                          ("NumPy/nbx", "right"), ("GB/s", "right"), ("check", "left")):
        table.add_column(name, justify=justify)
    for r in (*rows, ref):
        check = "-" if r.match is None else "ok" if r.match else "[bold red]MISMATCH[/]"
        table.add_row(f"nbx {r.target}" if r.target else "NumPy reference",
                      seconds(r.compile_s), r.cache or "-", seconds(r.first_call_s),
                      seconds(r.median_s), seconds(r.min_s),
                      f"{r.ratio:.2f}x" if r.ratio is not None else "-",
                      f"{r.gbps:.2f}" if r.gbps is not None else "-", check)
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(table)
