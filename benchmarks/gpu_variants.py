#!/usr/bin/env python3
"""The CUDA emitter's tuning constants, tried: each variant of nbx/backends/cuda.py's
REDUCE_LANES (elements a thread reads per round of a reduction), COLUMN_WAVES (threads of a
column reduction, in waves of the device) and STORE_LANES (elements per round of an element-
wise kernel) compiles examples/gpu.nbx again and times its kernels on the benchmark's sizes
(2^27 elements, 32768 x 4096), checked against a float64 reference; then the registers and
occupancy of each compiled kernel. Run on a GPU machine: python3 benchmarks/gpu_variants.py
"""
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cupy as cp  # noqa: E402

import nbx  # noqa: E402
from nbx.backends import cuda as emitter  # noqa: E402
from nbx.backends import cuda_runtime as rt  # noqa: E402

VARIANTS = [
    {"REDUCE_LANES": 8, "COLUMN_WAVES": 1, "STORE_LANES": 4},
    {"REDUCE_LANES": 16, "COLUMN_WAVES": 1, "STORE_LANES": 8},
    {"REDUCE_LANES": 8, "COLUMN_WAVES": 2, "STORE_LANES": 8},
    {"REDUCE_LANES": 16, "COLUMN_WAVES": 2, "STORE_LANES": 16},
]
N = 2**27
M, K = 32768, 4096


def cases(dtype):
    rng = cp.random.default_rng(1)
    a, b, c = (rng.random(N, dtype=cp.float64).astype(dtype) - 0.25 for _ in range(3))
    A = rng.random((M, K), dtype=cp.float64).astype(dtype) - 0.25
    f64 = [x.astype(cp.float64) for x in (a, b, c, A)]
    return [
        ("fma", (a, b, c), f64[0] * f64[1] + f64[2], 4 * a.nbytes),
        ("dot", (a, b), cp.sum(f64[0] * f64[1]), 2 * a.nbytes),
        ("rowsum", (A,), f64[3].sum(axis=1), A.nbytes),
        ("colsum", (A,), f64[3].sum(axis=0), A.nbytes),
    ]


def median_ms(f, repeat=20):
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    for _ in range(3):
        f()
    times = []
    for _ in range(repeat):
        f()   # the lead: keeps the GPU busy while the timed call is issued
        start.record()
        f()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def resources(kernel, label):
    """Registers, local memory and resident blocks of 256 threads per SM, per kernel."""
    from cuda.bindings import driver as cu
    out = []
    for spec in kernel._specs.values():
        mod = sys.modules[spec.entry.__module__]
        for name, value in vars(mod).items():
            if isinstance(value, rt.GridKernel):
                for layout, handle in value._handles.items():
                    regs = cu.cuFuncGetAttribute(
                        cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, handle)[1]
                    local = cu.cuFuncGetAttribute(
                        cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, handle)[1]
                    blocks = cu.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                        handle, value.threads, 0)[1]
                    out.append(f"    {label} {name} [{layout}]: {regs} registers, {local} B "
                               f"local, {blocks} blocks of {value.threads}/SM")
    return out


def main():
    template = (ROOT / "examples" / "gpu.nbx").read_text()
    copy_gbps = {}
    for dtype in (cp.float32, cp.float64):
        x = cp.empty(N, dtype)
        y = cp.empty(N, dtype)
        ms = median_ms(lambda x=x, y=y: y.__setitem__(Ellipsis, x))
        copy_gbps[dtype] = 2 * x.nbytes / ms / 1e6
    print("copy GB/s: " + ", ".join(f"{cp.dtype(d).name} {g:.0f}" for d, g in copy_gbps.items()))
    print(f"{'variant':<34} {'kernel':<7} {'dtype':<8} {'ms':>7} {'GB/s':>6} {'x copy':>6}  "
          "check")
    notes = []
    for variant in VARIANTS:
        for name, value in variant.items():
            setattr(emitter, name, value)
        emitter.HEADER = emitter.header_source()
        label = " ".join(f"{k.split('_')[0].lower()}={v}" for k, v in variant.items())
        module = nbx.compile(template, target="cuda", filename="gpu.nbx")
        for dtype in (cp.float32, cp.float64):
            for kname, args, ref, nbytes in cases(dtype):
                kernel = module[kname]
                got = kernel(*args)
                err = float(cp.linalg.norm(got.astype(cp.float64) - ref) /
                            cp.linalg.norm(ref))
                ms = median_ms(lambda kernel=kernel, args=args: kernel(*args))
                gbps = nbytes / ms / 1e6
                tol = 1e-5 if dtype == cp.float32 else 1e-12
                print(f"{label:<34} {kname:<7} {cp.dtype(dtype).name:<8} {ms:7.3f} "
                      f"{gbps:6.0f} {gbps / copy_gbps[dtype]:6.2f}  "
                      f"{'ok' if err <= tol else f'FAIL {err:.1e}'}", flush=True)
            del args
        for kname in ("fma", "dot", "rowsum", "colsum"):
            notes += resources(module[kname], label)
        cp.get_default_memory_pool().free_all_blocks()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
