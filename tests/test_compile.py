"""nbxc compile: standalone modules that need numpy and numba only, and match nbx exactly.

The modules are imported in a subprocess where importing nbx fails, their results and error
messages saved, then compared here with nbx.load on the same inputs: bit for bit, word for word.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nbx

EXAMPLES = Path(__file__).parent.parent / "examples"
BIG = 40_000  # above the serial threshold: the parallel entry point runs


def nbxc(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbx", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def inputs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "small": rng.standard_normal(37),
        "big": rng.standard_normal(BIG),
        "b": rng.standard_normal(37),
        "c": rng.standard_normal(37),
        "A": rng.standard_normal((7, 5)),
        "v": rng.standard_normal(5),
        "f32": rng.standard_normal(37).astype(np.float32),
        "empty": np.zeros(0),
    }


# (module, kernel, argument names from inputs()) per call; every result is compared.
CALLS = [
    ("normalize", "normalize", ["small"]),
    ("normalize", "normalize", ["big"]),
    ("expr", "poly", ["small", "b", "c"]),
    ("expr", "dot", ["big", "big"]),
    ("stats", "stats", ["small"]),
    ("stats", "stats", ["f32"]),
    ("matvec", "matvec", ["A", "v"]),
    ("softmax", "softmax", ["A"]),
]
# Bad calls: the error type and message must be nbx's own.
BAD_CALLS = [
    ("normalize", "normalize", ["f32"]),
    ("expr", "poly", ["small", "b"]),
    ("matvec", "matvec", ["A", "small"]),
    ("stats", "stats", ["empty"]),
]
SPECIALIZE = {"stats": ["--specialize", "T=f32,f64"], "matvec": ["--specialize", "T=f64"],
              "softmax": ["--specialize", "T=f64,f32"]}

CHILD = textwrap.dedent("""
    import importlib, json, sys
    sys.modules["nbx"] = None          # importing nbx now fails: the modules must not need it
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    data = dict(np.load(sys.argv[1] + "/inputs.npz"))
    CALLS, BAD_CALLS = json.loads(sys.argv[2])
    results, errors = {}, []
    for i, (module, kernel, names) in enumerate(CALLS):
        out = getattr(importlib.import_module("std_" + module), kernel)(*[data[n] for n in names])
        for j, value in enumerate(out if isinstance(out, tuple) else (out,)):
            results[f"{i}_{j}"] = np.asarray(value)
    for module, kernel, names in BAD_CALLS:
        try:
            getattr(importlib.import_module("std_" + module), kernel)(*[data[n] for n in names])
            errors.append(None)
        except Exception as err:
            errors.append([type(err).__name__, str(err)])
    np.savez(sys.argv[3], **results)
    print(json.dumps({"errors": errors, "nbx_imported": "nbx.dsl" in sys.modules}))
""")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """The examples compiled into a directory, and what a process without nbx got of them."""
    out = tmp_path_factory.mktemp("standalone")
    for module in sorted({m for m, _, _ in CALLS + BAD_CALLS}):
        proc = nbxc("compile", str(EXAMPLES / f"{module}.nbx"), "-o",
                    str(out / f"std_{module}.py"), *SPECIALIZE.get(module, []))
        assert proc.returncode == 0, proc.stderr
    np.savez(out / "inputs.npz", **inputs(0))
    child = subprocess.run([sys.executable, "-c", CHILD, str(out), json.dumps([CALLS, BAD_CALLS]),
                            str(out / "results.npz")], capture_output=True, text=True,
                           timeout=600)
    assert child.returncode == 0, child.stderr
    return out, np.load(out / "results.npz"), json.loads(child.stdout.splitlines()[-1])


def test_standalone_modules_do_not_import_nbx(standalone):
    _, _, report = standalone
    assert report["nbx_imported"] is False


def test_standalone_results_are_bit_identical_to_nbx(standalone):
    _, results, _ = standalone
    data = inputs(0)
    for i, (module, kernel, names) in enumerate(CALLS):
        want = getattr(nbx.load(EXAMPLES / f"{module}.nbx"), kernel)(*[data[n] for n in names])
        for j, value in enumerate(want if isinstance(want, tuple) else (want,)):
            got = results[f"{i}_{j}"]
            value = np.asarray(value)
            assert got.dtype == value.dtype, (kernel, j)
            assert got.shape == value.shape, (kernel, j)
            # bit for bit: compare the bytes, so NaNs and signed zeros count too
            assert got.tobytes() == value.tobytes(), (kernel, names, j)


def test_standalone_errors_are_nbx_errors(standalone):
    _, _, report = standalone
    data = inputs(0)
    for (module, kernel, names), got in zip(BAD_CALLS, report["errors"], strict=True):
        with pytest.raises((TypeError, ValueError)) as info:
            getattr(nbx.load(EXAMPLES / f"{module}.nbx"), kernel)(*[data[n] for n in names])
        assert got == [type(info.value).__name__, str(info.value)]


def test_standalone_docstrings_and_bindings(standalone):
    out, _, _ = standalone
    script = textwrap.dedent("""
        import sys; sys.path.insert(0, sys.argv[1])
        import numpy as np, std_stats, std_matvec
        print(std_stats.stats.__doc__.splitlines()[0])
        print(std_stats.__all__)
        try:
            std_matvec.matvec(np.ones((2, 2), np.float32), np.ones(2, np.float32))
        except TypeError as err:
            print(err)
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc, names, error = proc.stdout.splitlines()
    assert doc == "stats(x: T[n]) -> (T, T, f64, f64, f64)"
    assert names == "['stats']"
    assert error == ("matvec(): this module was compiled for T=float64 only; the arguments "
                     "need T=float32 (compile it again with nbxc compile --specialize)")


def test_a_generic_kernel_needs_specialize(tmp_path):
    proc = nbxc("compile", str(EXAMPLES / "gauss.nbx"), "-o", str(tmp_path / "g.py"))
    assert proc.returncode == 1
    assert "kernel 'gauss' is generic in T" in proc.stderr
    assert "hint: add --specialize T=f32,f64" in proc.stderr
    assert not (tmp_path / "g.py").exists()


@pytest.mark.parametrize("args, message", [
    (["--specialize", "T"], "--specialize takes T=dtype"),
    (["--specialize", "T=f128"], "unknown dtype 'f128'"),
])
def test_bad_specialize_is_exit_1(tmp_path, args, message):
    proc = nbxc("compile", str(EXAMPLES / "gauss.nbx"), "-o", str(tmp_path / "g.py"), *args)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name, why", [("lambda", "is a Python keyword"),
                                       ("np", "is a name the module itself needs"),
                                       ("range", "is a name the module itself needs"),
                                       ("kernel_f", "is a name the module itself needs")])
def test_kernel_names_that_cannot_be_module_functions(tmp_path, name, why):
    src = tmp_path / "k.nbx"
    src.write_text(f"kernel f(x: f64[n]) -> f64[n]:\n    return x\n\n"
                   f"kernel {name}(x: f64[n]) -> f64[n]:\n    return x + 1\n")
    proc = nbxc("compile", str(src), "-o", str(tmp_path / "k.py"))
    assert proc.returncode == 1
    assert f"{src}:4:8: error: kernel '{name}' cannot be a function of a standalone" \
        in proc.stderr and why in proc.stderr


def test_default_output_and_stdout(tmp_path):
    src = tmp_path / "fma.nbx"
    src.write_text("kernel fma(a: f64[n], b: f64[n]) -> f64[n]:\n    return a*b + 1\n")
    assert nbxc("compile", str(src)).returncode == 0
    assert (tmp_path / "fma.py").read_text().startswith('"""Kernels compiled by nbxc')
    proc = nbxc("compile", str(src), "-o", "-")
    assert proc.returncode == 0 and "def fma(*args, **kwargs):" in proc.stdout


CUDA_CHILD = textwrap.dedent("""
    import json, sys
    sys.modules["nbx"] = None
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import std_cuda_expr, std_cuda_normalize
    x = np.load(sys.argv[1] + "/x.npy")
    np.savez(sys.argv[1] + "/out.npz", dot=std_cuda_expr.dot(x, x),
             poly=std_cuda_expr.poly(x, x, x), normalize=std_cuda_normalize.normalize(x))
    try:
        std_cuda_expr.fma(x, x, x[:5])
    except ValueError as err:
        print(json.dumps(str(err)))
""")


def test_standalone_cuda_module(tmp_path):
    """The cuda target's standalone module (under the CUDA simulator here, as the whole test
    session): no nbx, the same results as nbx.load(target="cuda"), bit for bit."""
    for name in ("expr", "normalize"):
        proc = nbxc("compile", str(EXAMPLES / f"{name}.nbx"), "-t", "cuda", "-o",
                    str(tmp_path / f"std_cuda_{name}.py"))
        assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(3).standard_normal(300)
    np.save(tmp_path / "x.npy", x)
    child = subprocess.run([sys.executable, "-c", CUDA_CHILD, str(tmp_path)],
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr
    got = np.load(tmp_path / "out.npz")
    expr = nbx.load(EXAMPLES / "expr.nbx", target="cuda")
    normalize = nbx.load(EXAMPLES / "normalize.nbx", target="cuda")
    for key, want in (("dot", expr.dot(x, x)), ("poly", expr.poly(x, x, x)),
                      ("normalize", normalize.normalize(x))):
        assert got[key].tobytes() == np.asarray(want).tobytes(), key
    assert json.loads(child.stdout) == "fma(): dimension n is 300 in a but 5 in c"


def test_auto_has_no_standalone_module(tmp_path):
    proc = nbxc("compile", str(EXAMPLES / "expr.nbx"), "-t", "auto", "-o", str(tmp_path / "x.py"))
    assert proc.returncode == 1 and "compiled for one target" in proc.stderr
