#!/usr/bin/env python3
"""The results plot of the README: nbx against its peers on the benchmark expressions, from
the JSON files the benchmarks write.

    python benchmarks/cpu.py --json benchmarks/results/cpu.json            # this machine
    STEPS="setup env bench" bash benchmarks/gpu_run.sh    # on the GPU machine: $OUT/gpu.json,
                                                          # kept as benchmarks/results/gpu-h200.json
    python benchmarks/plot.py                                              # -> docs/results.png

Each bar is a peer's median time over nbx's on the same case (>1: nbx is faster), on a log
scale; the CPU panel compares NumPy, numexpr and hand-written Numba (float64), the GPU panel
CuPy, PyTorch and hand-written Numba CUDA (float64, nbx's `cuda` target). Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPU_PEERS = {"NumPy": ["numpy", "np.sum(a*b)", "A @ v"], "numexpr": ["numexpr"],
             "Numba (hand-written)": ["numba (hand)"]}
GPU_PEERS = {"CuPy": ["cupy unfused", "cupy", "cupy.dot", "cupy.sum"],
             "PyTorch": ["torch eager", "torch.dot", "torch.sum"],
             "Numba CUDA (hand-written)": ["numba cuda.jit (hand)", "numba block reduction"]}
GPU_CASES = {"fma": "a*b + c", "poly": "2a + 3bc - sin(a)", "dot": "sum(a*b)",
             "rowsum": "sum(A, over=k)", "colsum": "sum(A, over=m)", "normalize": "normalize"}
COLORS = ["#4c72b0", "#dd8452", "#55a868"]


def cpu_ratios(doc) -> tuple[list[str], dict[str, list[float | None]]]:
    """Cases, and per peer the ratio peer median / nbx median of each case (None: absent)."""
    rows = [r for r in doc["results"] if "median_ms" in r]   # (not the per-call rows, in us)
    cases = [r["case"] for r in rows if r["impl"] == "nbx"]
    nbx = {r["case"]: r["median_ms"] for r in rows if r["impl"] == "nbx"}
    ratios = {}
    for peer, names in CPU_PEERS.items():
        ratios[peer] = [next((r["median_ms"] / nbx[c] for r in rows
                              if r["case"] == c and r["impl"] in names), None) for c in cases]
    return cases, ratios


def gpu_ratios(doc, dtype="f64") -> tuple[list[str], dict[str, list[float | None]]]:
    rows = [r for r in doc["rows"] if r["dtype"] == dtype and r.get("median")
            and r["case"] in GPU_CASES]
    cases = [c for c in GPU_CASES if any(r["case"] == c for r in rows)]
    nbx = {r["case"]: r["median"] for r in rows if r["impl"] == "nbx cuda"
           and r["out"] == "alloc"}
    ratios = {}
    for peer, names in GPU_PEERS.items():
        ratios[peer] = []
        for c in cases:
            found = [r["median"] for name in names for r in rows
                     if r["case"] == c and r["impl"] == name]
            ratios[peer].append(found[0] / nbx[c] if found and c in nbx else None)
    return [GPU_CASES[c] for c in cases], ratios


def panel(ax, title, cases, ratios) -> None:
    width = 0.8 / len(ratios)
    for i, (peer, values) in enumerate(ratios.items()):
        xs = [k + (i - (len(ratios) - 1) / 2) * width for k in range(len(cases))]
        bars = ax.bar([x for x, v in zip(xs, values) if v], [v for v in values if v], width,
                      label=peer, color=COLORS[i % len(COLORS)])
        ax.bar_label(bars, labels=[f"{v:.2f}" if v < 10 else f"{v:.0f}" for v in values if v],
                     fontsize=6.5, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:g}x")
    ax.yaxis.set_minor_formatter(lambda v, _: "")
    ax.set_xticks(range(len(cases)), cases, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("peer time / nbx time (>1: nbx faster)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", default=HERE / "results" / "cpu.json")
    ap.add_argument("--gpu", default=HERE / "results" / "gpu-h200.json")
    ap.add_argument("--out", default=HERE.parent / "docs" / "results.png")
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpu = json.loads(Path(args.cpu).read_text())
    gpu = json.loads(Path(args.gpu).read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    env = cpu["env"]
    panel(left, f"CPU: {env['processor']}, {env['cpus']} cores, float64", *cpu_ratios(cpu))
    panel(right, f"GPU: {gpu['machine']['gpu']['name']}, float64, n = {gpu['n']:.3g}",
          *gpu_ratios(gpu))
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
