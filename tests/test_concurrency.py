"""Kernels under threads and over many calls: correct results with 8 threads calling the same
and different kernels at once (first calls, which build the specialisations, included), on
cpu and cuda (on a GPU); the GIL released while a kernel computes; memory flat over
100,000 calls, with out=, and with calls that raise. (Under Numba's CUDA simulator the cuda
case cannot run: see SIMULATOR_SERIAL; the GPU run covers it.)

tests/test_calls.py runs 8 threads against each threading layer in a subprocess; the speed of
two threads against one is measured, not asserted: benchmarks/threads.py.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

import numpy as np
import pytest

import nbx
from nbx.backends import cuda_runtime

SRC = """
kernel affine(x: T[n]) -> T[n]:
    return x * 2 + 1

kernel total(x: f64[n]) -> f64:
    return sum(x)

kernel normalize(x: f64[n]) -> f64[n]:
    d = x - mean(x)
    return d / sqrt(mean(d * d) + 1e-12)

kernel rowmax(A: f32[m, k]) -> f32[m]:
    return max(A, over=k)
"""


def calls(mod, rng):
    """(name, thunk computing nbx's and the reference's results) of every kernel and dtype."""
    x = rng.standard_normal(257)
    A = rng.standard_normal((9, 31)).astype(np.float32)
    out = [("normalize", lambda: (mod.normalize(x), mod.normalize.reference(x))),
           ("total", lambda: (mod.total(x), mod.total.reference(x))),
           ("rowmax", lambda: (mod.rowmax(A), mod.rowmax.reference(A)))]
    for dtype in (np.float64, np.float32, np.int32, np.int64, np.uint8):
        xd = (x * 50).astype(dtype)
        out.append((f"affine[{np.dtype(dtype)}]",
                    lambda xd=xd: (mod.affine(xd), mod.affine.reference(xd))))
    return out


def hammer(mod, threads: int, rounds: int) -> list[str]:
    """`threads` threads started at once: half call one kernel (affine f64), the others each
    their own mix, `rounds` times; returns the wrong results and exceptions seen."""
    rng = np.random.default_rng(0)
    table = calls(mod, rng)
    plans = [[table[3]]] * (threads // 2) + \
        [table[i::threads - threads // 2] for i in range(threads - threads // 2)]
    barrier = threading.Barrier(len(plans))
    errors: list[str] = []

    def work(plan):
        barrier.wait()
        try:
            for i in range(rounds):
                name, thunk = plan[i % len(plan)]
                got, want = thunk()
                if not np.allclose(got, want, rtol=1e-5, atol=1e-5):
                    errors.append(f"{name}: wrong result")
        except Exception as err:  # noqa: BLE001  reported to the test
            errors.append(f"{type(err).__name__}: {err}")

    pool = [threading.Thread(target=work, args=(plan,)) for plan in plans]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in pool), "a thread hangs"
    return errors


SIMULATOR_SERIAL = ("Numba's CUDA simulator cannot run launches from two threads at once: a "
                    "launch swaps the kernel module's `cuda` for its own fake one, and a "
                    "second launch meanwhile finds the first one's (numba-cuda 0.30, "
                    "simulator/kernelapi.py swapped_cuda_module); NBX_TEST_GPU=1 runs it")


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_eight_threads_from_the_first_call(target):
    if target == "cuda" and cuda_runtime._simulated():
        pytest.skip(SIMULATOR_SERIAL)
    # a fresh module: the threads race to build every specialisation
    mod = nbx.compile(SRC, filename="threads.nbx", target=target)
    assert hammer(mod, 8, 12) == []


def test_kernels_release_the_gil():
    """While one thread is inside a long kernel, another thread runs Python. With the GIL
    held for the whole call, the other thread could not run at all in that time."""
    mod = nbx.compile("kernel slow(x: f64[n]) -> f64:\n    return sum(sin(x) * cos(x))\n",
                      filename="gil.nbx", parallel=False)
    x = np.linspace(0, 1, 4_000_000)
    mod.slow(x[:10])                                  # compiled before the measurement
    during = []
    inside = threading.Event()
    done = threading.Event()

    def count():
        inside.wait()
        while not done.is_set():
            during.append(time.perf_counter())

    other = threading.Thread(target=count)
    other.start()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)                    # hand the GIL over quickly
    try:
        inside.set()
        start = time.perf_counter()
        for _ in range(3):
            mod.slow(x)
        end = time.perf_counter()
    finally:
        done.set()
        sys.setswitchinterval(old)
        other.join()
    inner = [t for t in during if start < t < end]
    assert end - start > 0.01
    # the other thread kept running through the calls, not only between them
    spread = (max(inner) - min(inner)) if inner else 0.0
    assert len(inner) > 100 and spread > 0.5 * (end - start), (len(inner), spread, end - start)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux's /proc")
def test_memory_stays_flat_over_100000_calls():
    mod = nbx.compile(SRC, filename="memory.nbx")
    x = np.arange(64.0)
    out = np.empty(64)
    A = np.ones((4, 8), np.float32)

    def one(i):
        mod.affine(x)
        mod.affine(x, out=out)
        mod.total(x)
        if i % 10 == 0:
            mod.rowmax(A)
            try:
                mod.total(A)                          # a TypeError: its traceback is freed
            except TypeError:
                pass

    for i in range(2_000):                            # warm: caches, allocator pools
        one(i)
    gc.collect()
    before = rss()
    for i in range(100_000 // 3):                     # 100,000 calls and more
        one(i)
    gc.collect()
    after = rss()
    assert after <= before * 1.05, f"RSS grew from {before >> 20} MiB to {after >> 20} MiB"
