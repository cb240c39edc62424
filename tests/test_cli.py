"""nbxc through a subprocess: exit codes, output streams, JSON diagnostics, explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nbx

EXAMPLES = Path(__file__).parent.parent / "examples"


def nbxc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbx", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def bad(tmp_path):
    path = tmp_path / "bad.nbx"
    path.write_text("kernel f(x: f64[n]) -> f64[n]:\n    return sqr(x)\n")
    return path


def test_check_passes_every_example():
    proc = nbxc("check", *map(str, sorted(EXAMPLES.glob("*.nbx"))))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")


def test_check_reports_a_located_error_without_traceback(bad):
    proc = nbxc("check", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:2:12: error: unknown function 'sqr'")
    assert "^~~" in proc.stderr and "did you mean 'sqrt'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_json_for_editors(bad):
    proc = nbxc("check", "--format", "json", str(bad), str(EXAMPLES / "gauss.nbx"))
    assert proc.returncode == 1
    (diag,) = json.loads(proc.stdout)
    assert diag == {"file": str(bad), "line": 2, "column": 12, "end_line": 2,
                    "end_column": 15, "message": "unknown function 'sqr'",
                    "hint": "did you mean 'sqrt'?"}


def test_check_of_a_missing_file_is_exit_1(tmp_path):
    proc = nbxc("check", str(tmp_path / "nope.nbx"))
    assert proc.returncode == 1
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [[], ["bogus"], ["check"], ["explain", "x.nbx", "--emit",
                                                                  "nothing"]])
def test_wrong_usage_is_exit_2(args):
    assert nbxc(*args).returncode == 2


def test_version():
    proc = nbxc("--version")
    assert proc.returncode == 0 and nbx.__version__ in proc.stdout


def test_explain_shows_stages_ir_and_source():
    path = str(EXAMPLES / "softmax.nbx")
    stages = nbxc("explain", path)
    assert stages.returncode == 0
    assert "stage 2 (pass 2)" in stages.stdout and "row by row" in stages.stdout
    ir_text = nbxc("explain", path, "--emit", "ir").stdout
    assert "max(%0, over=(k))" in ir_text
    source = nbxc("explain", path, "-k", "softmax", "--emit", "py").stdout
    assert "def kernel_softmax(" in source and "prange(" in source
    ast_text = nbxc("explain", path, "--emit", "ast").stdout
    assert ast_text.startswith("KernelDef(name='softmax'")


def test_explain_unknown_kernel_is_exit_1():
    proc = nbxc("explain", str(EXAMPLES / "matvec.nbx"), "-k", "nope")
    assert proc.returncode == 1
    assert "has no kernel 'nope' (kernels: matvec)" in proc.stderr
