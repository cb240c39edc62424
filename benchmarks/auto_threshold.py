"""The size where target="auto" should move NumPy inputs to the GPU (nbx.runtime.AUTO_GPU_BYTES).

For NumPy inputs, a CUDA call pays the copies to the device and back plus its launch overhead;
the CPU call pays only its loops. This times both for three kernels of examples/gpu.nbx (fma:
element-wise, dot: a full reduction, normalize: three stages) over sizes 2^10 .. 2^26 f64,
medians of new calls, and prints the table and the smallest input size (in bytes) from which
the GPU is faster for every kernel. Run on a machine with a GPU: python3
benchmarks/auto_threshold.py [--max-log2 26]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbx  # noqa: E402

KERNELS = {"fma": 3, "dot": 2, "normalize": 1}   # kernel -> number of f64[n] inputs


def median_time(call, repeat: int) -> float:
    call()   # compile or warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-log2", type=int, default=10)
    ap.add_argument("--max-log2", type=int, default=26)
    ap.add_argument("--repeat", type=int, default=7)
    opts = ap.parse_args()
    source = (ROOT / "examples" / "gpu.nbx").read_text()
    cpu = nbx.compile(source, filename="gpu.nbx")
    gpu = nbx.compile(source, target="cuda", filename="gpu.nbx")
    rng = np.random.default_rng(0)
    print(f"{'kernel':<10} {'n':>10} {'input bytes':>12} {'cpu ms':>9} {'cuda ms':>9}  faster")
    first_gpu_win: dict[str, int] = {}
    for name, inputs in KERNELS.items():
        wins = []
        for log2 in range(opts.min_log2, opts.max_log2 + 1, 2):
            n = 2 ** log2
            args = [rng.standard_normal(n) for _ in range(inputs)]
            t_cpu = median_time(lambda: cpu[name](*args), opts.repeat)   # noqa: B023
            t_gpu = median_time(lambda: gpu[name](*args), opts.repeat)   # noqa: B023
            nbytes = inputs * n * 8
            wins.append((nbytes, t_gpu < t_cpu))
            print(f"{name:<10} {n:>10} {nbytes:>12} {t_cpu * 1e3:>9.3f} {t_gpu * 1e3:>9.3f}  "
                  f"{'cuda' if t_gpu < t_cpu else 'cpu'}")
        # the smallest size from which the GPU wins at every larger size measured
        for i, (nbytes, _) in enumerate(wins):
            if all(win for _, win in wins[i:]):
                first_gpu_win[name] = nbytes
                break
    print()
    for name in KERNELS:
        where = first_gpu_win.get(name)
        print(f"{name:<10} cuda faster from {where} bytes of NumPy input" if where else
              f"{name:<10} cuda never faster up to 2^{opts.max_log2}")
    if len(first_gpu_win) == len(KERNELS):
        print(f"threshold (all kernels): {max(first_gpu_win.values())} bytes; "
              f"nbx.runtime.AUTO_GPU_BYTES = {nbx.runtime.AUTO_GPU_BYTES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
