""".nbx programs written to break the compiler or the Python it generates: names that are
Python keywords, builtins, module names or names of the generated code; docstrings and comments
full of quotes, newlines and code; huge literals; deep nesting; long files. Each compiles and
computes what the reference interpreter computes (cpu, and cuda under the simulator), or is a
CompileError with a message: never a traceback, never Python of its own running.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import nbx

# Python keywords and soft keywords, builtins, modules and the generated code's own names
NAMES = ["lambda", "import", "None", "class", "yield", "await", "async", "pass", "with",
         "global", "nonlocal", "del", "from", "as", "is", "in", "try", "except", "raise",
         "assert", "while", "for", "break", "continue", "finally", "match", "case", "type",
         "print", "range", "exec", "eval", "open", "abs", "min", "int", "float", "object",
         "os", "sys", "np", "numba", "math", "cuda", "config", "prange", "njit", "vectorize",
         "out", "self", "stream", "call", "args", "outs", "err", "lengths", "CACHE", "THREADS",
         "GridKernel", "stand_in", "grid", "blocks", "o0", "p_x", "i_n", "n_n", "t0", "_err",
         "_base", "_lin", "_t", "launch_k", "fast_k", "kernel_k"]

DOC = ('"a doc with \\"quotes\\", a backslash \\\\, \'\'\' and \\"\\"\\", and code: '
       '__import__(\'os\').environ.__setitem__(\'NBX_PWNED\', \'1\')"')


def hostile_source(name: str) -> str:
    return (f"# a comment with \"\"\" and ''' and {name}: __import__('os')\n"
            f"const {name}_c = 2.0\n\n"
            f"def {name}_d({name}):\n    return {name} * 2\n\n"
            f"kernel {name}_k({name}: f64[n], {name}2: f64) -> f64[n]:\n    {DOC}\n"
            f"    {name}3 = {name}_d({name}) + {name}2\n"
            f"    return {name}3 + {name}_c + sum({name})\n")


@pytest.mark.parametrize("target", ["cpu", "cuda"])
@pytest.mark.parametrize("name", NAMES)
def test_hostile_names_compile_and_compute(name, target, monkeypatch):
    monkeypatch.delenv("NBX_PWNED", raising=False)
    # parallel=False: the serial code has the same names, and compiles in half the time
    module = nbx.compile(hostile_source(name), filename="hostile.nbx", target=target,
                         parallel=False)
    x = np.arange(5.0)
    kernel = module[f"{name}_k"]
    np.testing.assert_allclose(kernel(x, 1.5), kernel.reference(x, 1.5))
    assert "__import__('os')" in kernel.__doc__
    named = nbx.compile(f"kernel {name}({name}x: f64[n]) -> f64[n]:\n    return {name}x * 2\n",
                        target=target, parallel=False)   # a kernel with the name itself
    np.testing.assert_allclose(named[name](x), 2 * x)
    import os
    assert "NBX_PWNED" not in os.environ


def test_a_parameter_named_out_keeps_the_keyword():
    module = nbx.compile("kernel k(out: f64[n]) -> f64[n]:\n    return out + 1\n")
    np.testing.assert_array_equal(module.k(out=np.zeros(2)), [1.0, 1.0])


@pytest.mark.parametrize("literal, outcome", [
    ("9" * 400, "CompileError"),
    ("99999999999999999999", 1e20),                  # beyond u64, fine for an f64
    ("1e999999", np.inf),                            # as Python reads it
    ("1." + "3" * 5000, 4.0 / 3.0),
    ("0." + "0" * 400 + "1", 0.0),
    ("1_000_000_000_000", 1e12),
])
def test_huge_literals(literal, outcome):
    source = f"kernel k(x: f64[n]) -> f64[n]:\n    return x + {literal}\n"
    if outcome == "CompileError":
        with pytest.raises(nbx.CompileError, match="literal"):
            nbx.compile(source)
        return
    got = nbx.compile(source).k(np.zeros(2))
    np.testing.assert_allclose(got, np.full(2, outcome), rtol=1e-15)


DEEP = 1000


@pytest.mark.parametrize("shape", [
    ("(" * DEEP + "x" + ")" * DEEP, "result"),                 # parentheses nest nothing
    (" + ".join(["x"] * DEEP), "error"),                      # a chain: a tree 1000 deep
    ("-" * DEEP + "x", "error"),
    ("abs(" * DEEP + "x" + ")" * DEEP, "error"),
    (" ** ".join(["x"] * DEEP), "error"),
    ("where(x > 0, " * DEEP + "x" + ", x)" * DEEP, "error"),
])
def test_deep_nesting_is_a_result_or_a_clear_error(shape):
    expr, expected = shape
    source = f"kernel k(x: f64[n]) -> f64[n]:\n    return {expr}\n"
    limit = sys.getrecursionlimit()
    if expected == "result":
        np.testing.assert_array_equal(nbx.compile(source).k(np.arange(3.0)), [0.0, 1.0, 2.0])
    else:
        with pytest.raises(nbx.CompileError) as info:
            nbx.compile(source).k(np.arange(3.0))
        assert "nested too deeply" in str(info.value)
        assert "split deeply nested expressions" in str(info.value)
    assert sys.getrecursionlimit() == limit


def test_nesting_of_a_hundred_levels_computes():
    chain = " + ".join(["x"] * 100)
    calls = "abs(" * 100 + "x" + ")" * 100
    module = nbx.compile(f"kernel k(x: f64[n]) -> (f64[n], f64[n]):\n"
                         f"    return {chain}, {calls}\n")
    x = np.arange(3.0)
    total, absolute = module.k(x)
    np.testing.assert_array_equal(total, 100 * x)
    np.testing.assert_array_equal(absolute, x)


def test_long_files():
    body = "".join(f"    t{i} = x * {i}\n" for i in range(2000))
    kernels = "".join(f"kernel k{i}(x: f64[n]) -> f64[n]:\n    return x * {i}\n\n"
                      for i in range(1000))
    module = nbx.compile(f"kernel long(x: f64[n]) -> f64[n]:\n{body}    return t1999\n\n"
                         + kernels)
    x = np.arange(3.0)
    np.testing.assert_array_equal(module.long(x), 1999 * x)
    np.testing.assert_array_equal(module.k999(x), 999 * x)
    assert len(module.kernels) == 1001
