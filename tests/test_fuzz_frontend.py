"""The parser and checker under mutated and random sources: whatever the text, compiling it
gives a module or a CompileError (nothing else, no traceback printed), within a second; and
`nbxc check`'s diagnostics (compile.diagnose) the same.

Sources are mutated at the byte level (bytes deleted, inserted, replaced, duplicated: control
characters, tabs, carriage returns, non-ASCII, invalid UTF-8 through nbx.load) and at the token
level (tokens of the language and of Python deleted, swapped, repeated, replaced), starting
from the examples and from random programs (tests/programs.py). NBX_FUZZ_EXAMPLES sets the
number of mutations per test (default 300).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from programs import programs

import nbx
from nbx.dsl.compile import diagnose

EXAMPLES = int(os.environ.get("NBX_FUZZ_EXAMPLES") or 300)
SEEDS = [p.read_text() for p in sorted((Path(__file__).parent.parent / "examples")
                                       .glob("*.nbx"))]
TOKEN = re.compile(r'"""|[A-Za-z_][A-Za-z0-9_]*|\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?|\*\*|//|<<|>>'
                   r'|[<>=!]=|->|\n[ ]*|\s+|.', re.S)
VOCABULARY = ["kernel", "def", "const", "return", "if", "else", "and", "or", "not", "True",
              "False", "over", "=", "(", ")", "[", "]", ":", ",", "->", "\n", "\n    ",
              "\t", "**", "//", "+", "-", "*", "/", "%", "<<", ">>", "<", "==", "&", "|",
              "^", "~", '"', '"""', "#", "\\", "f64", "i8", "u64", "bool", "T", "sum",
              "mean", "argmin", "where", "sqrt", "index", "n", "x", "0", "1e309", "1_0",
              "99999999999999999999999", ".5", "lambda", "import", "__init__", "None",
              "print", "os", "np", "ü", "\x00", "\r", "\ufeff", "@", "$", "?", ";", "{", "}"]
SECOND = 1.0


def compiles_or_refuses(text: str) -> None:
    """Compiling `text` gives a module or a CompileError, prints nothing, and takes < 1 s."""
    printed = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            nbx.compile(text, filename="fuzz.nbx")
        except nbx.CompileError as err:
            assert str(err).startswith("fuzz.nbx:"), str(err)
        for err in diagnose(text, "fuzz.nbx"):
            assert isinstance(err, nbx.CompileError)
    took = time.perf_counter() - start
    assert took < SECOND, f"{took:.2f} s"
    assert "Traceback" not in printed.getvalue(), printed.getvalue()


def sources():
    return st.one_of(st.sampled_from(SEEDS), programs().map(lambda p: p.source))


@st.composite
def byte_mutations(draw):
    data = bytearray(draw(sources()).encode())
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        what = draw(st.integers(0, 3))
        junk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
            [b"\t", b"\r", b"\r\n", b"\x00", b"\xff", b"\xc3\xbc", b" ", b"\n", b"(", b")"]))
        if what == 0 and pos < len(data):
            del data[pos:pos + draw(st.integers(1, 8))]
        elif what == 1:
            data[pos:pos] = junk
        elif what == 2 and pos < len(data):
            data[pos:pos + len(junk)] = junk
        else:
            end = min(len(data), pos + draw(st.integers(1, 20)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


@st.composite
def token_mutations(draw):
    tokens = TOKEN.findall(draw(sources()))
    for _ in range(draw(st.integers(1, 5))):
        if not tokens:
            tokens = [draw(st.sampled_from(VOCABULARY))]
        i = draw(st.integers(0, len(tokens) - 1))
        what = draw(st.integers(0, 4))
        if what == 0:
            del tokens[i]
        elif what == 1:
            tokens.insert(i, draw(st.sampled_from(VOCABULARY)))
        elif what == 2:
            tokens[i] = draw(st.sampled_from(VOCABULARY + tokens))
        elif what == 3:
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i:i] = tokens[i:i + draw(st.integers(1, 6))]
    return "".join(tokens)


FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(byte_mutations())
def test_byte_mutations(data):
    note(repr(data))
    compiles_or_refuses(data.decode("utf-8", errors="replace"))


@FUZZ
@given(token_mutations())
def test_token_mutations(text):
    note(repr(text))
    compiles_or_refuses(text)


@settings(max_examples=max(1, EXAMPLES // 3), deadline=None)
@given(st.text(max_size=300) | st.lists(st.sampled_from(VOCABULARY), max_size=60)
       .map("".join))
def test_random_text(text):
    compiles_or_refuses(text)


@settings(max_examples=max(1, EXAMPLES // 10), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(byte_mutations())
def test_files_of_any_bytes_load_or_refuse(tmp_path, data):
    """nbx.load reads bytes: invalid UTF-8 is a CompileError at its position too."""
    path = tmp_path / "fuzz.nbx"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        nbx.load(path)
    except nbx.CompileError as err:
        assert str(err).startswith(str(path))
    assert time.perf_counter() - start < SECOND
