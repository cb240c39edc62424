#!/usr/bin/env python3
"""Dask benchmark: nbx kernels called with Dask arrays (nbx/chunked) against the same
expressions written with dask.array (NumPy on Dask), and against plain nbx on the same data.

    python benchmarks/chunked.py                  # 4*10^8 float64 per array (3.2 GB each)
    python benchmarks/chunked.py --quick          # 2*10^7, a smoke run
    python benchmarks/chunked.py --size 1e8 --chunk 8388608 --repeat 5

The arrays live in memory as NumPy arrays and are wrapped with dask.array.from_array in
blocks of --chunk elements; Dask's threaded scheduler runs one thread per core. Array results
are written block by block into a preallocated NumPy array (dask.array.store), as plain nbx
writes its result, so that no implementation pays for concatenating blocks; scalar results
are computed. Every implementation is checked against plain nbx first (a mismatch aborts),
warmed up once, then timed round-robin (one run of each per round); the table shows the
median and min.

Columns: `GB/s` is the effective bandwidth (every input read once, the output written once,
over the median time); `vs nbx-dask` is the implementation's median over nbx-on-Dask's (>1:
nbx on Dask is faster). The graph table counts tasks per kernel: in the graph as built (one
layer per step or per operation) and after dask.optimize (what the scheduler runs, blockwise
layers fused), per block of the input.
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


def run(result, out):
    """Compute a lazy result: an array into `out`, block by block; a scalar as itself."""
    if result.ndim == 0:
        return result.compute()
    da.store(result, out, lock=False)
    return out


def tasks(result) -> tuple[int, int]:
    (optimized,) = dask.optimize(result)
    return len(result.__dask_graph__()), len(optimized.__dask_graph__())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=4e8, help="elements per array")
    parser.add_argument("--chunk", type=int, default=2**24, help="elements per block")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds")
    parser.add_argument("--quick", action="store_true", help="2*10^7 elements, 2^21 a block")
    args = parser.parse_args(argv)
    n = int(2e7 if args.quick else args.size)
    chunk = 2**21 if args.quick else args.chunk
    cores = os.cpu_count()
    print(f"# {cpu_name()}, {cores} cores, load {loadavg()}; numpy {np.__version__}, dask "
          f"{dask.__version__}, nbx {nbx.__version__}; Python {sys.version.split()[0]}")
    print(f"# {n:.3g} float64 per array ({n * 8 / 1e9:.2f} GB), blocks of {chunk} elements "
          f"({-(-n // chunk)} blocks), threaded scheduler with {cores} threads")

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(n) for _ in range(3))
    out = np.empty(n)
    print(f"# inputs made in {time.perf_counter() - t0:.1f} s")
    expr = nbx.load(ROOT / "examples" / "expr.nbx")
    norm = nbx.load(ROOT / "examples" / "normalize.nbx")
    A, B, C = (da.from_array(x, chunks=chunk) for x in (a, b, c))

    gb = n * 8 / 1e9
    cases = [
        ("2*a + 3*b*c - sin(a)", 4 * gb, {
            "nbx": lambda: expr.poly(a, b, c, out=out),
            "nbx-dask": lambda: run(expr.poly(A, B, C), out),
            "numpy-dask": lambda: run(poly_dask(A, B, C), out),
        }, (expr.poly(A, B, C), poly_dask(A, B, C))),
        ("sum(a*b)", 2 * gb, {
            "nbx": lambda: expr.dot(a, b),
            "nbx-dask": lambda: run(expr.dot(A, B), out),
            "numpy-dask": lambda: run(dot_dask(A, B), out),
        }, (expr.dot(A, B), dot_dask(A, B))),
        ("normalize(a)", 2 * gb, {
            "nbx": lambda: norm.normalize(a, out=out),
            "nbx-dask": lambda: run(norm.normalize(A), out),
            "numpy-dask": lambda: run(normalize_dask(A), out),
        }, (norm.normalize(A), normalize_dask(A))),
    ]
    blocks = A.numblocks[0]
    rows, graphs = [], []
    print(f"{'kernel':<22} {'impl':<12} {'median':>10} {'min':>10} {'GB/s':>7} "
          f"{'vs nbx-dask':>11}")
    with dask.config.set(scheduler="threads", num_workers=cores):
        for case, nbytes, impls, lazy in cases:
            want = np.array(impls["nbx"](), copy=True)
            for name, fn in impls.items():   # check (and warm up: compile, first touch)
                got = np.asarray(fn())
                if not np.allclose(got, want, rtol=1e-9, atol=1e-9):
                    raise Mismatch(f"{case}: {name} differs from plain nbx")
            times = {name: [] for name in impls}
            for _ in range(args.repeat):
                for name, fn in impls.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
            base = statistics.median(times["nbx-dask"])
            for name, ts in times.items():
                med = statistics.median(ts)
                rows.append((case, name, med, min(ts), nbytes / med, med / base))
            for name, result in zip(("nbx-dask", "numpy-dask"), lazy):
                built, run_ = tasks(result)
                graphs.append((case, name, built, run_, built / blocks, run_ / blocks))
            print_rows(rows[-len(impls):])

    print()
    print(f"{'kernel':<22} {'impl':<12} {'tasks built':>12} {'tasks run':>10} "
          f"{'built/block':>12} {'run/block':>10}")
    for case, name, built, run_, pb, pr in graphs:
        print(f"{case:<22} {name:<12} {built:>12} {run_:>10} {pb:>12.2f} {pr:>10.2f}")
    print(f"# {blocks} blocks per input; tasks include those that read the input blocks "
          "(dask.array.from_array)")
    return 0


def print_rows(rows) -> None:
    for case, name, med, mn, bw, ratio in rows:
        print(f"{case:<22} {name:<12} {med * 1e3:>8.0f}ms {mn * 1e3:>8.0f}ms {bw:>7.2f} "
              f"{ratio:>11.2f}")


if __name__ == "__main__":
    sys.exit(main())
