"""Compile examples/normalize.nbx, run it on ten million numbers, check it against NumPy.

    python examples/demo.py [N]
"""

import sys
import time
from pathlib import Path

import numpy as np

import nbx

n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 10_000_000
here = Path(__file__).parent
mod = nbx.load(here / "normalize.nbx")
print(mod.normalize.__doc__)
print()
print(mod.normalize.explain())
print()

x = np.random.default_rng(0).standard_normal(n) * 3 + 1
t = time.perf_counter()
y = mod.normalize(x)
print(f"first call (includes Numba compilation or cache load): {time.perf_counter() - t:.2f} s")


def best_of(f, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


t_nbx = best_of(lambda: mod.normalize(x))
t_np = best_of(lambda: (x - x.mean()) / np.sqrt(((x - x.mean()) ** 2).mean() + 1e-12))
expected = (x - x.mean()) / np.sqrt(x.var() + 1e-12)
print(f"nbx   {t_nbx * 1e3:8.1f} ms")
print(f"numpy {t_np * 1e3:8.1f} ms   ({t_np / t_nbx:.1f}x slower)")
print("max |nbx - numpy| =", float(np.max(np.abs(y - expected))))
