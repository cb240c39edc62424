#!/usr/bin/env python3
"""Threads and memory (issue 5's figures; tests/test_concurrency.py checks the behaviour):

1. The GIL is released while a kernel computes: the same total work (calls of a one-thread
   kernel, parallel=False, each thread on its own array) done by 1, 2, 4 and 8 Python threads;
   the speed-up over one thread, median of --repeat runs.
2. Memory over 100,000 calls: the process's resident set (and on cuda the device's used
   memory) after a warm-up and after 100,000 more calls, plain, with out= and raising.

    python benchmarks/threads.py                 # cpu
    python benchmarks/threads.py --target cuda   # on a GPU: memory figures only
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nbx  # noqa: E402

SRC = """
kernel work(x: f64[n]) -> f64:
    return sum(sin(x) * cos(x))

kernel affine(x: f64[n]) -> f64[n]:
    return x * 2 + 1

kernel total(x: f64[n]) -> f64:
    return sum(x)
"""


def threads_table(repeat: int, n: int, calls: int) -> list[str]:
    mod = nbx.compile(SRC, filename="threads.nbx", parallel=False)
    arrays = [np.linspace(i, i + 1, n) for i in range(8)]
    mod.work(arrays[0])

    def run(threads: int) -> float:
        def body(i):
            for _ in range(calls // threads):
                mod.work(arrays[i])
        pool = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return time.perf_counter() - start

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [f"work: sum(sin(x)*cos(x)), n = {n}, {calls} calls in all, parallel=False, "
            f"{cores} cores, median of {repeat}",
            "| threads | seconds | speed-up over 1 |", "|---|---|---|"]
    one = None
    for threads in (1, 2, 4, 8):
        seconds = statistics.median(run(threads) for _ in range(repeat))
        one = one or seconds
        rows.append(f"| {threads} | {seconds:.3f} | {one / seconds:.2f}x |")
    return rows


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_table(target: str, calls: int) -> list[str]:
    mod = nbx.compile(SRC, filename="memory.nbx", target=target)
    x = np.arange(1024.0)
    out = np.empty(1024)
    device = None
    if target != "cpu":
        from numba import cuda
        ctx = cuda.current_context()
        device = lambda: ctx.get_memory_info()[1] - ctx.get_memory_info()[0]  # noqa: E731

    def one(i):
        mod.affine(x)
        mod.affine(x, out=out)
        mod.total(x)
        if i % 10 == 0:
            try:
                mod.total(np.ones((2, 2)))
            except TypeError:
                pass

    for i in range(2000):
        one(i)
    gc.collect()
    before, dev_before, start = rss(), device() if device else 0, time.perf_counter()
    for i in range(calls // 3 + 1):
        one(i)
    gc.collect()
    after, dev_after = rss(), device() if device else 0
    seconds = time.perf_counter() - start
    rows = [f"{target}: {3 * (calls // 3 + 1) + (calls // 30 + 1)} calls (affine, affine with "
            f"out=, total, and every 10th a TypeError) in {seconds:.1f} s",
            "| memory | after warm-up | after the calls | change |", "|---|---|---|---|",
            f"| process RSS | {before / 2**20:.1f} MiB | {after / 2**20:.1f} MiB | "
            f"{100 * (after - before) / before:+.2f}% |"]
    if device:
        rows.append(f"| device used | {dev_before / 2**20:.1f} MiB | {dev_after / 2**20:.1f} MiB"
                    f" | {100 * (dev_after - dev_before) / max(dev_before, 1):+.2f}% |")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=16)
    args = parser.parse_args(argv)
    if args.target == "cpu":
        print("\n".join(threads_table(args.repeat, args.n, args.calls)), "\n", flush=True)
    print("\n".join(memory_table(args.target, 100_000)))


if __name__ == "__main__":
    main()
