#!/usr/bin/env python3
"""CPU benchmark: nbx against NumPy, numexpr and hand-written Numba prange loops (float64).

    python benchmarks/cpu.py                 # full sizes (2*10^7 elements, 4000 x 5000)
    python benchmarks/cpu.py --quick         # small sizes, a smoke run
    python benchmarks/cpu.py --size 0.5 --repeat 11 --json results.json

For every case each implementation is first checked against NumPy (np.allclose; a mismatch
aborts the run), warmed up (compiled), then timed with time.perf_counter. Implementations of one
case are timed round-robin (one call of each per round) so that drifting load on a shared
machine hits them alike; the table shows the median (and min) over the rounds.

Columns: `GB/s` is the effective bandwidth: the bytes a single ideal pass must move (every input
read once, every output written once) divided by the median time, the same byte count for every
implementation of a case. `peer/nbx` is the peer's median time over nbx's (>1: nbx is faster).
`target` / `status` compare against the goals of the performance issue (written for a 2-core
machine).

Start-up (new processes, cold and warm caches, standalone modules) is measured by
benchmarks/startup.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numexpr as ne
import numpy as np
from machine import Mismatch, cpu_name, loadavg
from numba import prange

import nbx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# main() loads the nbx modules and calls one kernel before any hand-written loop runs: nbx's
# load configures Numba's threading layer ("threadsafe"), and every loop here then shares it.

# --------------------------------------------------------------------------------------------
# Hand-written Numba peers: plain @njit(parallel=True) prange loops, as a user would write them.
# --------------------------------------------------------------------------------------------


@numba.njit(parallel=True)
def poly_numba(a, b, c):
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[i] = 2.0 * a[i] + 3.0 * b[i] * c[i] - np.sin(a[i])
    return out


@numba.njit(parallel=True)
def fma_numba(a, b, c):
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[i] = a[i] * b[i] + c[i]
    return out


@numba.njit(parallel=True)
def dot_numba(a, b):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i] * b[i]
    return s


@numba.njit(parallel=True)
def normalize_numba(x):
    n = x.shape[0]
    s = 0.0
    for i in prange(n):
        s += x[i]
    m = s / n
    ss = 0.0
    for i in prange(n):
        d = x[i] - m
        ss += d * d
    sd = np.sqrt(ss / n)
    out = np.empty_like(x)
    for i in prange(n):
        out[i] = (x[i] - m) / sd
    return out


@numba.njit(parallel=True)
def softmax_numba(x):
    m, k = x.shape
    out = np.empty_like(x)
    for i in prange(m):
        mx = -np.inf
        for j in range(k):
            if x[i, j] > mx:
                mx = x[i, j]
        s = 0.0
        for j in range(k):          # one exp per element: kept in out, rescaled below
            e = np.exp(x[i, j] - mx)
            out[i, j] = e
            s += e
        for j in range(k):
            out[i, j] = out[i, j] / s
    return out


@numba.njit(parallel=True)
def matvec_numba(A, v):
    m, k = A.shape
    out = np.empty(m)
    for i in prange(m):
        s = 0.0
        for j in range(k):
            s += A[i, j] * v[j]
        out[i] = s
    return out


# --------------------------------------------------------------------------------------------
# NumPy and numexpr peers
# --------------------------------------------------------------------------------------------

def normalize_numpy(x):
    return (x - x.mean()) / x.std()


def normalize_numexpr(x):
    n = x.shape[0]
    m = float(ne.evaluate("sum(x)")) / n  # noqa: F841 (m, sd: used by name in the strings)
    sd = math.sqrt(float(ne.evaluate("sum((x - m) ** 2)")) / n)  # noqa: F841
    return ne.evaluate("(x - m) / sd")


def softmax_numpy(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_numexpr(x):
    mx = ne.evaluate("max(x, axis=1)")[:, None]   # noqa: F841 (used by name in the string)
    e = ne.evaluate("exp(x - mx)")                 # noqa: F841
    s = ne.evaluate("sum(e, axis=1)")[:, None]     # noqa: F841
    return ne.evaluate("e / s")


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------



def verify(case: str, name: str, got, want, rtol=1e-7, atol=1e-10) -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
        diff = np.max(np.abs(got - want)) if got.shape == want.shape else "shape"
        raise Mismatch(f"{case}: {name} disagrees with NumPy (shape {got.shape} vs "
                       f"{want.shape}, max abs diff {diff})")


def time_round_robin(impls: dict, args: tuple, repeat: int, warmup: int = 2) -> dict:
    """Median/min seconds per implementation, one call of each per round."""
    for fn in impls.values():
        for _ in range(warmup):
            fn(*args)
    times = {name: [] for name in impls}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, fn in impls.items():
                t0 = time.perf_counter()
                r = fn(*args)
                t1 = time.perf_counter()
                del r
                times[name].append(t1 - t0)
    finally:
        if gc_was:
            gc.enable()
    return {name: {"median_s": statistics.median(ts), "min_s": min(ts), "runs": len(ts)}
            for name, ts in times.items()}


def time_per_call(impls: dict, args: tuple, calls: int, rounds: int) -> dict:
    """Median seconds of one call (each call timed alone), rounds interleaved."""
    for fn in impls.values():
        for _ in range(200):
            fn(*args)
    times = {name: [] for name in impls}
    pc = time.perf_counter
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in impls.items():
                ts = times[name]
                for _ in range(calls):
                    t0 = pc()
                    fn(*args)
                    ts.append(pc() - t0)
    finally:
        if gc_was:
            gc.enable()
    return {name: {"median_s": statistics.median(ts), "min_s": min(ts), "runs": len(ts)}
            for name, ts in times.items()}


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

# A target is (peer, kind, factor):
#   ("faster", f): peer_time / nbx_time >= f           (nbx at least f times faster)
#   ("within", f): nbx_time <= f * peer_time           (nbx within f times of the peer)
def target_text(kind: str, factor: float) -> str:
    return f">= {factor:g}x faster" if kind == "faster" else f"within {factor:g}x"


def target_ok(kind: str, factor: float, ratio: float) -> bool:
    # ratio = peer / nbx
    return ratio >= factor if kind == "faster" else ratio >= 1.0 / factor


def run_case(results, case, impls, args, want, nbytes, repeat, targets, check_tol=None):
    """Verify every implementation against `want`, time them, record rows."""
    tol = check_tol or {}
    for name, fn in impls.items():
        verify(case, name, fn(*args), want, **tol)
    timed = time_round_robin(impls, args, repeat)
    base = timed["nbx"]["median_s"]
    for name, t in timed.items():
        ratio = t["median_s"] / base
        row = {"case": case, "impl": name, "median_ms": t["median_s"] * 1e3,
               "min_ms": t["min_s"] * 1e3, "runs": t["runs"],
               "gbps": nbytes / t["median_s"] / 1e9, "ratio": ratio,
               "target": "", "status": ""}
        if name in targets:
            kind, factor = targets[name]
            row["target"] = target_text(kind, factor)
            row["status"] = "PASS" if target_ok(kind, factor, ratio) else "MISS"
        results.append(row)
        print_row(row)
    print_rule()


def overhead_case(results, mods, calls, rounds):
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(100) for _ in range(3))
    fma = mods["expr"].fma
    impls = {
        "nbx": fma,
        "numexpr": lambda a, b, c: ne.evaluate("a*b + c"),
        "numba (hand)": fma_numba,
        "numpy": lambda a, b, c: a * b + c,
    }
    want = a * b + c
    for name, fn in impls.items():
        verify("overhead", name, fn(a, b, c), want)
    timed = time_per_call(impls, (a, b, c), calls, rounds)
    base = timed["nbx"]["median_s"]
    for name, t in timed.items():
        row = {"case": "call a*b+c n=100", "impl": name, "median_us": t["median_s"] * 1e6,
               "min_us": t["min_s"] * 1e6, "runs": t["runs"], "ratio": t["median_s"] / base,
               "target": "", "status": ""}
        if name == "nbx":
            row["target"] = "<= 5 us"
            row["status"] = "PASS" if row["median_us"] <= 5.0 else "MISS"
        results.append(row)
        print(f"{row['case']:<18} {name:<16} {row['median_us']:>10.2f} us "
              f"{row['min_us']:>9.2f} us {'':>8} {row['ratio']:>8.2f}  "
              f"{row['target']:<22} {row['status']}")
    print_rule()


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

HEADER = (f"{'case':<18} {'impl':<16} {'median':>13} {'min':>12} {'GB/s':>8} {'peer/nbx':>8}"
          f"  {'target (nbx vs peer)':<22} status")


def print_rule():
    print("-" * len(HEADER))


def print_row(row):
    print(f"{row['case']:<18} {row['impl']:<16} {row['median_ms']:>10.2f} ms "
          f"{row['min_ms']:>9.2f} ms {row['gbps']:>8.2f} {row['ratio']:>8.2f}  "
          f"{row['target']:<22} {row['status']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=float, default=1.0,
                    help="scale factor on the element counts (default 1: 2*10^7 elements, "
                         "4000 x 5000 matrices; 2-D shapes scale by sqrt(size) per side)")
    ap.add_argument("--repeat", type=int, default=7, help="timed rounds per case (default 7)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: size 0.01, 3 rounds, a short overhead run")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    opts = ap.parse_args(argv)

    size = opts.size
    repeat = opts.repeat
    calls, rounds = 2000, 5
    if opts.quick:
        size = min(size, 0.01)
        repeat = min(repeat, 3)
        calls, rounds = 500, 2
    n = max(1000, int(round(2e7 * size)))
    side = math.sqrt(size)
    rows_m, cols_k = max(8, int(round(4000 * side))), max(8, int(round(5000 * side)))

    mods = {name: nbx.load(EXAMPLES / f"{name}.nbx")
            for name in ("expr", "normalize", "softmax", "matvec")}
    # the first nbx call compiles and fixes the threading layer for the whole process
    mods["expr"].fma(np.ones(4), np.ones(4), np.ones(4))

    env = {
        "python": sys.version.split()[0], "numpy": np.__version__, "numba": numba.__version__,
        "numexpr": ne.__version__, "nbx": nbx.__version__, "cpus": os.cpu_count(),
        "numba_threads": numba.get_num_threads(), "numba_layer": numba.threading_layer(),
        "numexpr_threads": ne.nthreads, "numexpr_vml": bool(ne.use_vml),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "machine": platform.machine(), "processor": cpu_name(),
        "n": n, "matrix": [rows_m, cols_k], "repeat": repeat, "size": size,
        "quick": opts.quick, "loadavg_start": loadavg(),
    }
    print(f"nbx CPU benchmark: float64, n = {n:,}, matrix {rows_m} x {cols_k}, "
          f"median of {repeat} rounds (round-robin), times include output allocation")
    print(f"{env['processor']}, {env['cpus']} CPUs; numpy {env['numpy']}, numba "
          f"{env['numba']} ({env['numba_layer']}, {env['numba_threads']} threads), numexpr "
          f"{env['numexpr']} ({env['numexpr_threads']} threads, VML {env['numexpr_vml']}), "
          f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}; load average at start "
          f"{env['loadavg_start']}")
    print("GB/s = (inputs read once + outputs written once) / median time; "
          "peer/nbx = peer time / nbx time (>1: nbx faster)")
    print()
    print(HEADER)
    print_rule()

    results: list[dict] = []
    rng = np.random.default_rng(0)
    f8 = 8

    # --- element-wise ----------------------------------------------------------------------
    a, b, c = (rng.standard_normal(n) for _ in range(3))
    ex = mods["expr"]
    run_case(results, "poly", {
        "nbx": ex.poly,
        "numba (hand)": poly_numba,
        "numexpr": lambda a, b, c: ne.evaluate("2*a + 3*b*c - sin(a)"),
        "numpy": lambda a, b, c: 2 * a + 3 * b * c - np.sin(a),
    }, (a, b, c), 2 * a + 3 * b * c - np.sin(a), 4 * n * f8, repeat,
        {"numba (hand)": ("within", 1.1), "numexpr": ("faster", 1.2),
         "numpy": ("faster", 2.0)})

    run_case(results, "fma", {
        "nbx": ex.fma,
        "numba (hand)": fma_numba,
        "numexpr": lambda a, b, c: ne.evaluate("a*b + c"),
        "numpy": lambda a, b, c: a * b + c,
    }, (a, b, c), a * b + c, 4 * n * f8, repeat,
        {"numba (hand)": ("within", 1.1), "numexpr": ("faster", 1.15),
         "numpy": ("faster", 2.0)})

    run_case(results, "sum(a*b)", {
        "nbx": ex.dot,
        "numba (hand)": dot_numba,
        "numexpr": lambda a, b: ne.evaluate("sum(a*b)"),
        "np.sum(a*b)": lambda a, b: np.sum(a * b),
        "np.dot": np.dot,
    }, (a, b), np.sum(a * b), 2 * n * f8, repeat,
        {"numba (hand)": ("within", 1.1), "np.sum(a*b)": ("faster", 3.0)},
        check_tol={"rtol": 1e-9, "atol": 1e-6})
    del b, c

    x = a
    run_case(results, "normalize", {
        "nbx": mods["normalize"].normalize,
        "numba (hand)": normalize_numba,
        "numexpr": normalize_numexpr,
        "numpy": normalize_numpy,
    }, (x,), normalize_numpy(x), 2 * n * f8, repeat,
        {"numpy": ("faster", 2.0)})
    del a, x
    gc.collect()

    # --- 2-D -------------------------------------------------------------------------------
    X = rng.standard_normal((rows_m, cols_k))
    run_case(results, "softmax", {
        "nbx": mods["softmax"].softmax,
        "numba (hand)": softmax_numba,
        "numexpr": softmax_numexpr,
        "numpy": softmax_numpy,
    }, (X,), softmax_numpy(X), 2 * X.size * f8, repeat,
        {"numpy": ("faster", 2.0)}, check_tol={"rtol": 1e-9, "atol": 1e-15})

    v = rng.standard_normal(cols_k)
    run_case(results, "matvec", {
        "nbx": mods["matvec"].matvec,
        "numba (hand)": matvec_numba,
        "numexpr": lambda A, v: ne.evaluate("sum(A*v, axis=1)"),
        "A @ v": lambda A, v: A @ v,
    }, (X, v), X @ v, (X.size + cols_k + rows_m) * f8, repeat,
        {"A @ v": ("within", 1.3)}, check_tol={"rtol": 1e-9, "atol": 1e-9})
    del X, v
    gc.collect()

    # --- per-call overhead -----------------------------------------------------------------
    overhead_case(results, mods, calls, rounds)

    scored = [r for r in results if r.get("status")]
    missed = [f"{r['case']} vs {r['impl']}" for r in scored if r["status"] == "MISS"]
    print(f"{len(scored) - len(missed)}/{len(scored)} targets met"
          + (f"; missed: {', '.join(missed)}" if missed else ""))

    env["loadavg_end"] = loadavg()
    print(f"load average at end {env['loadavg_end']} (a shared machine: compare min and "
          "median; rerun when the load is high)")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=2)
        print(f"wrote {opts.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Mismatch as err:
        print(f"\nRESULT MISMATCH: {err}", file=sys.stderr)
        sys.exit(3)
