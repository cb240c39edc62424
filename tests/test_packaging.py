"""The package as users get it: `python -m build` makes an sdist and a wheel (the wheel built
from the sdist) that hold the grammar, the combine kernels and py.typed; the wheel installs in
a fresh virtual environment (its dependencies from the index, or pip's cache) and runs an
example through the installed `nbxc`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import nbx

ROOT = Path(__file__).parent.parent
DATA = ["nbx/grammar/nbx.lark", "nbx/chunked/combine.nbx", "nbx/py.typed"]


def run(*cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_build_install_in_a_fresh_venv_and_run_an_example(tmp_path):
    pytest.importorskip("build")
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(),
                        re.M).group(1)
    assert nbx.__version__ == version
    run(sys.executable, "-m", "build", "--outdir", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("nbx-*.whl")
    (sdist,) = (tmp_path / "dist").glob("nbx-*.tar.gz")
    assert wheel.name == f"nbx-{version}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(DATA) <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    entry_points = zipfile.ZipFile(wheel).read(f"nbx-{version}.dist-info/entry_points.txt")
    assert b"nbxc = nbx.cli:main" in entry_points and b"nbx = nbx.lexer:NbxLexer" in entry_points
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert set(DATA) | {"pyproject.toml", "README.md"} <= members

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    run(bin_dir / "python", "-m", "pip", "install", "-q", wheel)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["NBX_CACHE_DIR"] = str(tmp_path / "cache")
    example = tmp_path / "normalize.nbx"   # outside the checkout: nothing of it is imported
    example.write_text((ROOT / "examples" / "normalize.nbx").read_text())
    out = run(bin_dir / "nbxc", "run", example, "--size", "n=1000", cwd=tmp_path, env=env).stdout
    assert "result0 = float64 array of shape (1000,)" in out
    assert run(bin_dir / "nbxc", "--version", env=env).stdout.strip() == f"nbxc {version}"
    where = run(bin_dir / "python", "-c", "import nbx; print(nbx.__file__)", cwd=tmp_path,
                env=env).stdout
    assert str(venv) in where
