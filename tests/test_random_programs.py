"""Random programs (tests/programs.py) against the reference interpreter, on every target at
hand: cpu, and cuda (under Numba's simulator without a GPU; NBX_TEST_GPU=1 runs it on one);
and called with Dask arrays in random blocks (nbx/chunked), an eighth of the budget.

Each program is checked on two sets of arguments. The budget is a CI one: NBX_FUZZ_EXAMPLES
programs per target (default 160 for cpu; half that under the simulator, where every thread
is a Python thread). With the default budget the programs are the same on every run
(derandomized), so that CI is reproducible; with NBX_FUZZ_EXAMPLES set they are new each run.
Long campaigns: benchmarks/fuzz.py. A failure is shrunk by Hypothesis to a minimal program,
which the report shows with its arguments (tests/test_regressions.py keeps the ones found).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from programs import check, describe, inputs, programs

import nbx
from nbx.backends import cuda_runtime

CHOSEN = os.environ.get("NBX_FUZZ_EXAMPLES")
EXAMPLES = int(CHOSEN or 160)   # CI's 20 minutes: 200 made it 17.5 with the Dask tests


def budget(target: str) -> int:
    return EXAMPLES if target == "cpu" or not cuda_runtime._simulated() else \
        max(1, EXAMPLES // 2)


def differential(target: str):
    @settings(max_examples=budget(target), deadline=None, derandomize=CHOSEN is None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(programs(), st.data())
    def test(program, data):
        note(program.source)
        kernel = nbx.compile(program.source, filename="random.nbx", target=target,
                             parallel=program.parallel)[program.name]
        for _ in range(2):
            lengths, args = data.draw(inputs(program))
            note(describe(program, lengths, args))
            check(program, kernel, args)
    return test


test_cpu_matches_the_reference = differential("cpu")


def test_cuda_matches_the_reference():
    differential("cuda")()


class OnDask:
    """A kernel called with its arrays as Dask arrays in the given chunks (and its 0-d arrays
    as 0-d Dask arrays), the results computed: nbx/chunked against the same reference."""

    def __init__(self, kernel, params, chunks):
        self.kernel = kernel
        self.params = params          # the program's (name, dtype, dims)
        self.chunks = chunks          # per dimension name
        self.reference = kernel.reference

    def __call__(self, *args):
        import dask
        import dask.array as da
        lazy = []
        for (_, _, dims), a in zip(self.params, args):
            if isinstance(a, np.ndarray):
                chunks = tuple(self.chunks[d] for d in dims) if dims else ()
                a = da.from_array(a, chunks=chunks)
            lazy.append(a)
        out = self.kernel(*lazy)
        with dask.config.set(scheduler="threads"):
            return dask.compute(*out) if isinstance(out, tuple) else dask.compute(out)[0]


@st.composite
def chunkings(draw, lengths):
    """Blocks along each dimension: any lengths that add up, an empty block among them."""
    chunks = {}
    for d, n in lengths.items():
        cuts = sorted(draw(st.sets(st.integers(0, n), max_size=3)) | {0, n})
        chunks[d] = tuple(b - a for a, b in zip(cuts, cuts[1:])) or (0,)
        if n and draw(st.integers(0, 5)) == 0:
            chunks[d] = (0,) + chunks[d]
    return chunks


@settings(max_examples=max(1, EXAMPLES // 8), deadline=None, derandomize=CHOSEN is None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(programs(), st.data())
def test_dask_matches_the_reference(program, data):
    pytest.importorskip("dask.array")
    note(program.source)
    kernel = nbx.compile(program.source, filename="random.nbx", parallel=False)[program.name]
    for _ in range(2):
        lengths, args = data.draw(inputs(program))
        chunks = data.draw(chunkings(lengths))
        note(describe(program, lengths, args) + f"\nchunks: {chunks}")
        check(program, OnDask(kernel, program.params, chunks), args)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(programs())
def test_generated_programs_type_check(program):
    """The generator's typing (NumPy's promotion and section 5's rules) agrees with the
    checker's: every generated program compiles."""
    nbx.compile(program.source, filename="random.nbx")
