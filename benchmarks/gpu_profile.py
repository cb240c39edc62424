#!/usr/bin/env python3
"""One call each of nbx's and PyTorch's matrix sums (f32, 32768 x 4096), for Nsight Compute:

    ncu --kernel-name regex:'stage|reduce' --section SpeedOfLight --section Occupancy \\
        --section WarpStateStats --section MemoryWorkloadAnalysis python3 benchmarks/gpu_profile.py
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import nbx  # noqa: E402

module = nbx.load(ROOT / "examples" / "gpu.nbx", target="cuda")
A = torch.rand(32768, 4096, device="cuda") - 0.25
for name in ("rowsum", "colsum"):
    module[name](A)
torch.cuda.synchronize()
A.sum(1)
A.sum(0)
torch.cuda.synchronize()
