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


def test_explain_highlights_source_on_request():
    path = str(EXAMPLES / "expr.nbx")
    colored = nbxc("explain", path, "-k", "fma", "--emit", "py", "--color", "always")
    assert colored.returncode == 0 and "\x1b[" in colored.stdout
    plain = nbxc("explain", path, "-k", "fma", "--emit", "py")   # not a terminal: plain text
    assert "\x1b[" not in plain.stdout and "def kernel_fma(" in plain.stdout


def test_explain_shows_what_numba_made_of_it():
    proc = nbxc("explain", str(EXAMPLES / "expr.nbx"), "-k", "fma", "--emit", "llvm")
    assert proc.returncode == 0, proc.stderr
    assert "define " in proc.stdout and "kernel_fma" in proc.stdout
    proc = nbxc("explain", str(EXAMPLES / "expr.nbx"), "-k", "fma", "--emit", "ptx")
    assert proc.returncode == 1 and "inspect_ptx() needs a CUDA target" in proc.stderr


@pytest.fixture(scope="module")
def twice():
    return nbx.compile("kernel twice(x: T[n]) -> T[n]:\n    return 2*x\n", filename="t.nbx")


def test_inspect_is_keyed_by_specialisation(twice):
    import numpy as np
    twice.twice(np.ones(3, np.float32))
    asm = twice.twice.inspect_asm()
    assert set(asm) == {"T=float32"}
    assert "kernel_twice" in asm["T=float32"] and "kernel_twice_serial" in asm["T=float32"]
    llvm = twice.twice.inspect_llvm()
    assert set(llvm) == {"T=float32"} and "define " in llvm["T=float32"]
    with pytest.raises(TypeError, match="twice\\(\\): inspect_ptx\\(\\) needs a CUDA target"):
        twice.twice.inspect_ptx()


def test_verbose_reports_compile_times(tmp_path):
    import os
    env = dict(os.environ, NBX_VERBOSE="1")
    path = str(EXAMPLES / "expr.nbx")
    code = (f"import nbx, numpy as np; m = nbx.load({path!r}); a = np.ones(4); "
            "m.fma(a, a, a); m.fma(a, a, a)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"nbx: {EXAMPLES / 'expr.nbx'}: parse ") and "check" in lines[0]
    (fma,) = [line for line in lines if line.startswith("nbx: fma: ")]
    assert "fuse+emit" in fma and "load" in fma and "first call" in fma and "Numba:" in fma
    assert len(lines) == 2   # the second call reports nothing


def test_check_reports_an_error_per_definition(tmp_path):
    typed = tmp_path / "typed.nbx"
    typed.write_text("kernel a(x: f64[n]) -> f64[n]:\n    return sqr(x)\n\n"
                     "kernel b(x: f64[n]) -> f64[n]:\n    return x + y\n\n"
                     "kernel c(x: f64[n]) -> f64[n]:\n    return x\n")
    syntax = tmp_path / "syntax.nbx"
    syntax.write_text("kernel a(x: f64[n]) -> f64[n]:\n    return x +\n\n"
                      "kernel b(x: f64[n]) -> f64[n]:\n    return x\n\n"
                      "kernel c(x: f64[n] -> f64[n]:\n    return x\n")
    proc = nbxc("check", "--format", "json", str(typed), str(syntax))
    assert proc.returncode == 1
    found = [(d["file"], d["line"], d["column"], d["message"]) for d in json.loads(proc.stdout)]
    assert found == [(str(typed), 2, 12, "unknown function 'sqr'"),
                     (str(typed), 5, 16, "unknown name 'y'"),
                     (str(syntax), 2, 15, "missing operand"),
                     (str(syntax), 7, 20, "unexpected '->'")]
