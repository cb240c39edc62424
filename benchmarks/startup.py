#!/usr/bin/env python3
"""Start-up benchmark: the first calls of examples/expr.nbx (poly, fma, dot) in new processes.

    python benchmarks/startup.py                 # 7 runs of every case (about 1.5 minutes)
    python benchmarks/startup.py --quick         # 1 run of each, a smoke run
    python benchmarks/startup.py --runs 9 --json startup.json

Every measurement is a fresh Python process (subprocess) that imports numba, then makes the
first call of each of the three kernels on float64 arrays of 10^5 elements (above the serial
threshold, so the parallel code is what loads) and checks the results against NumPy. The
process times its own phases with time.perf_counter; the table shows the median and the
minimum over the runs (single processes vary by +-30% on a shared 2-core machine).

Cases:
  nbx cold          empty NBX_CACHE_DIR (a new temporary directory per run): import numba,
                    import nbx, nbx.load(file), 3 first calls; the total is all four.
  nbx warm          the cache of the first cold run, reused: import nbx + load + first calls,
                    i.e. what a new process pays beyond `import numba`.
  nbxc compile      `python -m nbx compile examples/expr.nbx -o DIR/expr_std.py`, wall time of
                    the whole command (it writes module text; nothing is compiled to machine code).
  standalone cold   a new process imports that expr_std.py with sys.modules["nbx"] = None (it
                    cannot use nbx) and makes the 3 first calls; Numba compiles and writes its
                    cache beside the file (__pycache__). Beyond `import numba`.
  standalone warm   later processes on the same file: loaded from that cache.
  numba floor       the same three loops hand-written as @njit(parallel=True, cache=True) in a
                    module file, cold and warm, beyond `import numba`: what any Numba user pays.
  nbx warm, scipy pre-imported
                    an nbx warm process that imports scipy.linalg.cython_blas/cython_lapack
                    before the timed part: Numba imports these when it initialises its
                    registries at the first compile or cache load, whatever the function.
                    The scipy import time is reported separately.

Every child also reports whether `scipy.linalg` is in sys.modules before and after its first
calls (`import numba` already imports top-level `scipy` when SciPy is installed, so "scipy" is
there from the start; the expensive part is scipy.linalg).

Children run WITHOUT PYTHONDONTWRITEBYTECODE (this development environment sets it, which makes
every `import nbx` recompile its .py files, about 40 ms; users have .pyc files), after one
throw-away warm-up process that writes nbx's __pycache__. Cold and warm runs are interleaved
round-robin over the cases, so drifting load on a shared machine hits them alike. Medians of
the phases do not add up exactly to the median of the totals.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import Mismatch, cpu_name, loadavg

ROOT = Path(__file__).resolve().parent.parent
EXPR = ROOT / "examples" / "expr.nbx"
TARGET_COLD_S = 3.0
TARGET_WARM_S = 0.3
HAVE_SCIPY = importlib.util.find_spec("scipy") is not None


# --------------------------------------------------------------------------------------------
# The child process. argv: mode ("nbx" or "module"), path (the .nbx file, or the directory of
# the module), module name, "scipy" to pre-import scipy.linalg before the timed part.
# --------------------------------------------------------------------------------------------

CHILD = r"""
import json, sys, time
mode, path, modname, pre = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "scipy"
if mode == "module":
    sys.modules["nbx"] = None              # a standalone module must not need nbx
    sys.path.insert(0, path)
pc = time.perf_counter
t0 = pc()
import numba
t1 = pc()
import numpy as np
n = 100_000
a = np.linspace(0.0, 1.0, n); b = np.linspace(1.0, 2.0, n); c = np.linspace(-1.0, 1.0, n)
linalg = lambda: "scipy.linalg" in sys.modules
out = {"import_numba": t1 - t0, "scipy_after_numba": "scipy" in sys.modules,
       "linalg_before": linalg(), "scipy_s": 0.0}
if pre:
    t = pc()
    import scipy.linalg.cython_blas, scipy.linalg.cython_lapack  # what Numba's registries import
    out["scipy_s"] = pc() - t
t2 = pc()
if mode == "nbx":
    import nbx
    t3 = pc()
    m = nbx.load(path)
else:
    t3 = pc()
    import importlib
    m = importlib.import_module(modname)
t4 = pc()
out["linalg_after_load"] = linalg()
r1 = m.poly(a, b, c); t5 = pc()
r2 = m.fma(a, b, c); t6 = pc()
r3 = m.dot(a, b); t7 = pc()
out["linalg_after_calls"] = linalg()
try:
    layer = numba.threading_layer()
except ValueError:
    layer = "none"
ok = (np.allclose(r1, 2*a + 3*b*c - np.sin(a)) and np.allclose(r2, a*b + c)
      and np.allclose(r3, np.sum(a*b)))
out.update({"import_nbx": t3 - t2, "load": t4 - t3, "poly": t5 - t4, "fma": t6 - t5,
            "dot": t7 - t6, "first_calls": t7 - t4, "beyond": t7 - t2,
            "total": (t1 - t0) + (t7 - t2), "layer": layer, "ok": bool(ok),
            "nbx_used": "nbx" in sys.modules and sys.modules["nbx"] is not None})
print(json.dumps(out))
"""

# The floor: the three loops as any Numba user would write them in a cached module file.
FLOOR_MODULE = r'''"""poly, fma and dot as plain cached parallel Numba functions (the floor)."""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def poly(a, b, c):
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[i] = 2.0 * a[i] + 3.0 * b[i] * c[i] - np.sin(a[i])
    return out


@njit(parallel=True, cache=True)
def fma(a, b, c):
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[i] = a[i] * b[i] + c[i]
    return out


@njit(parallel=True, cache=True)
def dot(a, b):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i] * b[i]
    return s
'''


def child_env(**extra) -> dict:
    env = dict(os.environ, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)      # users have .pyc files
    return env


def child_run(mode: str, path: str, modname: str = "", *, cache_dir: str | None = None,
              pre_scipy: bool = False, cwd: str | None = None) -> dict:
    extra = {"NBX_CACHE_DIR": cache_dir} if cache_dir else {}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, path, modname or "-",
         "scipy" if pre_scipy else "-"],
        env=child_env(**extra), cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}):\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out["ok"]:
        raise Mismatch(f"{mode} child ({path}): results disagree with NumPy")
    if mode == "module" and out["nbx_used"]:
        raise RuntimeError("the standalone child imported nbx")
    return out


def compile_standalone(directory: str, cache_dir: str) -> float:
    """Wall time of `python -m nbx compile examples/expr.nbx -o DIR/expr_std.py`."""
    cmd = [sys.executable, "-m", "nbx", "compile", str(EXPR.relative_to(ROOT)),
           "-o", os.path.join(directory, "expr_std.py")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(NBX_CACHE_DIR=cache_dir),
                          capture_output=True, text=True, timeout=600)
    t1 = time.perf_counter()
    if proc.returncode != 0:
        raise RuntimeError(f"nbxc compile failed ({proc.returncode}):\n{proc.stderr}")
    return t1 - t0


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------

def measure(runs: int, tmp: str) -> dict:
    """Raw per-run results of every case; cold and warm runs interleaved over the cases."""
    def fresh(name):
        d = os.path.join(tmp, name)
        os.mkdir(d)
        return d

    # Throw-away warm-up: writes nbx's (and nbx.cli's) __pycache__, fills the OS file cache.
    child_run("nbx", str(EXPR), cache_dir=fresh("warmup-cache"), cwd=tmp)
    compile_standalone(fresh("warmup-std"), fresh("warmup-std-cache"))

    raw = {k: [] for k in ("nbx_cold", "nbx_warm", "compile", "std_cold", "std_warm",
                           "floor_cold", "floor_warm", "nbx_warm_scipy")}
    nbx_caches, std_dirs, floor_dirs = [], [], []
    for i in range(runs):
        cache = os.path.join(tmp, f"nbx-cache{i}")       # does not exist yet: an empty cache
        raw["nbx_cold"].append(child_run("nbx", str(EXPR), cache_dir=cache, cwd=tmp))
        nbx_caches.append(cache)

        std = fresh(f"std{i}")
        raw["compile"].append(compile_standalone(std, fresh(f"std-nbx-cache{i}")))
        raw["std_cold"].append(child_run("module", std, "expr_std", cwd=tmp))
        std_dirs.append(std)

        floor = fresh(f"floor{i}")
        Path(floor, "nbx_floor_mod.py").write_text(FLOOR_MODULE)
        raw["floor_cold"].append(child_run("module", floor, "nbx_floor_mod", cwd=tmp))
        floor_dirs.append(floor)
        print(f"  cold run {i + 1}/{runs} done", file=sys.stderr)

    for i in range(runs):
        raw["nbx_warm"].append(child_run("nbx", str(EXPR), cache_dir=nbx_caches[0], cwd=tmp))
        raw["std_warm"].append(child_run("module", std_dirs[0], "expr_std", cwd=tmp))
        raw["floor_warm"].append(child_run("module", floor_dirs[0], "nbx_floor_mod", cwd=tmp))
        if HAVE_SCIPY:   # how much of the floor is Numba's import of scipy.linalg
            raw["nbx_warm_scipy"].append(child_run("nbx", str(EXPR), cache_dir=nbx_caches[0],
                                                   pre_scipy=True, cwd=tmp))
        print(f"  warm run {i + 1}/{runs} done", file=sys.stderr)
    return raw


def med(runs: list, key: str | None = None) -> float:
    return statistics.median(r if key is None else r[key] for r in runs)


def linalg_note(runs: list) -> str:
    before = sum(r["linalg_before"] for r in runs)
    after = sum(r["linalg_after_calls"] for r in runs)
    at_load = sum(r["linalg_after_load"] for r in runs)
    if before:
        return f"scipy.linalg already imported before the timed part in {before}/{len(runs)}"
    if not after:
        return "scipy.linalg not imported"
    where = "by the end of load" if at_load == after else "during the first calls"
    return f"scipy.linalg imported {where} in {after}/{len(runs)} runs"


def phases(runs: list, nbx: bool) -> str:
    first = (f"first calls {med(runs, 'first_calls'):.3f} (poly {med(runs, 'poly'):.3f}, "
             f"fma {med(runs, 'fma'):.3f}, dot {med(runs, 'dot'):.3f})")
    if nbx:
        return (f"import nbx {med(runs, 'import_nbx'):.3f} + load {med(runs, 'load'):.3f} + "
                + first)
    return f"import module {med(runs, 'load'):.3f} + " + first


def rows_from(raw: dict) -> list[dict]:
    def row(case, key, seconds, detail, target=None):
        runs = raw[key]
        field = "total" if key == "nbx_cold" else "beyond"
        lowest = min(r if key == "compile" else r[field] for r in runs)
        status = "" if target is None else ("PASS" if seconds < target else "MISS")
        return {"case": case, "key": key, "seconds": seconds, "min_s": lowest, "detail": detail,
                "target": "" if target is None else f"< {target:g} s", "status": status,
                "runs": len(runs)}

    nc, nw, ws = raw["nbx_cold"], raw["nbx_warm"], raw["nbx_warm_scipy"]
    sc, sw, fc, fw = raw["std_cold"], raw["std_warm"], raw["floor_cold"], raw["floor_warm"]
    layer = nw[0]["layer"]
    rows = [
        row("nbx cold (total)", "nbx_cold", med(nc, "total"),
            f"import numba {med(nc, 'import_numba'):.3f} + {phases(nc, True)}; "
            f"{linalg_note(nc)}", TARGET_COLD_S),
        row("nbx warm", "nbx_warm", med(nw, "beyond"),
            f"beyond import numba ({med(nw, 'import_numba'):.3f}): {phases(nw, True)}; "
            f"{linalg_note(nw)}; layer {layer}", TARGET_WARM_S),
        row("nbxc compile", "compile", med(raw["compile"]),
            "python -m nbx compile examples/expr.nbx -o DIR/expr_std.py, whole command"),
        row("standalone cold", "std_cold", med(sc, "beyond"),
            f"beyond import numba, empty __pycache__: {phases(sc, False)}"),
        row("standalone warm", "std_warm", med(sw, "beyond"),
            f"beyond import numba: {phases(sw, False)}; {linalg_note(sw)}; "
            f"layer {sw[0]['layer']}", TARGET_WARM_S),
        row("numba floor cold", "floor_cold", med(fc, "beyond"),
            f"hand-written @njit(parallel=True, cache=True), beyond import numba: "
            f"{phases(fc, False)}"),
        row("numba floor warm", "floor_warm", med(fw, "beyond"),
            f"beyond import numba: {phases(fw, False)}; {linalg_note(fw)}; "
            f"layer {fw[0]['layer']}"),
    ]
    if ws:
        rows.append(row("nbx warm, scipy pre-imported", "nbx_warm_scipy", med(ws, "beyond"),
                        f"beyond import numba and scipy.linalg (import of scipy.linalg."
                        f"cython_blas/_lapack {med(ws, 'scipy_s'):.3f} s, not included): "
                        f"{phases(ws, True)}"))
    return rows


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

HEADER = f"{'case':<30} {'median':>9} {'min':>9}  {'target':<9} status"


def print_table(rows: list[dict]) -> None:
    print(HEADER)
    print("-" * 100)
    for r in rows:
        print(f"{r['case']:<30} {r['seconds']:>7.3f} s {r['min_s']:>7.3f} s  {r['target']:<9} "
              f"{r['status']}")
        print(f"{'':<4}{r['detail']}")
    print("-" * 100)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7,
                    help="new processes per case (default 7; the table shows medians)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 process per case")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    opts = ap.parse_args(argv)
    runs = 1 if opts.quick else max(1, opts.runs)

    import numba
    import numpy as np

    import nbx
    try:
        import scipy
        scipy_version = scipy.__version__
    except ImportError:
        scipy_version = None
    env = {
        "python": sys.version.split()[0], "numpy": np.__version__, "numba": numba.__version__,
        "scipy": scipy_version, "nbx": nbx.__version__, "cpus": os.cpu_count(),
        "machine": platform.machine(), "processor": cpu_name(), "runs": runs,
        "quick": opts.quick, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR"),
        "NUMBA_THREADING_LAYER": os.environ.get("NUMBA_THREADING_LAYER"),
        "loadavg_start": loadavg(),
    }
    print(f"nbx start-up benchmark: examples/expr.nbx (poly, fma, dot), f64[100000], "
          f"median of {runs} new processes per case")
    print(f"{env['processor']}, {env['cpus']} CPUs; python {env['python']}, numpy "
          f"{env['numpy']}, numba {env['numba']}, scipy {env['scipy']}, nbx {env['nbx']}; "
          f"load average at start {env['loadavg_start']}")
    print("children run without PYTHONDONTWRITEBYTECODE (with .pyc files, as users have them)")
    print()

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nbx-startup-") as tmp:
        raw = measure(runs, tmp)
    rows = rows_from(raw)
    print_table(rows)

    scored = [r for r in rows if r["status"]]
    missed = [r["case"] for r in scored if r["status"] == "MISS"]
    print(f"{len(scored) - len(missed)}/{len(scored)} targets met"
          + (f"; missed: {', '.join(missed)}" if missed else ""))
    env["loadavg_end"] = loadavg()
    env["wall_s"] = time.perf_counter() - t0
    print(f"load average at end {env['loadavg_end']}; {env['wall_s']:.0f} s in all "
          "(a shared machine: rerun when the load is high)")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"env": env, "results": rows, "raw": raw}, f, indent=2)
        print(f"wrote {opts.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Mismatch as err:
        print(f"\nRESULT MISMATCH: {err}", file=sys.stderr)
        sys.exit(3)
