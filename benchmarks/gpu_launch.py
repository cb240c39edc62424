"""Where the per-call time of a small nbx CUDA call goes: the whole call, the generated
launcher, one Numba launch, allocation, array conversion, argument checks (host clock, 2000
calls each). Run on a GPU machine: python3 benchmarks/gpu_launch.py"""
import sys
import time

import cupy as cp
import numpy as np
from numba import cuda

import nbx

m = nbx.compile("kernel fma(a: f32[n], b: f32[n], c: f32[n]) -> f32[n]:\n    return a*b + c\n",
                target="cuda")
k = m.fma
a = cuda.to_device(np.ones(1024, np.float32))
o = cuda.device_array(1024, np.float32)
ac = cp.ones(1024, cp.float32)
k(a, a, a)
spec = k.specialize({})
mod = sys.modules[next(n for n in list(sys.modules) if n.startswith("_nbx_generated")
                       and hasattr(sys.modules[n], "launch_fma"))]
err = cuda.to_device(np.zeros(1, np.int64))
def t(label, f, n=2000):
    """Print the mean time of f() over n calls, the device synchronised at both ends."""
    f()
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    cuda.synchronize()
    print(f"{label:<45} {(time.perf_counter() - t0) / n * 1e6:8.1f} us")
t("nbx call, numba arrays (alloc)", lambda: k(a, a, a))
t("nbx call, numba arrays, out=", lambda: k(a, a, a, out=o))
t("nbx call, cupy arrays (alloc)", lambda: k(ac, ac, ac))
t("launcher only", lambda: spec.entry([a, a, a], [o], err, [1024], 0))
kern = mod._fma_stage0
t("dispatcher launch kern[4,256,0](...)", lambda: kern[4, 256, 0](a, a, a, o, err, 1024))
ov = next(iter(kern.overloads.values()))
stream = cuda.default_stream()
t("overload.launch direct", lambda: ov.launch((a, a, a, o, err, 1024), 4, 256, stream, 0))
t("cuda.device_array(1024)", lambda: cuda.device_array(1024, np.float32))
t("cuda.as_cuda_array(cupy)", lambda: cuda.as_cuda_array(ac))
t("k._bind numba", lambda: k._bind((a, a, a), {}))
t("cupy ElementwiseKernel-ish: ac*ac+ac", lambda: ac * ac + ac)
