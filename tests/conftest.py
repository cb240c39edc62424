"""Test session set-up: without a GPU, CUDA code runs under Numba's CUDA simulator.

The simulator must be chosen before Numba is first imported, so it is set here, ahead of any
test module. NBX_TEST_GPU=1 runs the CUDA tests on a real GPU instead.
"""

import os

if os.environ.get("NBX_TEST_GPU", "") in ("", "0"):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
