"""Where the per-call time of a small nbx CUDA call goes: whole calls (CuPy, PyTorch and Numba
arrays, fresh results and out=), then the steps of the fast path one by one (reading an
array's pointer and shape, allocating the result, the launcher alone, one GridKernel launch)
and the peers' calls. Host clock, the device synchronised at both ends of each batch; median of
5 batches of 2000 calls, in microseconds. Run on a GPU machine: python3 benchmarks/gpu_launch.py
"""
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cupy as cp  # noqa: E402
import torch  # noqa: E402
from numba import cuda  # noqa: E402

import nbx  # noqa: E402
from nbx.backends import cuda_runtime as rt  # noqa: E402

N = 1024
SRC = "kernel fma(a: f32[n], b: f32[n], c: f32[n]) -> f32[n]:\n    return a*b + c\n"


def per_call(f, calls=2000, rounds=5):
    """Median over rounds of the mean time of f() over `calls` calls, in microseconds."""
    f()
    cuda.synchronize()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        cuda.synchronize()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def main():
    k = nbx.compile(SRC, target="cuda").fma
    host = np.random.default_rng(0).random(N, dtype=np.float32) + 0.5
    nb = cuda.to_device(host)
    nb_out = cuda.device_array(N, np.float32)
    cu = cp.asarray(host)
    cu_out = cp.empty(N, cp.float32)
    th = torch.from_numpy(host).cuda()
    k(cu, cu, cu)   # compiles; later calls of this binding take the fast path
    spec = k.specialize({})
    assert np.allclose(cp.asnumpy(k(cu, cu, cu)), host * host + host)
    assert np.allclose(k(nb, nb, nb).copy_to_host(), host * host + host)
    assert np.allclose(k(th, th, th).cpu().numpy(), host * host + host)

    views = [rt.view(cu)] * 3
    out_view = rt.view(cu_out)
    flag = rt.never_set_flag()
    module = sys.modules[spec.entry.__module__]
    stage = module._fma_stage0
    base = (*views, out_view, flag, N)
    ek = cp.ElementwiseKernel("T a, T b, T c", "T z", "z = a * b + c", "launch_fma")
    dispatcher = stage.dispatcher
    driver = rt._driver()
    handle = stage._handles["C"]
    overload = next(iter(dispatcher.overloads.values()))
    library_kernel = int(overload._codelibrary.get_cufunc().handle)
    err = cuda.to_device(np.zeros(1, np.int64))
    rows = [
        ("nbx call, cupy arrays", lambda: k(cu, cu, cu)),
        ("nbx call, cupy arrays, out=", lambda: k(cu, cu, cu, out=cu_out)),
        ("nbx call, torch tensors", lambda: k(th, th, th)),
        ("nbx call, numba arrays", lambda: k(nb, nb, nb)),
        ("nbx call, numba arrays, out=", lambda: k(nb, nb, nb, out=nb_out)),
        ("nbx call, cupy arrays (FastCall alone)", lambda: spec.fast(cu, cu, cu)),
        ("  views of 3 cupy arrays", lambda: [rt.view(cu) for _ in range(3)]),
        ("  views of 3 torch tensors", lambda: [rt.view(th) for _ in range(3)]),
        ("  views of 3 numba arrays", lambda: [rt.view(nb) for _ in range(3)]),
        ("  cupy.empty(1024)", lambda: cp.empty(N, cp.float32)),
        ("  torch.empty(1024)", lambda: torch.empty(N, dtype=torch.float32, device="cuda")),
        ("  cuda.device_array(1024) (Numba)", lambda: cuda.device_array(N, np.float32)),
        ("  cupy current stream", lambda: cp.cuda.get_current_stream().ptr),
        ("  launcher alone (views ready)",
         lambda: spec.entry(rt.Call(0), views, [out_view], flag, [N])),
        ("  one GridKernel launch", lambda: rt.Call(0).launch(stage, 4, base)),
        ("  its driver call alone (cuda.bindings, CUfunction)",
         lambda: driver.launch(handle, 4, 1, 1, 256, 1, 1, 0, 0, stage._params, 0)),
        ("  the same with the CUkernel handle",
         lambda: driver.launch(library_kernel, 4, 1, 1, 256, 1, 1, 0, 0, stage._params, 0)),
        ("  torch current stream (raw)", lambda: torch._C._cuda_getCurrentRawStream(0)),
        ("numba dispatcher launch, numba arrays",
         lambda: dispatcher[4, 256, 0](nb, nb, nb, nb_out, err, N)),
        ("cupy ElementwiseKernel (alloc)", lambda: ek(cu, cu, cu)),
        ("cupy a*b+c (2 kernels)", lambda: cu * cu + cu),
        ("torch addcmul (alloc)", lambda: torch.addcmul(th, th, th)),
    ]
    for _, f in rows:   # a first pass, not shown: clocks up, caches and pools filled
        per_call(f, calls=200, rounds=1)
    print(f"per-call cost of a*b+c on {N} float32 elements (us, median of 5 x 2000 calls)")
    for label, f in rows:
        print(f"{label:<45} {per_call(f):8.2f}")


if __name__ == "__main__":
    main()
