"""The %%nbx cell magic (nbx/magic.py), through IPython's own API."""

from __future__ import annotations

import numpy as np
import pytest

IPython = pytest.importorskip("IPython")

CELL = '''kernel scale(x: f64[n], s: f64) -> f64[n]:
    "x times s."
    return x * s

kernel total(x: T[n]) -> T:
    return sum(x)
'''


@pytest.fixture(scope="module")
def ip():
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbx")
    yield shell
    InteractiveShell.clear_instance()


def test_the_cell_binds_its_kernels(ip):
    assert ip.run_cell_magic("nbx", "--no-parallel", CELL) is None
    x = np.arange(5.0)
    np.testing.assert_array_equal(ip.user_ns["scale"](x, 2.0), x * 2)
    assert ip.user_ns["total"](np.arange(4, dtype=np.int32)) == 6
    assert ip.run_cell("y = scale(np.ones(3), 3.0).sum()").success is False   # no np there
    ip.user_ns["np"] = np
    assert ip.run_cell("y = scale(np.ones(3), 3.0).sum()").success
    assert ip.user_ns["y"] == 9.0


def test_target_and_module_arguments(ip):
    ip.run_cell_magic("nbx", "-t cuda --module mod", CELL)   # the simulator without a GPU
    assert ip.user_ns["mod"].target == "cuda" and ip.user_ns["scale"].target == "cuda"
    np.testing.assert_array_equal(ip.user_ns["mod"].scale(np.ones(3), 2.0), [2.0] * 3)


def test_errors_are_diagnostics_not_tracebacks(ip, capsys):
    ip.user_ns.pop("broken", None)
    ip.run_cell_magic("nbx", "", "kernel broken(x: f64[n]) -> f64[n]:\n    return sqr(x)\n")
    err = capsys.readouterr().err
    assert "<nbx cell" in err and ":2:12: error: unknown function 'sqr'" in err
    assert "^" in err and "did you mean 'sqrt'?" in err and "Traceback" not in err
    assert "broken" not in ip.user_ns


def test_bad_magic_arguments_say_so(ip, capsys):
    ip.run_cell_magic("nbx", "-t tpu", CELL)
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
