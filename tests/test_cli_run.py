"""nbxc run and nbxc bench: a few end-to-end runs through a subprocess, the rest in-process
(option parsing, input building, result printing, checking against the reference)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbx
from nbx.cli import bench
from nbx.cli import run as run_cmd
from nbx.cli.common import UserError

EXAMPLES = Path(__file__).parent.parent / "examples"


def nbxc(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbx", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def parse(*argv: str) -> argparse.Namespace:
    """The run and bench parsers alone (not nbx.cli.main), so these tests stand apart."""
    ap = argparse.ArgumentParser(prog="nbxc")
    sub = ap.add_subparsers(dest="command", required=True)
    run_cmd.add_parser(sub)
    bench.add_parser(sub)
    return ap.parse_args(argv)


def kernel(text: str, name: str | None = None):
    """A kernel, parsed and checked but not compiled (no Numba work)."""
    module = nbx.compile(text)
    return module.kernels[name] if name else next(iter(module.kernels.values()))


MATVEC = "kernel matvec(A: T[m, k], v: T[k]) -> T[m]:\n    return sum(A * v, over=k)\n"
MIXED = ("kernel mixed(a: i16[n], b: u8[n], c: bool[n], s: f32, t: T) -> f64[n]:\n"
         "    return f64(a) + f64(b) + f64(c) + f64(s) + f64(t)\n")


# end to end -------------------------------------------------------------------------------
def test_run_on_random_inputs_prints_a_summary():
    proc = nbxc("run", str(EXAMPLES / "normalize.nbx"), "--size", "n=2e3")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "x = random float64 array of shape (2000,)" in out
    assert "result0 = float64 array of shape (2000,)" in out
    assert "min " in out and "max " in out and "mean " in out and "NaN 0" in out
    assert "..." in out


def test_run_with_npy_inputs_saves_what_the_kernel_returns(tmp_path):
    A = np.arange(12, dtype=np.float32).reshape(3, 4)
    v = np.linspace(-1, 1, 4, dtype=np.float32)
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "v.npy", v)
    proc = nbxc("run", str(EXAMPLES / "matvec.nbx"), "--arg", "A=A.npy", "--arg", "v=v.npy",
                "-o", "out.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = nbx.load(EXAMPLES / "matvec.nbx").matvec(A, v)
    saved = np.load(tmp_path / "out.npy")
    assert saved.dtype == np.float32
    np.testing.assert_array_equal(saved, expected)


def test_run_saves_several_results_by_name_in_npz(tmp_path):
    x = np.array([3.0, -1.0, 2.0, 8.0])
    np.save(tmp_path / "x.npy", x)
    proc = nbxc("run", str(EXAMPLES / "stats.nbx"), "--arg", "x=x.npy", "-o", "s.npz",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "s.npz") as z:
        assert sorted(z.files) == [f"result{i}" for i in range(5)]
        got = [z[f"result{i}"][()] for i in range(5)]
    assert got == pytest.approx([-1.0, 8.0, x.mean(), x.var(), x.std()])


def test_bench_json(tmp_path):
    proc = nbxc("bench", str(EXAMPLES / "expr.nbx"), "-k", "dot", "--size", "n=1000",
                "--repeat", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kernel"] == "dot" and report["sizes"] == {"n": 1000}
    assert report["repeat"] == 2 and report["bytes"] == 2 * 8 * 1000
    (row,) = report["results"]
    assert row["target"] == "cpu" and row["match"] is True and row["mismatch"] is None
    assert row["cache"] in ("warm", "cold", "partial", "unknown")
    for key in ("compile_s", "first_call_s", "median_s", "min_s", "ratio", "gbps"):
        assert row[key] > 0
    ref = report["reference"]
    assert ref["median_s"] > 0 and ref["min_s"] <= ref["median_s"]
    assert proc.stderr == ""    # no progress display when stderr is not a terminal


@pytest.mark.parametrize("args, message", [
    (["-k", "nope", "--size", "n=3"], "no kernel 'nope'"),
    (["-k", "dot"], "no length for dimension n: give --size n=N"),
    (["-k", "dot", "--size", "n=3", "--arg", "a=bad.npy"], "--arg a=bad.npy: cannot read"),
    (["-k", "dot", "--arg", "a=x32.npy"], "dot(): a must be a float64 array"),
    (["-k", "dot", "--size", "n=3", "--arg", "q=1"], "unexpected keyword argument 'q'"),
])
def test_run_errors_are_exit_1_without_traceback(tmp_path, args, message):
    (tmp_path / "bad.npy").write_bytes(b"not a numpy file")
    np.save(tmp_path / "x32.npy", np.ones(3, np.float32))
    proc = nbxc("run", str(EXAMPLES / "expr.nbx"), *args, cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


# option parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("n=1000000", ("n", 1000000)), ("n=1e6", ("n", 1000000)), ("m_2=0", ("m_2", 0)),
    ("k=1_000", ("k", 1000)), (" n = 7 ", ("n", 7)), ("n=2.0", ("n", 2)),
])
def test_parse_size(text, expected):
    assert run_cmd.parse_size(text) == expected


@pytest.mark.parametrize("text", ["n", "n=", "=5", "1n=5", "n=abc", "n=1.5", "n=-1", "n=nan",
                                  "n=inf"])
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        run_cmd.parse_size(text)


def test_bad_option_values_are_usage_errors(capsys):
    for argv in (["run", "f.nbx", "--size", "n=x"], ["run", "f.nbx", "--seed", "-1"],
                 ["run", "f.nbx", "--specialize", "T=float32"],
                 ["bench", "f.nbx", "--repeat", "0"]):
        with pytest.raises(SystemExit) as exc:
            parse(*argv)
        assert exc.value.code == 2
    assert "did you mean f32?" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [
    ("a=2", 2), ("a=-3", -3), ("a=2.5", 2.5), ("a=1e-3", 1e-3), ("a=True", True),
    ("a=false", False), ("a=inf", float("inf")),
])
def test_parse_arg_literals(text, value):
    arg = run_cmd.parse_arg(text)
    assert arg.name == "a" and arg.path is None
    assert arg.value == value and type(arg.value) is type(value)


def test_parse_arg_files_and_nan():
    assert run_cmd.parse_arg("x=data/x.npy") == run_cmd.Arg("x", "data/x.npy",
                                                            path="data/x.npy")
    assert run_cmd.parse_arg("x=x").path == "x"     # not a literal: a file name
    assert np.isnan(run_cmd.parse_arg("a=nan").value)


def test_parse_specialize():
    assert run_cmd.parse_specialize("T=f32") == ("T", np.dtype(np.float32))
    with pytest.raises(argparse.ArgumentTypeError, match="did you mean i64"):
        run_cmd.parse_specialize("T=int64")


# inputs -----------------------------------------------------------------------------------
def test_random_inputs_are_seeded_per_parameter():
    k = kernel(MATVEC)
    a = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "m=3", "--size", "k=4"))
    b = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "m=3", "--size", "k=4"))
    c = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "m=3", "--size", "k=4",
                                      "--seed", "1"))
    np.testing.assert_array_equal(a.kwargs["A"], b.kwargs["A"])
    assert not np.array_equal(a.kwargs["A"], c.kwargs["A"])
    assert a.kwargs["A"].shape == (3, 4) and a.kwargs["v"].shape == (4,)
    assert a.binding == {"T": np.dtype(np.float64)} and a.random


def test_a_given_array_binds_the_type_and_leaves_other_inputs_alone(tmp_path):
    k = kernel(MATVEC)
    np.save(tmp_path / "A.npy", np.ones((2, 5), np.float32))
    random = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "m=2", "--size", "k=5",
                                           "--specialize", "T=f32"))
    given = run_cmd.build_inputs(k, parse("run", "f.nbx", "--arg", f"A={tmp_path}/A.npy"))
    assert given.binding == {"T": np.dtype(np.float32)}
    assert given.lengths == {"m": 2, "k": 5}
    np.testing.assert_array_equal(given.kwargs["v"], random.kwargs["v"])
    assert given.kwargs["v"].dtype == np.float32


def test_input_errors_name_the_problem(tmp_path):
    k = kernel(MATVEC)
    np.save(tmp_path / "A.npy", np.ones((2, 5)))
    cases = [
        (["--size", "m=2"], "no length for dimension k: give --size k=N"),
        (["--size", "m=2", "--size", "k=3", "--size", "n=4"], "matvec has no dimension n"),
        (["--arg", f"A={tmp_path}/A.npy", "--size", "k=4"], "--size k=4, but A"),
        (["--arg", f"A={tmp_path}/A.npy", "--specialize", "T=f32"], "--specialize T=f32 but A"),
        (["--size", "m=2", "--size", "k=3", "--specialize", "U=f32"], "no type variable U"),
        (["--arg", "A=2.0", "--size", "m=1", "--size", "k=1"], "give a .npy file"),
        (["--size", "m=2", "--size", "m=3", "--size", "k=1"], "--size m is given twice"),
    ]
    for argv, message in cases:
        with pytest.raises(UserError, match=message.replace("[", r"\[")):
            run_cmd.build_inputs(k, parse("run", "f.nbx", *argv))


def test_random_values_by_dtype():
    k = kernel(MIXED)
    inputs = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "n=500"))
    a, b, c, s, t = (inputs.kwargs[p] for p in "abcst")
    assert a.dtype == np.int16 and a.min() >= -100 and a.max() < 100 and a.min() < 0
    assert b.dtype == np.uint8 and b.max() < 100
    assert c.dtype == np.bool_ and 0 < c.sum() < 500
    assert isinstance(s, np.float32) and isinstance(t, np.float64)


def test_literals_for_scalars():
    k = kernel(MIXED)
    plain = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "n=2", "--arg", "t=3"))
    assert plain.kwargs["t"] == 3 and plain.binding == {"T": np.dtype(np.int64)}
    typed = run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "n=2", "--arg", "t=3",
                                          "--specialize", "T=u8"))
    assert typed.kwargs["t"].dtype == np.uint8
    with pytest.raises(UserError, match="out of range for uint8"):
        run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "n=2", "--arg", "t=-1",
                                      "--specialize", "T=u8"))
    with pytest.raises(UserError, match="does not convert"):
        run_cmd.build_inputs(k, parse("run", "f.nbx", "--size", "n=2", "--arg", "t=2.5",
                                      "--specialize", "T=i32"))


def test_select_kernel():
    module = nbx.compile(MATVEC + MIXED)
    assert run_cmd.select_kernel(module, "f.nbx", "mixed").name == "mixed"
    with pytest.raises(UserError, match="has 2 kernels .*choose one with -k"):
        run_cmd.select_kernel(module, "f.nbx", None)
    assert run_cmd.select_kernel(nbx.compile(MATVEC), "f.nbx", None).name == "matvec"


# results ----------------------------------------------------------------------------------
def test_format_result():
    small = run_cmd.format_result("result0", np.array([1.5, 2.0]))
    assert small == "result0 = float64 array of shape (2,):\n[1.5 2. ]"
    assert run_cmd.format_result("result1", np.float32(0.25)) == "result1 = 0.25 (float32)"
    big = np.arange(5000, dtype=np.float64)
    big[7] = np.nan
    text = run_cmd.format_result("result0", big)
    assert "NaN 1" in text and "min 0" in text and "max 4999" in text and "..." in text
    ints = run_cmd.format_result("result0", np.arange(2000, dtype=np.int32))
    assert "NaN" not in ints and "mean 999.5" in ints


def test_output_rule():
    assert run_cmd.output_kind(None, 2, "f") is None
    assert run_cmd.output_kind("out.npy", 1, "f") == "npy"
    assert run_cmd.output_kind("out.npz", 1, "f") == "npz"
    assert run_cmd.output_kind("out.NPZ", 3, "f") == "npz"
    with pytest.raises(UserError, match="-o FILE.npz"):
        run_cmd.output_kind("out.npy", 2, "f")
    with pytest.raises(UserError, match="must end in .npy"):
        run_cmd.output_kind("out.txt", 1, "f")


# bench ------------------------------------------------------------------------------------
def test_compare_with_the_reference():
    x = np.linspace(0, 1, 10)
    assert bench.compare((x,), (x * (1 + 1e-9),), False) is None
    assert "1 of 10 values differ" in bench.compare((x + (x == 1) * 1e-3,), (x,), False)
    assert bench.compare((x + 1e-5,), (x,), True) is None           # f32 tolerance
    assert bench.compare((np.float64(np.nan),), (np.float64(np.nan),), False) is None
    assert bench.compare((np.arange(3),), (np.arange(3) + [0, 0, 1],), False) \
        .startswith("result0: 1 of 3 values differ; first at index (2,)")
    assert "shape" in bench.compare((np.ones(3),), (np.ones(4),), False)


def test_bench_reports_a_mismatch_loudly(tmp_path, monkeypatch, capsys):
    src = tmp_path / "twice.nbx"
    src.write_text("kernel twice(x: f64[n]) -> f64[n]:\n    return 2 * x\n")

    def wrong(self, *args):
        return 2 * args[0] + 1
    monkeypatch.setattr(nbx.Kernel, "reference", wrong)
    args = parse("bench", str(src), "--size", "n=10", "--repeat", "1", "--no-cache")
    assert args.run(args) == 1
    out, err = capsys.readouterr()
    assert "MISMATCH" in out and "off" in out
    assert "nbxc: error: MISMATCH: nbx on cpu does not match the NumPy reference" in err
