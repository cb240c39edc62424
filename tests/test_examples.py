"""examples/README.md: every example is listed, and every command it gives runs.

The commands run in-process through nbxc's entry point (nbx.cli.main), with the sizes cut
down so that the suite stays fast: what is tested is that the command as written works. The
kernels' results are checked against the reference interpreter by
tests/test_differential.py::test_example.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from nbx.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "examples" / "README.md").read_text()
COMMANDS = re.findall(r"`(nbxc run [^`]+)`", README)


def small(argv: list[str]) -> list[str]:
    """The command with every --size above 64 made 64 (1e6 elements compute nothing new)."""
    out = []
    for arg in argv:
        m = re.fullmatch(r"(\w+)=([0-9.e+]+)", arg)
        if m and out and out[-1] == "--size" and float(m.group(2)) > 64:
            arg = f"{m.group(1)}=64"
        out.append(arg)
    return out


def test_every_example_is_listed():
    listed = set(re.findall(r"\[`([\w.]+)`\]", README))
    files = {p.name for p in (ROOT / "examples").iterdir() if p.suffix in (".nbx", ".py")}
    assert files == listed
    assert {c.split()[2] for c in COMMANDS} >= {f"examples/{f}" for f in files
                                                if f.endswith(".nbx")}


@pytest.mark.parametrize("command", COMMANDS, ids=[c.split()[2][9:] for c in COMMANDS])
def test_the_command_runs(command, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = small(shlex.split(command)[1:])
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "result0 = " in out
