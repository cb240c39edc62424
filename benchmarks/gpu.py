#!/usr/bin/env python3
"""GPU benchmark: nbx's CUDA targets against CuPy, PyTorch and hand-written Numba CUDA.

    python3 benchmarks/gpu.py                     # 2^27 elements, f32 and f64 (the issue's sizes)
    python3 benchmarks/gpu.py --quick             # 2^22 elements, fewer repeats: a smoke run
    python3 benchmarks/gpu.py --size 2^26 --dtypes f32 --cases fma,dot --json out.json
    python3 benchmarks/gpu.py --smoke             # every nbx kernel once on small odd shapes,
                                                  # checked, no timing (run under compute-sanitizer)
    python3 benchmarks/gpu.py --selftest          # no GPU: the harness on NumPy with fake peers

Cases (--cases): copy (device-to-device, the bandwidth ceiling), fma (a*b + c), poly
(2*a + 3*b*c - sin(a)), dot (sum(a*b)), rowsum / colsum (sum(A, over=k) / over=m on an
m x 4096 matrix of the same element count), normalize ((x - mean) / std, three stages in nbx),
launch (per-call cost of a*b + c on 1024 elements). nbx kernels come from examples/gpu.nbx,
loaded with target="cuda" and "cuda-ufunc", and are called with CuPy arrays unless a row says
otherwise.

Method (see .library/device/METHOD.md):
- Inputs are fresh uniform [-1, 2) random arrays drawn on the device for every case and dtype
  (never zeros; a non-zero mean keeps the sums well conditioned, so the check below measures the
  implementation, not cancellation).
- Check: each implementation's first call is compared with a float64 reference computed on the
  device (CuPy, else PyTorch) from the same inputs: ||out - ref|| / ||ref|| at most 1e-5 for f32
  and 1e-12 for f64; NaN, a wrong shape or a wrong result dtype fails. Before that call the output
  is poisoned with NaN: out= buffers are filled; for implementations that allocate, a NaN-filled
  block of the result's size is first freed into CuPy's and PyTorch's pools, so the fresh result
  most likely lands on it (best effort). A failed check is shown (check FAIL) and the row is still
  timed; a target judged on it is a MISS.
- Timing: warm-up calls first. Each repeat is: one untimed call (the lead), a start event, the
  timed call, a stop event, all on the legacy default stream on which CuPy, PyTorch and Numba
  launch by default. The lead keeps the GPU busy while Python records the start event and issues
  the timed call, so the events measure the device time of back-to-back calls, not the Python
  launch cost (the launch case measures that). The table shows the median (and the interquartile
  spread); `wall` is host-clock time per call over a batch of calls between two device
  synchronisations (what a loop of calls costs, Python overhead that the queue did not hide
  included). When one input set is smaller than twice the L2 cache, three input sets are rotated
  (the lead uses the previous one); at 2^27 elements one set is used.
- GB/s: bytes of every input read once plus every output written once, over the median time (the
  same byte count for every implementation of a case). `x peer`: this row's speed relative to the
  case's named peer in the issue (peer time / row time; for the matrix sums, row GB/s over the best
  copy's GB/s). `out`: `alloc` means the call allocates its result (CuPy's and PyTorch's pools;
  Numba's allocator for Numba arrays), `out=` that it writes a preallocated output.
- launch: a host clock around `--calls` back-to-back calls with one synchronisation at the end,
  median over rounds, in microseconds per call.
Targets (issue 4) are printed beside the row they judge and summarised at the end.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.metadata
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from machine import cpu_name, loadavg

try:        # a module global, so that the simulator (NUMBA_ENABLE_CUDASIM=1) can swap it
    from numba import cuda
except ImportError:
    cuda = None

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NBX_FILE = ROOT / "examples" / "gpu.nbx"

DTYPES = {"f32": np.float32, "f64": np.float64}
TOL = {"f32": 1e-5, "f64": 1e-12}
CASES = ("copy", "fma", "poly", "dot", "rowsum", "colsum", "normalize", "launch")
LABELS = {"copy": "d2d copy", "fma": "a*b+c", "poly": "2a+3bc-sin(a)", "dot": "sum(a*b)",
          "rowsum": "sum(A,over=k)", "colsum": "sum(A,over=m)", "normalize": "normalize",
          "launch": "launch n=1024"}
COPY = "copy (best)"          # the peer name of the matrix sums: the best d2d copy's GB/s
ALLOC, OUT = "alloc", "out="
TPB = 256                     # threads per block of the hand-written Numba kernels


# ---------------------------------------------------------------------------------------------
# Targets of issue 4. kind: "bw" row GB/s / peer GB/s >= f; "speedup" peer ms / row ms >= f;
# "within" row ms / peer ms <= f; "max_us" row us <= f. Judged rows are (impl, out) pairs.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    case: str
    impl: tuple[str, str]
    peer: tuple[str, str] | None
    kind: str
    factor: float
    text: str
    dtypes: tuple[str, ...] = ("f32", "f64")


NBX = ("nbx cuda", ALLOC)
TARGETS = (
    Target("fma", NBX, ("torch eager", ALLOC), "bw", 0.95, ">= 0.95x torch eager GB/s"),
    Target("fma", NBX, ("cupy unfused", ALLOC), "speedup", 1.9, ">= 1.9x faster than cupy unfused"),
    Target("fma", ("nbx cuda-ufunc", OUT), ("numba cuda.vectorize", OUT), "within", 1.1,
           "within 1.1x of numba cuda.vectorize"),
    Target("poly", NBX, ("torch eager", ALLOC), "bw", 0.95, ">= 0.95x torch eager GB/s"),
    Target("poly", NBX, ("cupy unfused", ALLOC), "speedup", 5.0, ">= 5x faster than cupy unfused"),
    Target("poly", ("nbx cuda-ufunc", OUT), ("numba cuda.vectorize", OUT), "within", 1.1,
           "within 1.1x of numba cuda.vectorize"),
    Target("dot", NBX, ("torch.dot", ALLOC), "speedup", 0.9, ">= 0.9x torch.dot speed"),
    Target("rowsum", NBX, (COPY, ""), "bw", 0.85, ">= 85% of copy GB/s", ("f32",)),
    Target("colsum", NBX, (COPY, ""), "bw", 0.85, ">= 85% of copy GB/s", ("f32",)),
    Target("normalize", NBX, ("cupy", ALLOC), "speedup", 3.0, ">= 3x faster than cupy"),
    Target("launch", ("nbx cuda, cupy arrays", ALLOC), None, "max_us", 15.0, "<= 15 us per call",
           ("f32",)),
    # Numba arrays: with out=, as Numba users call kernels; a fresh result is Numba's allocator
    # (about 25 us of its own, and deferred frees that synchronise), shown unjudged
    Target("launch", ("nbx cuda, numba arrays", OUT), None, "max_us", 15.0, "<= 15 us per call",
           ("f32",)),
)
PEERS = {"fma": "torch eager", "poly": "torch eager", "dot": "torch.dot", "rowsum": COPY,
         "colsum": COPY, "normalize": "cupy", "copy": COPY}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    case: str
    dtype: str
    impl: str
    out: str
    unit: str = "ms"                  # "ms": CUDA events; "us": host clock (launch case)
    shape: list = field(default_factory=list)
    nbytes: int = 0
    median: float | None = None
    p25: float | None = None
    p75: float | None = None
    min: float | None = None
    wall_ms: float | None = None
    gbps: float | None = None
    x_peer: float | None = None
    rel_err: float | None = None
    check: str = ""                   # "ok", "FAIL: ..." or "" (not checked)
    error: str = ""
    note: str = ""
    traceback: str = ""
    runs: int = 0
    sets: int = 1
    times: list = field(default_factory=list)
    targets: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS.get(self.case, self.case)

    @property
    def ok(self) -> bool:
        return not self.error and self.median is not None and self.check == "ok"


def summarize(row: Row, times: list[float]) -> None:
    """Median, quartiles and minimum of `times` (in row.unit) into the row."""
    ts = sorted(times)
    row.times = [round(t, 6) for t in times]
    row.runs = len(ts)
    row.median = statistics.median(ts)
    row.min = ts[0]
    q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0], ts[0], ts[0]]
    row.p25, row.p75 = q[0], q[2]
    if row.unit == "ms" and row.nbytes and row.median > 0:
        row.gbps = row.nbytes / (row.median * 1e-3) / 1e9


def find(rows: list[Row], case: str, dtype: str, impl: str, out: str | None = None):
    for r in rows:
        if r.case == case and r.dtype == dtype and r.impl == impl and (out is None or r.out == out):
            return r
    return None


def fill_peer_ratios(rows: list[Row], copy_gbps: float | None) -> None:
    """x peer for every timed row: speed relative to the case's named peer."""
    for r in rows:
        peer_name = PEERS.get(r.case)
        if r.median is None or peer_name is None:
            continue
        if peer_name == COPY:
            if copy_gbps and r.gbps:
                r.x_peer = r.gbps / copy_gbps
            continue
        peer = find(rows, r.case, r.dtype, peer_name, ALLOC)
        if peer is not None and peer.median:
            r.x_peer = peer.median / r.median


def evaluate_targets(rows: list[Row], copy_gbps: float | None, targets=TARGETS) -> list[dict]:
    """Judge every target whose case and dtype were run; attach each verdict to its row."""
    verdicts = []
    for t in targets:
        for dtype in t.dtypes:
            judged = find(rows, t.case, dtype, *t.impl)
            if judged is None:
                if any(r.case == t.case and r.dtype == dtype for r in rows):
                    verdicts.append(verdict(t, dtype, None, "MISS", f"no {t.impl[0]} row"))
                continue
            if not judged.ok:
                why = judged.error or judged.check or "not timed"
                v = verdict(t, dtype, None, "MISS", f"{t.impl[0]}: {why}"[:80])
            else:
                v = judge(t, judged, rows, dtype, copy_gbps)
            judged.targets.append(v)
            verdicts.append(v)
    return verdicts


def judge(t: Target, judged: Row, rows: list[Row], dtype: str, copy_gbps) -> dict:
    if t.kind == "max_us":
        return verdict(t, dtype, judged.median, "PASS" if judged.median <= t.factor else "MISS")
    if t.peer[0] == COPY:
        if not copy_gbps:
            return verdict(t, dtype, None, "n/a", "no copy measured")
        value = judged.gbps / copy_gbps
    else:
        peer = find(rows, t.case, dtype, *t.peer)
        if peer is None or peer.median is None or peer.error:
            why = peer.error if peer is not None else "not run"
            return verdict(t, dtype, None, "n/a", f"peer {t.peer[0]}: {why}"[:80])
        if t.kind == "within":
            value = judged.median / peer.median
            return verdict(t, dtype, value, "PASS" if value <= t.factor else "MISS")
        value = peer.median / judged.median        # "bw" and "speedup": same bytes, same ratio
    return verdict(t, dtype, value, "PASS" if value >= t.factor else "MISS")


def verdict(t: Target, dtype: str, value, status: str, note: str = "") -> dict:
    return {"case": t.case, "dtype": dtype, "impl": t.impl[0], "out": t.impl[1],
            "peer": t.peer[0] if t.peer else None, "target": t.text, "kind": t.kind,
            "factor": t.factor, "value": value, "status": status, "note": note}


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------

COLS = (("case", 14, "<"), ("dtype", 5, "<"), ("impl", 28, "<"), ("out", 5, "<"),
        ("median", 12, ">"), ("+-", 5, ">"), ("wall ms", 9, ">"), ("GB/s", 8, ">"),
        ("x peer", 6, ">"), ("check", 15, "<"), ("target", 36, "<"), ("", 4, "<"))


def _line(cells) -> str:
    return " ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, COLS)).rstrip()


def header_lines() -> list[str]:
    head = _line([name for name, _, _ in COLS])
    return [head, "-" * len(head)]


def value_text(v: float | None, unit: str) -> str:
    if v is None:
        return ""
    return f"{v:.3f} ms" if unit == "ms" else f"{v:.1f} us"


def target_text(v: dict) -> tuple[str, str]:
    value = v["value"]
    shown = "" if value is None else (f" ({value:.1f})" if v["kind"] == "max_us"
                                      else f" ({value:.2f}x)")
    note = f" [{v['note']}]" if v["note"] else ""
    return f"{v['target']}{shown}{note}", v["status"]


def format_row(r: Row) -> list[str]:
    spread = ""
    if r.median and r.p25 is not None:
        spread = f"{100 * (r.p75 - r.p25) / r.median:.0f}%"
    check = "" if r.rel_err is None else f"{r.rel_err:.1e} "
    check += "ok" if r.check == "ok" else ("FAIL" if r.check else "")
    first = ("", "")
    if r.targets:
        first = target_text(r.targets[0])
    if r.error:
        lead = [r.label, r.dtype, r.impl, r.out]
        return [_line(lead + ["ERROR: " + r.error[:110]])]
    cells = [r.label, r.dtype, r.impl, r.out, value_text(r.median, r.unit), spread,
             "" if r.wall_ms is None else f"{r.wall_ms:.3f}" + ("!" if r.note else ""),
             "" if r.gbps is None else f"{r.gbps:.0f}",
             "" if r.x_peer is None else f"{r.x_peer:.2f}", check, *first]
    lines = [_line(cells)]
    if r.check.startswith("FAIL"):
        lines.append(_line([""] * 9 + [r.check[:60]]))
    for v in r.targets[1:]:
        lines.append(_line([""] * 10 + list(target_text(v))))
    return lines


def summary_lines(verdicts: list[dict]) -> list[str]:
    lines = ["Targets (issue 4):"]
    for v in verdicts:
        text, status = target_text(v)
        judged = v["impl"] + ("" if v["out"] in ("", ALLOC) else f" {v['out']}")
        lines.append(f"  {status:<4} {LABELS.get(v['case'], v['case']):<14} {v['dtype']:<4} "
                     f"{judged:<24} {text}")
    met = sum(v["status"] == "PASS" for v in verdicts)
    missed = [f"{LABELS.get(v['case'], v['case'])} {v['dtype']}"
              for v in verdicts if v["status"] != "PASS"]
    missed = [f"{m} (x{missed.count(m)})" if missed.count(m) > 1 else m
              for m in dict.fromkeys(missed)]
    lines.append(f"{met}/{len(verdicts)} targets met"
                 + (f"; not met: {'; '.join(missed)}" if missed else ""))
    return lines


# ---------------------------------------------------------------------------------------------
# Array libraries: the base draws inputs, computes references, synchronises and times
# ---------------------------------------------------------------------------------------------

def numel(x) -> int:
    return math.prod(x.shape)          # torch's .size is a method


def result_dtype(x) -> str:
    return str(x.dtype).replace("torch.", "")


class CupyBase:
    name = "cupy"

    def __init__(self):
        import cupy
        self.xp = cupy
        self.xp.cuda.runtime.getDeviceCount()          # fail here, not in the first case

    def random(self, shape, dtype: str, seed: int):
        x = self.xp.random.default_rng(seed).random(shape, dtype=DTYPES[dtype])
        x *= 3
        x -= 1
        return x

    def empty(self, shape, dtype: str):
        return self.xp.empty(shape, dtype=DTYPES[dtype])

    def fill_nan(self, x):
        x.fill(np.nan)

    def adopt(self, obj):
        return self.xp.asarray(obj)

    def f64(self, x):
        return x.astype(self.xp.float64)

    def sum(self, x, axis=None):
        return self.xp.sum(x, axis=axis)

    def sin(self, x):
        return self.xp.sin(x)

    def sqrt(self, x):
        return self.xp.sqrt(x)

    def sync(self):
        self.xp.cuda.runtime.deviceSynchronize()

    def timer(self):
        return EventTimer(self.xp.cuda.Event(), self.xp.cuda.Event(),
                          lambda s, e: self.xp.cuda.get_elapsed_time(s, e),
                          self.xp.cuda.Stream.null)

    def l2_bytes(self) -> int:
        return int(self.xp.cuda.Device().attributes["L2CacheSize"])

    def gpu_info(self) -> dict:
        rt = self.xp.cuda.runtime
        p = rt.getDeviceProperties(self.xp.cuda.Device().id)
        name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
        return {"name": name, "cc": f"{p['major']}.{p['minor']}",
                "multiprocessors": p["multiProcessorCount"], "l2_bytes": p["l2CacheSize"],
                "memory_bytes": p["totalGlobalMem"], "cuda_runtime": rt.runtimeGetVersion(),
                "cuda_driver_api": rt.driverGetVersion()}


class TorchBase:
    name = "torch"

    def __init__(self):
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        self.xp = torch

    def random(self, shape, dtype: str, seed: int):
        g = self.xp.Generator(device="cuda")
        g.manual_seed(seed)
        dt = getattr(self.xp, {"f32": "float32", "f64": "float64"}[dtype])
        return self.xp.rand(shape, generator=g, device="cuda", dtype=dt) * 3 - 1

    def empty(self, shape, dtype: str):
        dt = getattr(self.xp, {"f32": "float32", "f64": "float64"}[dtype])
        return self.xp.empty(shape, dtype=dt, device="cuda")

    def fill_nan(self, x):
        x.fill_(float("nan"))

    def adopt(self, obj):
        if isinstance(obj, self.xp.Tensor):
            return obj
        if hasattr(obj, "__cuda_array_interface__"):
            return self.xp.as_tensor(obj, device="cuda")
        return self.xp.as_tensor(np.asarray(obj), device="cuda")

    def f64(self, x):
        return x.to(self.xp.float64)

    def sum(self, x, axis=None):
        return self.xp.sum(x) if axis is None else self.xp.sum(x, dim=axis)

    def sin(self, x):
        return self.xp.sin(x)

    def sqrt(self, x):
        return self.xp.sqrt(x)

    def sync(self):
        self.xp.cuda.synchronize()

    def timer(self):
        ev = functools.partial(self.xp.cuda.Event, enable_timing=True)
        return EventTimer(ev(), ev(), lambda s, e: s.elapsed_time(e), None)

    def l2_bytes(self) -> int:
        return int(getattr(self.xp.cuda.get_device_properties(0), "L2_cache_size", 50 << 20))

    def gpu_info(self) -> dict:
        p = self.xp.cuda.get_device_properties(0)
        return {"name": p.name, "cc": f"{p.major}.{p.minor}",
                "multiprocessors": p.multi_processor_count,
                "l2_bytes": getattr(p, "L2_cache_size", None), "memory_bytes": p.total_memory,
                "cuda_runtime": self.xp.version.cuda}


class NumpyBase:
    """--selftest only: the harness on the CPU, timed with a host clock."""
    name = "numpy"
    xp = np

    def random(self, shape, dtype: str, seed: int):
        return (np.random.default_rng(seed).random(shape) * 3 - 1).astype(DTYPES[dtype])

    def empty(self, shape, dtype: str):
        return np.empty(shape, dtype=DTYPES[dtype])

    def fill_nan(self, x):
        x.fill(np.nan)

    def adopt(self, obj):
        return np.asarray(obj)

    def f64(self, x):
        return x.astype(np.float64)

    def sum(self, x, axis=None):
        return np.sum(x, axis=axis)

    def sin(self, x):
        return np.sin(x)

    def sqrt(self, x):
        return np.sqrt(x)

    def sync(self):
        pass

    def timer(self):
        return HostTimer()

    def l2_bytes(self) -> int:
        return 32 << 20

    def gpu_info(self) -> dict:
        return {"name": "none (selftest on the CPU)"}


class EventTimer:
    """Start/stop events recorded on one stream (None: the library's current stream)."""

    def __init__(self, start, stop, elapsed_ms, stream):
        self.start, self.stop, self.elapsed_ms, self.stream = start, stop, elapsed_ms, stream

    def _record(self, event):
        if self.stream is None:
            event.record()
        else:
            event.record(self.stream)

    def begin(self):
        self._record(self.start)

    def end_ms(self) -> float:
        self._record(self.stop)
        self.stop.synchronize()
        return float(self.elapsed_ms(self.start, self.stop))


class HostTimer:
    def begin(self):
        self.t0 = time.perf_counter()

    def end_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1e3


def make_base(prefer: str):
    errors = []
    for name in ((prefer,) if prefer != "auto" else ("cupy", "torch")):
        try:
            return {"cupy": CupyBase, "torch": TorchBase}[name]()
        except Exception as e:      # noqa: BLE001 (reported, then the next library is tried)
            errors.append(f"{name}: {describe(e)}")
    raise SystemExit("no CUDA array library to draw inputs and time with: " + "; ".join(errors))


def release(base) -> None:
    """Return pooled device memory between cases."""
    gc.collect()
    if "cupy" in sys.modules and base.name != "numpy":
        cp = sys.modules["cupy"]
        cp.get_default_memory_pool().free_all_blocks()
    torch = sys.modules.get("torch")
    if torch is not None and base.name != "numpy" and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def poison_pools(base, shape, dtype: str) -> None:
    """Free a NaN-filled block of the result's size into the pools a fresh result comes from."""
    if base.name == "numpy":
        return
    if "cupy" in sys.modules:
        cp = sys.modules["cupy"]
        x = cp.full(shape, np.nan, dtype=DTYPES[dtype])
        del x
    torch = sys.modules.get("torch")
    if torch is not None:
        dt = getattr(torch, {"f32": "float32", "f64": "float64"}[dtype])
        x = torch.full(tuple(shape), float("nan"), dtype=dt, device="cuda")
        del x


def convert(lib: str, x):
    """A zero-copy view of device array `x` as library `lib`'s array."""
    if lib == "cupy":
        import cupy
        return cupy.asarray(x)
    if lib == "torch":
        import torch
        return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, device="cuda")
    if lib == "numba":
        need_numba_cuda()
        return cuda.as_cuda_array(x)
    if lib == "numpy":
        return np.asarray(x)
    raise ValueError(f"unknown array library {lib!r}")


class Views:
    """One input set and the shared output buffer, converted to each library once."""

    def __init__(self, inputs, out):
        self.inputs, self.out, self._cache = inputs, out, {}

    def get(self, lib: str):
        if lib not in self._cache:
            self._cache[lib] = (tuple(convert(lib, x) for x in self.inputs),
                                None if self.out is None else convert(lib, self.out))
        return self._cache[lib]


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------

def check(base, result, ref, dtype: str) -> tuple[float | None, str | None]:
    """(relative error, problem or None) of `result` against the float64 reference `ref`."""
    got = base.adopt(result)
    if tuple(got.shape) != tuple(ref.shape):
        if numel(got) == 1 and numel(ref) == 1:          # a 1-element array for a scalar result
            got = got.reshape(tuple(ref.shape))
        else:
            return None, f"shape {tuple(got.shape)}, expected {tuple(ref.shape)}"
    want = np.dtype(DTYPES[dtype]).name
    dt = result_dtype(got)
    got = base.f64(got)
    diff = got - ref
    num = math.sqrt(float(base.sum(diff * diff)))
    den = math.sqrt(float(base.sum(ref * ref)))
    err = num / den if den > 0 else num
    if dt != want:
        return err, f"result dtype {dt}, expected {want}"
    if not err <= TOL[dtype]:                         # NaN fails
        return err, f"rel err {err:.2e} > {TOL[dtype]:.0e}" if err == err else "NaN in result"
    return err, None


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

def time_events(base, calls: list[Callable], repeat: int, lead: bool = True) -> list[float]:
    """Milliseconds of each timed call (events), rotating over `calls` (one per input set)."""
    timer = base.timer()
    n = len(calls)
    times = []
    for r in range(repeat):
        if lead:
            calls[(r - 1) % n]()
        timer.begin()
        calls[r % n]()
        times.append(timer.end_ms())
    return times


def time_wall(base, calls: list[Callable], k: int) -> float:
    """Host-clock milliseconds per call over k back-to-back calls between device syncs."""
    base.sync()
    t0 = time.perf_counter()
    for r in range(k):
        calls[r % len(calls)]()
    base.sync()
    return (time.perf_counter() - t0) / k * 1e3


def time_host(base, call: Callable, calls: int, rounds: int) -> list[float]:
    """Microseconds per call: `calls` calls, one synchronisation, per round."""
    for _ in range(min(calls, 200)):
        call()
    base.sync()
    per = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        base.sync()
        per.append((time.perf_counter() - t0) / calls * 1e6)
    return per


class gc_paused:
    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


def describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------------------------------------
# Implementations. An Impl takes library `lib`'s views of the inputs and output buffer and makes
# a zero-argument call; `out` says whether that call writes the buffer or allocates its result.
# ---------------------------------------------------------------------------------------------

@dataclass
class Impl:
    name: str
    lib: str
    out: bool
    make: Callable[[tuple, Any], Callable[[], Any]]


@dataclass
class Case:
    key: str
    dtype: str
    shapes: list[tuple]               # input shapes
    out_shape: tuple
    nbytes: int
    reference: Callable               # reference(base, *float64 inputs) -> float64 result
    impls: list[Impl]


_NBX: dict[str, Any] = {}


def nbx_module(target: str):
    """examples/gpu.nbx loaded for `target` once; a load error is kept and raised again."""
    if target not in _NBX:
        try:
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            import nbx
            text = NBX_FILE.read_text()
            if target == "cuda-ufunc":   # a ufunc is element-wise: fma and poly only
                text = text[:text.index("kernel dot(")]
            _NBX[target] = nbx.compile(text, target=target, filename=str(NBX_FILE))
        except Exception as e:      # noqa: BLE001
            _NBX[target] = e
    mod = _NBX[target]
    if isinstance(mod, Exception):
        raise mod
    return mod


def nbx_impl(name: str, target: str, kernel: str, lib: str = "cupy", out: bool = False) -> Impl:
    def make(ins, o):
        k = getattr(nbx_module(target), kernel)
        if out:
            return lambda: k(*ins, out=o)
        return lambda: k(*ins)
    return Impl(name, lib, out, make)


def plain(name: str, lib: str, fn: Callable, out: bool = False) -> Impl:
    """fn(*inputs) (or fn(*inputs, out)) with the library's arrays."""
    def make(ins, o):
        if out:
            return lambda: fn(*ins, o)
        return lambda: fn(*ins)
    return Impl(name, lib, out, make)


@functools.cache
def cupy_kernels() -> dict:
    import cupy as cp

    def fma(a, b, c):
        return a * b + c

    def poly(a, b, c):
        return 2 * a + 3 * b * c - cp.sin(a)

    def dot(a, b):
        return cp.sum(a * b)

    return {
        "ek fma": cp.ElementwiseKernel("T a, T b, T c", "T z", "z = a * b + c", "nbxb_fma"),
        "ek poly": cp.ElementwiseKernel("T a, T b, T c", "T z",
                                        "z = (T)2 * a + (T)3 * b * c - sin(a)", "nbxb_poly"),
        "rk dot": cp.ReductionKernel("T x, T y", "T z", "x * y", "a + b", "z = a", "0",
                                     "nbxb_dot"),
        "fuse fma": cp.fuse()(fma), "fuse poly": cp.fuse()(poly), "fuse dot": cp.fuse()(dot),
    }


def need_numba_cuda() -> None:
    if cuda is None:
        raise ImportError("numba-cuda is not installed")


@functools.cache
def sm_count() -> int:
    need_numba_cuda()
    return cuda.get_current_device().MULTIPROCESSOR_COUNT


def grid(n: int, blocks_per_sm: int) -> int:
    return max(1, min((n + TPB - 1) // TPB, sm_count() * blocks_per_sm))


@functools.cache
def numba_kernels(dtype: str) -> dict:
    """Hand-written grid-stride kernels, as a Numba user writes them. Constants are typed
    (np.float32(2) for f32) so that Numba does not widen f32 arithmetic to f64."""
    import numba
    need_numba_cuda()
    nbt = getattr(numba, np.dtype(DTYPES[dtype]).name)
    two, three, zero = (DTYPES[dtype](v) for v in (2, 3, 0))

    def fma(a, b, c, out):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = a[i] * b[i] + c[i]

    def poly(a, b, c, out):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = two * a[i] + three * b[i] * c[i] - math.sin(a[i])

    def dot(a, b, res):
        # per-thread partial sums, a shared-memory tree in the block, one atomic per block
        buf = cuda.shared.array(TPB, nbt)
        tid = cuda.threadIdx.x
        acc = zero
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            acc += a[i] * b[i]
        buf[tid] = acc
        cuda.syncthreads()
        s = TPB // 2
        while s > 0:
            if tid < s:
                buf[tid] += buf[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            cuda.atomic.add(res, 0, buf[0])

    def clear(res):
        res[0] = zero

    return {"fma": cuda.jit(fma), "poly": cuda.jit(poly), "dot": cuda.jit(dot),
            "clear": cuda.jit(clear)}


@functools.cache
def numba_vectorized(dtype: str, which: str):
    """Numba's own cuda.vectorize of the same scalar function as nbx's cuda-ufunc."""
    need_numba_cuda()
    t = np.dtype(DTYPES[dtype]).name
    two, three = DTYPES[dtype](2), DTYPES[dtype](3)

    def fma(a, b, c):
        return a * b + c

    def poly(a, b, c):
        return two * a + three * b * c - math.sin(a)

    return cuda.vectorize([f"{t}({t}, {t}, {t})"])({"fma": fma, "poly": poly}[which])


def numba_elementwise(dtype: str, which: str, name="numba cuda.jit (hand)") -> Impl:
    def make(ins, o):
        launch = numba_kernels(dtype)[which][grid(o.shape[0], 32), TPB]   # config cached
        a, b, c = ins

        def call():
            launch(a, b, c, o)
            return o
        return call
    return Impl(name, "numba", True, make)


def numba_dot(dtype: str) -> Impl:
    def make(ins, o):
        ks = numba_kernels(dtype)
        a, b = ins
        res = cuda.device_array(1, dtype=DTYPES[dtype])
        clear, launch = ks["clear"][1, 1], ks["dot"][grid(a.shape[0], 8), TPB]

        def call():
            clear(res)
            launch(a, b, res)
            return res
        return call
    return Impl("numba block reduction", "numba", False, make)


def numba_vectorize_impl(dtype: str, which: str, out: bool) -> Impl:
    def make(ins, o):
        f = numba_vectorized(dtype, which)
        if out:
            return lambda: f(*ins, out=o)
        return lambda: f(*ins)
    return Impl("numba cuda.vectorize", "numba", out, make)


def cupy_memcpy(a, o):
    o.data.copy_from_device_async(a.data, a.nbytes)
    return o


def cupy_assign(a, o):
    o[...] = a
    return o


def torch_copy(a, o):
    return o.copy_(a)


def cupy_normalize(x):
    return (x - x.mean()) / x.std()


def torch_normalize(x):
    return (x - x.mean()) / x.std(correction=0)


def elementwise_impls(dtype: str, which: str) -> list[Impl]:
    def ck(key):
        return lambda *xs: cupy_kernels()[key](*xs)

    def torch_fma(a, b, c):
        import torch
        return torch.addcmul(c, a, b)

    def torch_fma_out(a, b, c, o):
        import torch
        return torch.addcmul(c, a, b, out=o)

    def torch_poly(a, b, c):
        import torch
        return 2 * a + 3 * b * c - torch.sin(a)

    def cupy_poly(a, b, c):
        import cupy
        return 2 * a + 3 * b * c - cupy.sin(a)

    impls = [
        nbx_impl("nbx cuda", "cuda", which),
        nbx_impl("nbx cuda", "cuda", which, out=True),
        nbx_impl("nbx cuda-ufunc", "cuda-ufunc", which),
        nbx_impl("nbx cuda-ufunc", "cuda-ufunc", which, out=True),
        plain("cupy unfused", "cupy", (lambda a, b, c: a * b + c) if which == "fma" else cupy_poly),
        plain("cupy.fuse", "cupy", ck(f"fuse {which}")),
        plain("cupy ElementwiseKernel", "cupy", ck(f"ek {which}")),
        plain("cupy ElementwiseKernel", "cupy", ck(f"ek {which}"), out=True),
        plain("torch eager", "torch", torch_fma if which == "fma" else torch_poly),
    ]
    if which == "fma":
        impls.append(plain("torch eager", "torch", torch_fma_out, out=True))
    impls += [numba_elementwise(dtype, which),
              numba_vectorize_impl(dtype, which, out=False),
              numba_vectorize_impl(dtype, which, out=True)]
    return impls


def build_cases(keys, dtypes, n: int, matrix: tuple[int, int]) -> list[Case]:
    """The timed cases (launch is separate), in the order they run: copy first."""
    cases = []
    if "copy" in keys:
        cases.append(Case("copy", "f32", [(n,)], (n,), 2 * n * 4, lambda B, a: a, [
            plain("cudaMemcpy d2d (cupy)", "cupy", cupy_memcpy, out=True),
            plain("cupy b[...] = a", "cupy", cupy_assign, out=True),
            plain("torch copy_", "torch", torch_copy, out=True)]))
    m, k = matrix
    for dtype in dtypes:
        s = np.dtype(DTYPES[dtype]).itemsize
        for which in ("fma", "poly"):
            if which in keys:
                ref = ((lambda B, a, b, c: a * b + c) if which == "fma"
                       else (lambda B, a, b, c: 2 * a + 3 * b * c - B.sin(a)))
                cases.append(Case(which, dtype, [(n,)] * 3, (n,), 4 * n * s, ref,
                                  elementwise_impls(dtype, which)))
        if "dot" in keys:
            cases.append(Case("dot", dtype, [(n,)] * 2, (), 2 * n * s + s,
                              lambda B, a, b: B.sum(a * b), [
                nbx_impl("nbx cuda", "cuda", "dot"),
                plain("torch.dot", "torch", lambda a, b: sys.modules["torch"].dot(a, b)),
                plain("cupy.dot", "cupy", lambda a, b: sys.modules["cupy"].dot(a, b)),
                plain("cupy ReductionKernel", "cupy", lambda a, b: cupy_kernels()["rk dot"](a, b)),
                plain("cupy.fuse sum", "cupy", lambda a, b: cupy_kernels()["fuse dot"](a, b)),
                numba_dot(dtype)]))
        for key, axis, oshape in (("rowsum", 1, (m,)), ("colsum", 0, (k,))):
            if key in keys:
                cases.append(Case(key, dtype, [(m, k)], oshape, (m * k + oshape[0]) * s,
                                  functools.partial(lambda B, A, ax: B.sum(A, ax), ax=axis), [
                    nbx_impl("nbx cuda", "cuda", key),
                    nbx_impl("nbx cuda", "cuda", key, out=True),
                    plain("torch.sum", "torch", functools.partial(
                        lambda A, ax: sys.modules["torch"].sum(A, dim=ax), ax=axis)),
                    plain("cupy.sum", "cupy", functools.partial(
                        lambda A, ax: sys.modules["cupy"].sum(A, axis=ax), ax=axis))]))
        if "normalize" in keys:
            def ref_normalize(B, x):
                d = x - B.sum(x) / numel(x)
                return d / B.sqrt(B.sum(d * d) / numel(x))
            cases.append(Case("normalize", dtype, [(n,)], (n,), 2 * n * s, ref_normalize, [
                nbx_impl("nbx cuda", "cuda", "normalize"),
                nbx_impl("nbx cuda", "cuda", "normalize", out=True),
                plain("cupy", "cupy", cupy_normalize),
                plain("torch eager", "torch", torch_normalize)]))
    return cases


def launch_impls() -> list[Impl]:
    def torch_fma(a, b, c):
        return sys.modules["torch"].addcmul(c, a, b)

    return [
        nbx_impl("nbx cuda, cupy arrays", "cuda", "fma"),
        nbx_impl("nbx cuda, cupy arrays", "cuda", "fma", out=True),
        nbx_impl("nbx cuda, numba arrays", "cuda", "fma", lib="numba"),
        nbx_impl("nbx cuda, numba arrays", "cuda", "fma", lib="numba", out=True),
        nbx_impl("nbx cuda, torch tensors", "cuda", "fma", lib="torch"),
        nbx_impl("nbx cuda-ufunc, cupy arrays", "cuda-ufunc", "fma"),
        plain("cupy ElementwiseKernel", "cupy", lambda *xs: cupy_kernels()["ek fma"](*xs)),
        plain("torch addcmul", "torch", torch_fma),
        numba_elementwise("f32", "fma", "numba cuda.jit, numba arrays"),
        Impl("numba cuda.jit, cupy arrays", "cupy", True,
             numba_elementwise("f32", "fma").make),
    ]


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

@dataclass
class Options:
    repeat: int = 20
    warmup: int = 3
    budget_s: float = 4.0             # per implementation: fewer repeats for slow ones
    calls: int = 2000
    rounds: int = 5
    debug: bool = False
    progress: bool = True


def note(opts: Options, text: str) -> None:
    if opts.progress:
        print(text, file=sys.stderr, flush=True)


def run_case(base, opts: Options, case: Case, seed: int) -> list[Row]:
    def row(impl: Impl | None = None) -> Row:
        return Row(case.key, case.dtype, impl.name if impl else "(inputs)",
                   (OUT if impl.out else ALLOC) if impl else "",
                   shape=list(case.shapes[0]), nbytes=case.nbytes)

    l2 = base.l2_bytes()
    nsets = 1 if case.nbytes >= 2 * l2 else 3
    try:
        sets = [[base.random(s, case.dtype, seed + 7 * j + i) for i, s in enumerate(case.shapes)]
                for j in range(nsets)]
        out = base.empty(case.out_shape, case.dtype)
        ref = case.reference(base, *[base.f64(x) for x in sets[0]])
        base.sync()
    except Exception as e:      # noqa: BLE001
        r = row()
        r.error, r.traceback = describe(e), traceback.format_exc()
        return [r]
    views = [Views(s, out) for s in sets]
    rows = []
    for impl in case.impls:
        note(opts, f"[{case.key} {case.dtype}] {impl.name} ({OUT if impl.out else ALLOC})")
        r = row(impl)
        r.sets = nsets
        try:
            measure(base, opts, case, impl, views, out, ref, r)
        except Exception as e:      # noqa: BLE001
            r.error, r.traceback = describe(e), traceback.format_exc()
            if opts.debug:
                traceback.print_exc()
            try:
                base.sync()
            except Exception:       # noqa: BLE001 (a sticky CUDA error: later rows show it)
                pass
        rows.append(r)
    del views, sets, out, ref
    release(base)
    return rows


def measure(base, opts: Options, case: Case, impl: Impl, views, out, ref, r: Row) -> None:
    calls = []
    for v in views:
        ins, o = v.get(impl.lib)
        calls.append(impl.make(ins, o))
    # the checked call (also the first: it compiles), on a poisoned output
    if impl.out:
        base.fill_nan(out)
    else:
        poison_pools(base, case.out_shape, case.dtype)
    base.sync()
    result = calls[0]()
    base.sync()
    r.rel_err, problem = check(base, out if impl.out else result, ref, case.dtype)
    r.check = "ok" if problem is None else f"FAIL: {problem}"
    del result
    with gc_paused():
        t0 = time.perf_counter()
        for i in range(opts.warmup):
            calls[i % len(calls)]()
        base.sync()
        est = (time.perf_counter() - t0) / max(1, opts.warmup)
        repeat = max(3, min(opts.repeat, int(opts.budget_s / max(est, 1e-6) / 2)))
        times = time_events(base, calls, repeat)
        r.wall_ms = time_wall(base, calls, min(repeat, 10))
    summarize(r, times)
    if r.wall_ms and r.median < 0.6 * r.wall_ms:
        r.note = "events < 0.6x wall: host-bound, or work off the timed stream"


def run_launch(base, opts: Options, seed: int) -> list[Row]:
    n = 1024
    rows = []
    ins = [base.random((n,), "f32", seed + i) for i in range(3)]
    out = base.empty((n,), "f32")
    ref = base.f64(ins[0]) * base.f64(ins[1]) + base.f64(ins[2])
    views = Views(ins, out)
    for impl in launch_impls():
        note(opts, f"[launch f32] {impl.name} ({OUT if impl.out else ALLOC})")
        r = Row("launch", "f32", impl.name, OUT if impl.out else ALLOC, unit="us", shape=[n],
                nbytes=4 * n * 4)
        try:
            call = impl.make(*views.get(impl.lib))
            if impl.out:
                base.fill_nan(out)
            base.sync()
            result = call()
            base.sync()
            r.rel_err, problem = check(base, out if impl.out else result, ref, "f32")
            r.check = "ok" if problem is None else f"FAIL: {problem}"
            del result
            with gc_paused():
                summarize(r, time_host(base, call, opts.calls, opts.rounds))
        except Exception as e:      # noqa: BLE001
            r.error, r.traceback = describe(e), traceback.format_exc()
            if opts.debug:
                traceback.print_exc()
        rows.append(r)
    release(base)
    return rows


def best_copy_gbps(rows: list[Row]) -> float | None:
    speeds = [r.gbps for r in rows if r.case == "copy" and r.ok and r.gbps]
    return max(speeds) if speeds else None


def run_all(base, opts: Options, keys, dtypes, n, matrix, emit=print, on_case=None):
    """Run the cases; print each case's block as it completes. Returns (rows, verdicts)."""
    rows: list[Row] = []
    for line in header_lines():
        emit(line)
    jobs: list[Any] = build_cases(keys, dtypes, n, matrix)
    if "launch" in keys:
        jobs.append("launch")
    for i, job in enumerate(jobs):
        seed = 1000 * (i + 1)
        new = run_launch(base, opts, seed) if job == "launch" else run_case(base, opts, job, seed)
        rows += new
        copy = best_copy_gbps(rows)
        fill_peer_ratios(new, copy)
        evaluate_targets(new, copy)
        for r in new:
            for line in format_row(r):
                emit(line)
        emit(header_lines()[1])
        if on_case is not None:
            on_case(rows)
    for r in rows:
        r.targets = []
    verdicts = evaluate_targets(rows, best_copy_gbps(rows))
    verdicts.sort(key=lambda v: (CASES.index(v["case"]), v["dtype"]))   # stable: target order
    return rows, verdicts


# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------

PACKAGES = ("numpy", "numba", "numba-cuda", "llvmlite", "cupy-cuda13x", "cupy-cuda12x", "cupy",
            "torch", "cuda-bindings", "cuda-core", "nbx")


def machine_info(base) -> dict:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "cpu": cpu_name(), "cpus": os.cpu_count(), "loadavg": loadavg(),
                            "array_base": base.name, "argv": sys.argv[1:]}
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    for mod in ("numpy", "numba", "numba_cuda", "cupy", "torch", "nbx"):   # what got imported
        if mod in sys.modules:
            versions[f"{mod} (imported)"] = getattr(sys.modules[mod], "__version__", "?")
    info["versions"] = versions
    try:
        info["gpu"] = base.gpu_info()
    except Exception as e:      # noqa: BLE001
        info["gpu"] = {"error": describe(e)}
    info["nvidia_smi"] = nvidia_smi()
    info["env"] = {k: v for k, v in os.environ.items()
                   if re.match(r"(NUMBA_|CUPY_|PYTORCH_|CUDA_|NBX_)", k)}
    return info


def nvidia_smi() -> str:
    query = ("name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,"
             "temperature.gpu,power.draw,pstate")
    try:
        p = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        return (p.stdout or p.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable: {describe(e)}"


def header_text(info: dict, n: int, matrix, opts: Options) -> list[str]:
    gpu = info.get("gpu", {})
    v = info["versions"]
    lines = [
        f"nbx GPU benchmark: {gpu.get('name', '?')} (cc {gpu.get('cc', '?')}, "
        f"{gpu.get('multiprocessors', '?')} SMs, L2 {fmt_bytes(gpu.get('l2_bytes'))}); "
        f"nvidia-smi: {info['nvidia_smi']}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"n = {n:,} elements ({fmt_bytes(n * 4)} f32), matrix {matrix[0]} x {matrix[1]}; "
        f"median of up to {opts.repeat} event-timed calls after {opts.warmup} warm-ups; "
        f"inputs/refs through {info['array_base']}",
        "median: CUDA events, one lead call before each timed call (device time of back-to-back "
        "calls); +-: interquartile range / median; wall: host clock per call between syncs "
        "(! = events under 0.6x wall: host-bound, or work off the timed stream)",
        "GB/s: inputs read once + outputs written once; x peer: speed relative to the issue's "
        "peer (fma/poly: torch eager; dot: torch.dot; matrix sums and copy: best copy; "
        "normalize: cupy); out: alloc = allocates its result, out= = preallocated output",
        f"check: ||out - ref|| / ||ref|| vs a float64 reference on the device (f32 <= "
        f"{TOL['f32']:g}, f64 <= {TOL['f64']:g}); outputs poisoned with NaN first",
    ]
    return lines


def fmt_bytes(b) -> str:
    if not b:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return str(b)


# ---------------------------------------------------------------------------------------------
# Small checked runs (compute-sanitizer) and the CPU self-test
# ---------------------------------------------------------------------------------------------

SMOKE_N = (0, 1, 1000, 4099, (1 << 17) + 3)
SMOKE_MATRIX = ((1, 1), (33, 257), (5, 4099), (1000, 3))


def smoke_normalize(B, x):
    d = x - B.sum(x) / numel(x)
    return d / B.sqrt(B.sum(d * d) / numel(x))


def smoke(base, dtypes, libs=("cupy", "numba")) -> int:
    """Each nbx kernel once on small odd shapes, checked against the f64 reference."""
    if base.name == "cupy":
        base.xp.cuda.set_allocator(None)     # plain cudaMalloc: memcheck sees every bound
    refs = {
        "fma": (3, lambda B, a, b, c: a * b + c),
        "poly": (3, lambda B, a, b, c: 2 * a + 3 * b * c - B.sin(a)),
        "dot": (2, lambda B, a, b: B.sum(a * b)),
        "normalize": (1, smoke_normalize),
    }
    failures = total = 0
    for target in ("cuda", "cuda-ufunc"):
        for dtype in dtypes:
            jobs = []
            for kernel, (nin, ref) in refs.items():
                if target == "cuda-ufunc" and kernel not in ("fma", "poly"):
                    continue
                for n in SMOKE_N:
                    if n < 2 and kernel == "normalize":      # std 0: 0/0
                        continue
                    jobs.append((kernel, [(n,)] * nin, ref))
            if target == "cuda":
                for m, k in SMOKE_MATRIX:
                    jobs.append(("rowsum", [(m, k)], lambda B, A: B.sum(A, 1)))
                    jobs.append(("colsum", [(m, k)], lambda B, A: B.sum(A, 0)))
            for kernel, shapes, ref in jobs:
                ins = [base.random(s, dtype, 17 + i) for i, s in enumerate(shapes)]
                want = ref(base, *[base.f64(x) for x in ins])
                for lib in libs:
                    total += 1
                    where = f"{target:<10} {dtype} {kernel:<9} {str(shapes[0]):<12} {lib:<6}"
                    try:
                        k = getattr(nbx_module(target), kernel)
                        got = k(*[convert(lib, x) for x in ins])
                        base.sync()
                        err, problem = check(base, got, want, dtype)
                    except Exception as e:      # noqa: BLE001
                        err, problem = None, describe(e)
                    if problem is not None:
                        failures += 1
                    shown = "" if err is None else f"{err:.1e}"
                    print(f"{where} {shown:>8} {'ok' if problem is None else 'FAIL ' + problem}")
    print(f"smoke: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def selftest() -> int:
    """The harness on the CPU: sizes, checks, fake implementations, targets, table, JSON."""
    assert parse_size("2^27") == parse_size("2**27") == 1 << 27
    assert parse_size("1e6") == 1_000_000 and parse_size("4096") == 4096
    assert matrix_for(1 << 27) == (32768, 4096)
    assert matrix_for(1 << 22)[1] == 4096 and matrix_for(1000) == (62, 16)
    B = NumpyBase()
    ref = np.arange(1.0, 11.0)
    assert check(B, ref.astype(np.float32), ref, "f32") == (0.0, None)
    bad = ref.astype(np.float32)
    bad[3] = np.nan
    assert check(B, bad, ref, "f32")[1] == "NaN in result"
    assert "dtype" in check(B, ref, ref, "f32")[1]
    assert "shape" in check(B, ref[:5], ref, "f64")[1]
    assert check(B, np.array([2.0]), np.array(2.0), "f64") == (0.0, None)
    assert "rel err" in check(B, ref * (1 + 1e-9), ref, "f64")[1]

    # fake implementations through the real run_case: good, slow, unwritten, failing
    def slow_fma(a, b, c):
        for _ in range(3):
            r = a * b + c
        return r

    def unwritten(a, b, c, o):
        return o

    def broken(a, b, c):
        raise ImportError("No module named 'cupy'")

    def ref_fma(B, a, b, c):
        return a * b + c

    fakes = [plain("nbx cuda", "numpy", lambda a, b, c: a * b + c),
             plain("nbx cuda", "numpy", lambda a, b, c, o: np.add(a * b, c, out=o), out=True),
             plain("torch eager", "numpy", slow_fma),
             plain("cupy unfused", "numpy", unwritten, out=True),
             plain("cupy unfused", "numpy", broken)]
    opts = Options(repeat=5, warmup=1, progress=False)
    rows = run_case(B, opts, Case("fma", "f32", [(5000,)] * 3, (5000,), 4 * 5000 * 4,
                                  ref_fma, fakes), 1)
    by = {(r.impl, r.out): r for r in rows}
    assert by[("nbx cuda", ALLOC)].ok and by[("nbx cuda", OUT)].ok
    assert by[("cupy unfused", OUT)].check == "FAIL: NaN in result"
    assert by[("cupy unfused", ALLOC)].error.startswith("ImportError")
    fill_peer_ratios(rows, None)
    assert by[("nbx cuda", ALLOC)].x_peer is not None
    # targets on fake timings
    fake = [Row("fma", "f32", "nbx cuda", ALLOC, median=1.0, gbps=400.0, check="ok"),
            Row("fma", "f32", "torch eager", ALLOC, median=0.96, gbps=417.0, check="ok"),
            Row("fma", "f32", "cupy unfused", ALLOC, median=2.0, gbps=200.0, check="ok"),
            Row("fma", "f32", "nbx cuda-ufunc", OUT, median=1.2, check="ok"),
            Row("fma", "f32", "numba cuda.vectorize", OUT, error="CudaSupportError: no GPU"),
            Row("rowsum", "f32", "nbx cuda", ALLOC, median=1.0, gbps=3700.0, check="ok"),
            Row("dot", "f32", "nbx cuda", ALLOC, median=1.0, check="FAIL: NaN in result"),
            Row("dot", "f32", "torch.dot", ALLOC, median=1.0, check="ok"),
            Row("launch", "f32", "nbx cuda, cupy arrays", ALLOC, unit="us", median=9.0,
                check="ok"),
            Row("launch", "f32", "nbx cuda, numba arrays", ALLOC, unit="us", median=31.0,
                check="ok")]
    verdicts = evaluate_targets(fake, 4300.0)

    def status(case, impl, text):
        found = [v["status"] for v in verdicts
                 if v["case"] == case and v["impl"] == impl and v["target"].startswith(text)]
        return found[0] if found else None

    assert status("fma", "nbx cuda", ">= 0.95x") == "PASS", verdicts   # 0.96x torch
    assert status("fma", "nbx cuda", ">= 1.9x") == "PASS"              # 2x cupy unfused
    assert status("fma", "nbx cuda-ufunc", "within") == "n/a"          # peer errored
    assert status("rowsum", "nbx cuda", ">= 85%") == "PASS"            # 3700/4300 = 0.86
    assert status("dot", "nbx cuda", ">= 0.9x") == "MISS"              # wrong result
    assert status("launch", "nbx cuda, cupy arrays", "<= 15") == "PASS"
    assert status("launch", "nbx cuda, numba arrays", "<= 15") == "MISS"
    assert status("colsum", "nbx cuda", ">= 85%") is None              # case not run
    # the real case list on the CPU: every GPU row must become an error row, not a crash
    keys = [k for k in CASES if k != "launch"]
    real_rows, real_verdicts = run_all(B, Options(repeat=3, warmup=1, progress=False), keys,
                                       ["f32"], 4096, (64, 64))
    assert real_rows and all(r.error for r in real_rows), [r for r in real_rows if not r.error]
    assert len(real_verdicts) == 10 and all(v["status"] == "MISS" for v in real_verdicts)
    for line in [*header_lines(), *(ln for r in rows + fake for ln in format_row(r)),
                 *summary_lines(verdicts)]:
        print(line)
    text = json.dumps({"rows": [asdict(r) for r in rows + fake + real_rows]}, default=str)
    assert json.loads(text)["rows"][0]["case"] == "fma"
    print("selftest: ok")
    return 0


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """An element count: 134217728, 2^27, 2**27 or 1e6."""
    t = text.strip().replace("**", "^")
    if "^" in t:
        b, e = t.split("^", 1)
        return int(b) ** int(e)
    v = float(t)
    if v < 0 or v != int(v):
        raise argparse.ArgumentTypeError(f"not an element count: {text!r}")
    return int(v)


def matrix_for(n: int) -> tuple[int, int]:
    """m x k with about n elements: k = 4096 (the issue's 32768 x 4096 at 2^27) where n allows."""
    k = 4096 if n >= 4096 * 64 else max(1, 2 ** int(math.log2(max(1, math.isqrt(n)))))
    return max(1, n // k), k


def parse_matrix(text: str) -> tuple[int, int]:
    m, k = re.split(r"[xX,]", text)
    return parse_size(m), parse_size(k)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 1)[1])
    ap.add_argument("--size", type=parse_size, default=None,
                    help="elements per vector (default 2^27; --quick: 2^22)")
    ap.add_argument("--matrix", type=parse_matrix, default=None,
                    help="m x k of the matrix sums (default: 4096 columns, --size elements)")
    ap.add_argument("--dtypes", default="f32,f64", help="comma list of f32, f64")
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma list of {', '.join(CASES)} (rowsum/colsum add copy)")
    ap.add_argument("--repeat", type=int, default=None, help="timed calls per row (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up calls (default 3)")
    ap.add_argument("--calls", type=int, default=None,
                    help="launch case: calls per round (default 2000)")
    ap.add_argument("--rounds", type=int, default=5, help="launch case: rounds (default 5)")
    ap.add_argument("--quick", action="store_true", help="2^22 elements, 5 repeats, 300 calls")
    ap.add_argument("--base", choices=("auto", "cupy", "torch"), default="auto",
                    help="library for inputs, references and events (default: cupy, else torch)")
    ap.add_argument("--json", metavar="PATH", help="write every number as JSON (after each case)")
    ap.add_argument("--smoke", action="store_true",
                    help="run each nbx kernel once on small odd shapes and check it; no timing")
    ap.add_argument("--selftest", action="store_true", help="CPU-only test of the harness")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--debug", action="store_true", help="print tracebacks of failing rows")
    a = ap.parse_args(argv)

    if a.selftest:
        return selftest()
    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    keys = [c.strip() for c in a.cases.split(",") if c.strip()]
    for bad in [d for d in dtypes if d not in DTYPES] + [c for c in keys if c not in CASES]:
        ap.error(f"unknown dtype or case {bad!r}")
    if ("rowsum" in keys or "colsum" in keys) and "copy" not in keys:
        keys.insert(0, "copy")
    n = a.size or (1 << 22 if a.quick else 1 << 27)
    matrix = a.matrix or matrix_for(n)
    opts = Options(repeat=a.repeat or (5 if a.quick else 20), warmup=a.warmup,
                   calls=a.calls or (300 if a.quick else 2000),
                   rounds=a.rounds if not a.quick else min(a.rounds, 3),
                   debug=a.debug, progress=not a.quiet)

    base = make_base(a.base)
    if a.smoke:
        return smoke(base, dtypes)
    info = machine_info(base)
    for line in header_text(info, n, matrix, opts):
        print(line)
    print(flush=True)

    def save(rows, verdicts=None):
        if a.json:
            doc = {"machine": info, "n": n, "matrix": list(matrix), "options": asdict(opts),
                   "copy_gbps": best_copy_gbps(rows), "rows": [asdict(r) for r in rows],
                   "targets": verdicts, "complete": verdicts is not None}
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(doc, indent=1, default=str))

    def emit(line):
        print(line, flush=True)

    rows, verdicts = run_all(base, opts, keys, dtypes, n, matrix, emit=emit, on_case=save)
    info["nvidia_smi_end"] = nvidia_smi()
    info["loadavg_end"] = loadavg()
    copy = best_copy_gbps(rows)
    print(f"copy ceiling: {copy:.0f} GB/s" if copy else "copy ceiling: not measured")
    errors = [r for r in rows if r.error]
    if errors:
        print(f"{len(errors)} rows failed to run (first error of each is in the table; "
              "tracebacks in the JSON)")
    for line in summary_lines(verdicts):
        print(line)
    save(rows, verdicts)
    if a.json:
        print(f"wrote {a.json}")
    nbx_broken = [r for r in rows if r.impl.startswith("nbx") and (r.error or r.check != "ok")]
    return 2 if nbx_broken else 0


if __name__ == "__main__":
    sys.exit(main())
