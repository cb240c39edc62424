#!/usr/bin/env python3
"""Dask benchmark: nbx kernels called with Dask arrays (nbx/chunked) against the same
expressions written with dask.array (NumPy on Dask), and against plain nbx on the same data.

    python benchmarks/chunked.py                  # 4*10^8 float64 per array (3.2 GB each)
    python benchmarks/chunked.py --quick          # 2*10^7, a smoke run
    python benchmarks/chunked.py --size 1e8 --chunk 8388608 --repeat 5
    python3 benchmarks/chunked.py --gpu --size 2e8     # CuPy blocks, target cuda; CuPy on Dask

The arrays live in memory as NumPy arrays whose blocks of --chunk elements make the Dask
arrays (views, no copies); Dask's threaded scheduler runs one thread per core. Array results
are written block by block into a preallocated NumPy array (dask.array.store), as plain nbx
writes its result, so that no implementation pays for concatenating blocks; scalar results
are computed. Every implementation is checked against plain nbx first (a mismatch aborts),
warmed up once, then timed round-robin (one run of each per round); the table shows the
median and min.

Columns: `GB/s` is the effective bandwidth (every input read once, the output written once,
over the median time); `vs nbx-dask` is the implementation's median over nbx-on-Dask's (>1:
nbx on Dask is faster). The graph table counts tasks per kernel: in the graph as built (one
layer per step or per operation; the inputs' block reads left out) and after dask.optimize
(what the scheduler runs, blockwise layers fused, the reads included), per block of the input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from machine import Mismatch, cpu_name, loadavg

import nbx

ROOT = Path(__file__).resolve().parent.parent
EPS = 1e-12   # examples/normalize.nbx's


def normalize_dask(x):
    return (x - x.mean()) / da.sqrt(x.var() + EPS)


def poly_dask(a, b, c):
    return 2 * a + 3 * b * c - da.sin(a)


def dot_dask(a, b):
    return (a * b).sum()


def blocks_of(x, chunk: int):
    """A Dask array whose blocks are views of x (dask.array.from_array copies a NumPy array
    first, and three copies of 3.2 GB do not fit beside the originals on this machine)."""
    starts = range(0, x.size, chunk)
    name = f"input-{id(x):x}"
    graph = {(name, i): x[s:s + chunk] for i, s in enumerate(starts)}
    sizes = tuple(min(chunk, x.size - s) for s in starts)
    return da.Array(graph, name, (sizes,), dtype=x.dtype, meta=x[:0])


def run(result, out):
    """Compute a lazy result: an array into `out`, block by block; a scalar as itself."""
    if result.ndim == 0:
        return float(result.compute())
    da.store(result, out, lock=False)
    return out


def close(xp, got, want, step=1 << 24) -> bool:
    """allclose, a slice at a time (the arrays are most of the machine's memory)."""
    if want.ndim == 0:
        return bool(xp.allclose(got, want, rtol=1e-9, atol=1e-9))
    return all(bool(xp.allclose(got[i:i + step], want[i:i + step], rtol=1e-9, atol=1e-9))
               for i in range(0, want.size, step))


def tasks(result, inputs) -> tuple[int, int]:
    """(tasks of the kernel's own layers, as built: the inputs' block reads left out; tasks the
    scheduler runs, after dask.optimize has fused blockwise layers, the reads among them)."""
    graph = result.__dask_graph__()
    read = set().union(*(x.__dask_graph__().layers for x in inputs))
    own = sum(len(layer) for name, layer in graph.layers.items() if name not in read)
    (optimized,) = dask.optimize(result)
    return own, len(optimized.__dask_graph__())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=4e8, help="elements per array")
    parser.add_argument("--chunk", type=int, default=2**24, help="elements per block")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds")
    parser.add_argument("--quick", action="store_true", help="2*10^7 elements, 2^21 a block")
    parser.add_argument("--gpu", action="store_true",
                        help="CuPy arrays and blocks, nbx target cuda, CuPy on Dask as the peer")
    args = parser.parse_args(argv)
    xp, sync, target, peer = np, (lambda: None), "cpu", "numpy-dask"
    if args.gpu:
        import cupy as xp
        sync, target, peer = xp.cuda.Device().synchronize, "cuda", "cupy-dask"
    n = int(2e7 if args.quick else args.size)
    chunk = 2**21 if args.quick else args.chunk
    cores = os.cpu_count()
    print(f"# {cpu_name()}, {cores} cores, load {loadavg()}; numpy {np.__version__}, dask "
          f"{dask.__version__}, nbx {nbx.__version__}; Python {sys.version.split()[0]}")
    print(f"# {n:.3g} float64 per array ({n * 8 / 1e9:.2f} GB), blocks of {chunk} elements "
          f"({-(-n // chunk)} blocks), threaded scheduler with {cores} threads")

    t0 = time.perf_counter()
    rng = xp.random.default_rng(0)
    a, b, c = (rng.standard_normal(n) for _ in range(3))
    out = xp.empty(n)
    sync()
    print(f"# inputs made in {time.perf_counter() - t0:.1f} s")
    expr = nbx.load(ROOT / "examples" / "expr.nbx", target=target)
    norm = nbx.load(ROOT / "examples" / "normalize.nbx", target=target)
    A, B, C = (blocks_of(x, chunk) for x in (a, b, c))

    gb = n * 8 / 1e9
    cases = [
        ("2*a + 3*b*c - sin(a)", 4 * gb, {
            "nbx": lambda: expr.poly(a, b, c, out=out),
            "nbx-dask": lambda: run(expr.poly(A, B, C), out),
            peer: lambda: run(poly_dask(A, B, C), out),
        }, (expr.poly(A, B, C), poly_dask(A, B, C)), (A, B, C)),
        ("sum(a*b)", 2 * gb, {
            "nbx": lambda: expr.dot(a, b),
            "nbx-dask": lambda: run(expr.dot(A, B), out),
            peer: lambda: run(dot_dask(A, B), out),
        }, (expr.dot(A, B), dot_dask(A, B)), (A, B)),
        ("normalize(a)", 2 * gb, {
            "nbx": lambda: norm.normalize(a, out=out),
            "nbx-dask": lambda: run(norm.normalize(A), out),
            peer: lambda: run(normalize_dask(A), out),
        }, (norm.normalize(A), normalize_dask(A)), (A,)),
    ]
    blocks = A.numblocks[0]
    rows, graphs = [], []
    print(f"{'kernel':<22} {'impl':<12} {'median':>10} {'min':>10} {'GB/s':>7} "
          f"{'vs nbx-dask':>11}")
    with dask.config.set(scheduler="threads", num_workers=cores):
        for case, nbytes, impls, lazy, inputs in cases:
            want = xp.array(impls["nbx"](), copy=True)
            for name, fn in impls.items():   # check (and warm up: compile, first touch)
                out.fill(np.nan)
                if not close(xp, xp.asarray(fn()), want):
                    raise Mismatch(f"{case}: {name} differs from plain nbx")
            times = {name: [] for name in impls}
            for _ in range(args.repeat):
                for name, fn in impls.items():
                    sync()
                    t = time.perf_counter()
                    fn()
                    sync()
                    times[name].append(time.perf_counter() - t)
            base = statistics.median(times["nbx-dask"])
            for name, ts in times.items():
                med = statistics.median(ts)
                rows.append((case, name, med, min(ts), nbytes / med, med / base))
            for name, result in zip(("nbx-dask", peer), lazy):
                built, run_ = tasks(result, inputs)
                graphs.append((case, name, built, run_, built / blocks, run_ / blocks))
            print_rows(rows[-len(impls):])

    print()
    print(f"{'kernel':<22} {'impl':<12} {'tasks built':>12} {'tasks run':>10} "
          f"{'built/block':>12} {'run/block':>10}")
    for case, name, built, run_, pb, pr in graphs:
        print(f"{case:<22} {name:<12} {built:>12} {run_:>10} {pb:>12.2f} {pr:>10.2f}")
    print(f"# {blocks} blocks per input. built: the kernel's own tasks as the graph is built "
          "(one layer per nbx step or per dask.array operation; reading the inputs' blocks "
          "left out); run: every task after dask.optimize fuses blockwise layers, the reads "
          "included")
    return 0


def print_rows(rows) -> None:
    for case, name, med, mn, bw, ratio in rows:
        print(f"{case:<22} {name:<12} {med * 1e3:>8.0f}ms {mn * 1e3:>8.0f}ms {bw:>7.2f} "
              f"{ratio:>11.2f}")


if __name__ == "__main__":
    sys.exit(main())
