"""Random programs (tests/programs.py) against the reference interpreter, on every target at
hand: cpu, and cuda (under Numba's simulator without a GPU; NBX_TEST_GPU=1 runs it on one).

Each program is checked on two sets of arguments. The budget is a CI one: NBX_FUZZ_EXAMPLES
programs per target (default 200 for cpu; half that under the simulator, where every thread
is a Python thread). With the default budget the programs are the same on every run
(derandomized), so that CI is reproducible; with NBX_FUZZ_EXAMPLES set they are new each run.
Long campaigns: benchmarks/fuzz.py. A failure is shrunk by Hypothesis to a minimal program,
which the report shows with its arguments (tests/test_regressions.py keeps the ones found).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from programs import check, describe, inputs, programs

import nbx
from nbx.backends import cuda_runtime

CHOSEN = os.environ.get("NBX_FUZZ_EXAMPLES")
EXAMPLES = int(CHOSEN or 200)


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


@settings(max_examples=200, deadline=None, derandomize=True)
@given(programs())
def test_generated_programs_type_check(program):
    """The generator's typing (NumPy's promotion and section 5's rules) agrees with the
    checker's: every generated program compiles."""
    nbx.compile(program.source, filename="random.nbx")
