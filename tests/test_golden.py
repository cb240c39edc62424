"""Golden files: the IR, the stage plan and the generated source of a few kernels.

They pin the middle of the pipeline. After an intended change, refresh them with
    NBX_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
and review the diff of tests/golden/ like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbx.backends.cpu_backend import emit
from nbx.dsl import check, ir
from nbx.dsl.compile import Compiler
from nbx.dsl.fuse import format_plan, fuse

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).parent.parent / "examples"
CASES = [("normalize.nbx", "normalize"), ("matvec.nbx", "matvec"),
         ("softmax.nbx", "softmax"), ("expr.nbx", "dot"), ("stats.nbx", "stats")]


def render(filename: str, kernel: str) -> str:
    path = EXAMPLES / filename
    compiler = Compiler(path.read_text(), filename=f"examples/{filename}")
    definition = compiler.env.kernels[kernel]
    kernel_ir = compiler.check_kernel(definition, check.default_binding(compiler.env,
                                                                        definition))
    plan = fuse(kernel_ir)
    source = emit(plan, origin=f"examples/{filename}", fastmath=False, parallel=True,
                  cache=True)
    return "\n".join(["# IR", ir.format_kernel(kernel_ir), "", "# plan", format_plan(plan), "",
                      "# generated source", source])


@pytest.mark.parametrize(("filename", "kernel"), CASES)
def test_golden(filename, kernel):
    text = render(filename, kernel)
    golden = GOLDEN / f"{kernel}.txt"
    if os.environ.get("NBX_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"missing {golden}: run with NBX_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{kernel}: output differs from {golden}"
