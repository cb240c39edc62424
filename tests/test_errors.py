"""Compile errors as the user sees them (LANGUAGE.md section 9).

`file:line:col: error: message`, the source line, a caret under the column, a hint where it
helps; never a traceback or an internal file name; and no input, however malformed, makes the
compiler raise anything but CompileError or take long.
"""

from __future__ import annotations

import glob
import os
import pickle
import random
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbx
from nbx.dsl import check

FILE = "prog.nbx"
HEADER = "kernel f(x: f64[n]) -> f64[n]:\n"
EXAMPLES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "examples", "*.nbx")))


def compile_error(src: str, filename: str = FILE) -> nbx.CompileError:
    with pytest.raises(nbx.CompileError) as info:
        nbx.compile(src, filename=filename)
    return info.value


def assert_user_facing(err: nbx.CompileError, src: str, filename: str = FILE) -> list[str]:
    """The rendered error: its head, the source line, the caret; nothing internal."""
    text = str(err)
    lines = text.split("\n")
    assert lines[0] == f"{filename}:{err.line}:{err.column}: error: {err.message}"
    assert err.filename == filename
    assert err.line >= 1 and err.column >= 1
    src_lines = src.split("\n")
    source_line = src_lines[err.line - 1].rstrip("\r") if err.line <= len(src_lines) else ""
    ours = [lines[0]]   # what the compiler wrote, as opposed to the echoed user source
    if source_line.strip():
        assert lines[1] == "    " + source_line.expandtabs(1)
        caret = lines[2]
        assert caret.startswith("    " + " " * (err.column - 1) + "^")
        assert set(caret.strip()) <= {"^", "~"}
    if err.hint:
        assert lines[-1] == f"hint: {err.hint}"
        ours.append(lines[-1])
    assert_nothing_internal("\n".join(ours))
    return lines


def assert_nothing_internal(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
    assert not re.search(r"\w\.py\b", text), text
    assert "nbx/dsl" not in text and "site-packages" not in text and "lark" not in text.lower()


# --- the rendered form ---------------------------------------------------------------------

def test_rendering_in_full():
    src = HEADER + "    return sqr(x)\n"
    err = compile_error(src)
    assert str(err) == ("prog.nbx:2:12: error: unknown function 'sqr'\n"
                        "        return sqr(x)\n"
                        "               ^~~\n"
                        "hint: did you mean 'sqrt'?")
    assert (err.filename, err.line, err.column) == ("prog.nbx", 2, 12)
    assert err.message == "unknown function 'sqr'"
    assert err.hint == "did you mean 'sqrt'?"


def test_rendering_without_a_hint():
    src = "kernel f(x: f64[n]) -> (f64[n], f64):\n    return x\n"
    err = compile_error(src)
    assert err.hint is None
    assert str(err).split("\n") == [
        "prog.nbx:2:5: error: kernel 'f' returns 1 value but its type declares 2",
        "        return x",
        "        ^"]


def test_caret_width_follows_the_span():
    src = HEADER + "    return x + undefined_name\n"
    lines = assert_user_facing(compile_error(src), src)
    assert lines[2] == "    " + " " * 15 + "^" + "~" * 13


def test_default_filename():
    with pytest.raises(nbx.CompileError) as info:
        nbx.compile(HEADER + "    return y\n")
    assert str(info.value).startswith("<string>:2:12: error: unknown name 'y'")


def test_error_is_picklable():
    err = compile_error(HEADER + "    return y\n")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == err.line


def test_crlf_source_renders_without_carriage_returns():
    src = "kernel f(x: f64[n]) -> f64[n]:\r\n    return y\r\n"
    err = compile_error(src)
    assert "\r" not in str(err)
    assert_user_facing(err, src)


@pytest.mark.parametrize("separator", ["\f", "\u2028", "\x1c", "\x85"])
def test_source_line_is_found_whatever_is_in_comments(separator):
    # Lines end at "\n" only; other line separators in a comment must not shift the display.
    src = f"# a{separator}b\n" + HEADER + "    return y\n"
    err = compile_error(src)
    assert (err.line, err.column) == (3, 12)
    assert str(err).split("\n")[1] == "        return y"


def test_tab_inside_a_line_keeps_the_caret_aligned():
    src = HEADER + "    y =\tx +\tq\n    return y\n"
    err = compile_error(src)
    assert (err.line, err.column) == (2, 13)
    lines = assert_user_facing(err, src)
    assert lines[1][4 + err.column - 1] == "q"


def test_load_reports_the_path(tmp_path):
    path = tmp_path / "bad.nbx"
    path.write_text(HEADER + "    return y\n", encoding="utf-8")
    with pytest.raises(nbx.CompileError) as info:
        nbx.load(path)
    assert str(info.value).startswith(f"{path}:2:12: error: unknown name 'y'")


def test_load_skips_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.nbx"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "    return q\n").encode())
    with pytest.raises(nbx.CompileError) as info:
        nbx.load(path)
    assert (info.value.line, info.value.column) == (2, 12)


def test_compile_skips_a_byte_order_mark():
    """Text read with encoding="utf-8" keeps the mark; nbx.compile takes it as nbx.load does."""
    nbx.compile("\ufeff" + HEADER + "    return x\n")
    with pytest.raises(nbx.CompileError) as info:
        nbx.compile("\ufeff" + HEADER + "    return q\n")
    assert (info.value.line, info.value.column) == (2, 12)


def test_load_of_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.nbx"
    path.write_bytes(HEADER.encode() + b"    # caf\xe9\n    return x\n")
    with pytest.raises(nbx.CompileError) as info:
        nbx.load(path)
    err = info.value
    assert (err.line, err.column) == (2, 10)
    assert "UTF-8" in err.message
    assert_nothing_internal(str(err))


# --- what each error says and where --------------------------------------------------------

CASES = [
    # (source, line, column, message, hint fragment or None)
    (HEADER + "\treturn x\n", 2, 1, "tab in indentation", "spaces"),
    (HEADER + "    y = x\n      return y\n", 3, 7, "unexpected indentation", None),
    (HEADER + "    y = x\n  return y\n", 3, 3,
     "unindent does not match any outer indentation level", None),
    (HEADER + "return x\n", 2, 1, "expected an indented block", None),
    ("kernel f(x: f64[n]) -> f64[n]\n    return x\n", 1, 30,
     "missing ':' at the end of the kernel header", None),
    (HEADER + "    return (x + 1\n", 2, 12, "unclosed '('", "')'"),
    (HEADER + "    y = [x\n    return y\n", 2, 9, "unexpected '['", "indexing"),
    (HEADER + "    return x +\n", 2, 15, "missing operand", "inside ( )"),
    (HEADER + "    return 1 < x < 3\n", 2, 18, "comparisons cannot be chained", "and"),
    (HEADER + "    return x \\\n        + 1\n", 2, 14, "unexpected character '\\\\'",
     "backslash"),
    (HEADER + "    return 'a'\n", 2, 12, "unexpected character \"'\"", "double quotes"),
    (HEADER + '    "doc\n    return x\n', 2, 5, "unterminated string", None),
    (HEADER + "    if = x\n    return x\n", 2, 5, "'if' is a reserved word", None),
    (HEADER + "    __y = x\n    return x\n", 2, 5, "name '__y' starts with '__'", "reserved"),
    (HEADER + "    return 1__0\n", 2, 12, "invalid integer literal '1__0'", "underscores"),
    (HEADER + "    return sqrt(x, x)\n", 2, 12, "sqrt() takes 1 argument, got 2", None),
    (HEADER + "    return min(x, 0)\n", 2, 12, "min() reduces one expression, got 2 arguments",
     "minimum(a, b)"),
    (HEADER + "    return x and x > 0\n", 2, 12, "and takes bool operands, got f64 array",
     "!= 0"),
    ("kernel f(x: i64[n]) -> i64[n]:\n    return not x\n", 2, 16,
     "not takes bool operands, got i64 array", "x != 0"),
    ("kernel f(x: bool[n]) -> i64[n]:\n    return x + x\n", 2, 12,
     "arithmetic '+' on two bools", "i64("),
    ("kernel f(x: f64[n]) -> i32[n]:\n    return x\n", 2, 12,
     "cannot return f64 as i32 implicitly", "i32(...)"),
    ("kernel f(x: f64[n], y: f64[m]) -> f64[n]:\n    return x * y\n", 2, 12,
     "the returned value has dimension 'm', which the result type f64[n] lacks",
     "sum(..., over=m)"),
    ("kernel f(x: f64[n]) -> f64[m]:\n    return x\n", 1, 28,
     "dimension 'm' is not bound by any parameter", None),
    ("kernel f(x: f64[n, n]) -> f64:\n    return sum(x)\n", 1, 20,
     "dimension 'n' appears twice in one type", None),
    ("kernel f(x: float64[n]) -> f64[n]:\n    return x\n", 1, 13, "unknown type 'float64'",
     "did you mean 'f64'?"),
    ("kernel f(x: c64[n]) -> f64[n]:\n    return x\n", 1, 13,
     "dtype 'c64' is not supported yet", None),
    ("kernel f(x: f16[n]) -> f64[n]:\n    return x\n", 1, 13,
     "dtype 'f16' is not supported yet", None),
    (HEADER + "    return x * pie\n", 2, 16, "unknown name 'pie'", "did you mean 'pi'?"),
    ("kernel f(x: f64[n], y: f64[m]) -> f64:\n    return sum(x, over=m)\n", 2, 24,
     "the reduced expression has no dimension 'm' (its dimensions: n)", None),
    ("kernel f(A: f64[m, k]) -> i64:\n    return argmax(A)\n", 2, 12,
     "argmax() reduces exactly one dimension, here 2 (m, k)", "over=d"),
    ("const A = B\nconst B = A\n", 1, 7, "consts depend on each other in a cycle: A -> B -> A",
     None),
    ("def g(a):\n    return g(a)\n" + HEADER + "    return g(x)\n", 2, 12,
     "def 'g' calls itself", "recursion"),
    ("def g(a):\n    return sum(a)\n" + HEADER + "    return g(x)\n", 2, 12,
     "reduction sum() inside def 'g'", None),
    (HEADER + "    return x\n" + HEADER + "    return x\n", 3, 8, "'f' is defined twice",
     "module-wide"),
    (HEADER + "    return x\nconst n = 1\n", 3, 7,
     "const 'n' has the name of a dimension of kernel 'f' (line 1)", None),
    (HEADER + "    y = x\n    y = x\n    return y\n", 3, 5, "'y' is assigned twice", None),
    (HEADER + "    y = z\n    z = x\n    return y\n", 2, 9, "'z' is used before it is assigned",
     None),
    ("kernel g(x: f64[n]) -> f64[n]:\n    return x\n" + HEADER + "    return g(x)\n", 4, 12,
     "kernel 'g' cannot be called from a kernel or def", None),
    ("kernel f(x: f64[n]) -> u8:\n    return 300\n", 2, 12, "300 is out of range for u8", None),
    (HEADER + "    return x * 10**20\n", 2, 16, "integer constant overflows i64", "1e20"),
]


@pytest.mark.parametrize("src, line, column, message, hint", CASES)
def test_error_messages(src, line, column, message, hint):
    err = compile_error(src)
    assert (err.line, err.column, err.message) == (line, column, message)
    if hint is None:
        pass
    else:
        assert err.hint is not None and hint in err.hint
    assert_user_facing(err, src)


# --- internal errors and deep nesting ------------------------------------------------------

def test_internal_error_is_a_compile_error_at_the_statement(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.delenv("NBX_DEBUG", raising=False)
    monkeypatch.setattr(check._Checker, "apply", broken)
    src = HEADER + "    y = x\n    z = y + 1\n    return z\n"
    err = compile_error(src)
    assert (err.line, err.column) == (3, 5)
    assert err.message.startswith("internal compiler error (KeyError")
    assert "NBX_DEBUG" in err.hint
    assert_user_facing(err, src)


def test_nbx_debug_shows_the_internal_error(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setenv("NBX_DEBUG", "1")
    monkeypatch.setattr(check._Checker, "apply", broken)
    with pytest.raises(KeyError):
        nbx.compile(HEADER + "    return x + 1\n")


DEEP = {
    "1000 parentheses": "(" * 1000 + "x" + ")" * 1000,
    "1000 unary minuses": "-" * 1000 + "x",
    "1000 nots": "not " * 1000 + "x",
    "1000 inverts": "~" * 1000 + "x",
    "1000 powers": "x" + " ** x" * 1000,
    "3000 terms": "x" + " + x" * 3000,
    "1000 calls": "sqrt(" * 1000 + "x" + ")" * 1000,
    "1000 unclosed": "(" * 1000 + "x",
    "1000 unopened": "x" + ")" * 1000,
    "1000 brackets": "[" * 1000,
    "500 reductions": "sum(" * 500 + "x" + ", over=n)" * 500,
    "20000 unary minuses": "-" * 20000 + "x",
}


@pytest.mark.parametrize("expr", list(DEEP.values()), ids=list(DEEP))
def test_deep_nesting_is_a_compile_error_or_compiles_fast(expr):
    src = HEADER + "    y = x\n    return " + expr + "\n"
    start = time.perf_counter()
    try:
        nbx.compile(src, filename=FILE)
    except nbx.CompileError as err:
        assert_user_facing(err, src)
        assert err.line in (2, 3)
    assert time.perf_counter() - start < 5


def test_moderate_nesting_compiles():
    nbx.compile(HEADER + "    return " + "-" * 150 + "x" + " + x" * 250 + "\n")
    nbx.compile(HEADER + "    return " + "(" * 200 + "x" + ")" * 200 + "\n")


def test_nesting_too_deep_points_at_the_statement():
    src = HEADER + "    y = x\n    return " + "-" * 5000 + "x\n"
    err = compile_error(src)
    assert (err.line, err.column) == (3, 5)
    assert "nested too deeply" in err.message


# --- malformed input: only CompileError, quickly -------------------------------------------

MALFORMED = [
    "(", ")", "[", "]", ":", "->", "\x00", "\ufeff", "\\", "'", '"', '"""', "\t", "\r", "\f",
    "kernel", "kernel f", "kernel f(", "kernel f(x", "kernel f(x:", "kernel f(x: f64[",
    "kernel f(x: f64[n]", "kernel f(x: f64[n])", "kernel f(x: f64[n]) ->",
    "kernel f(x: f64[n]) -> f64[n]", "kernel f(x: f64[n]) -> f64[n]:",
    "def", "def g", "def g(", "def g():", "def g():\n    return", "const", "const A", "const A =",
    "const A = (", HEADER + "    return (((x\n", HEADER + "    return x)))\n",
    HEADER + "    return [x]\n", HEADER + '    return "\n', HEADER + '    """\n    return x\n',
    HEADER + "    return x\n\t\n\treturn x\n", HEADER + "    return x if\n",
    HEADER + "    return x,\n", HEADER + "    a, = x\n    return a\n",
    HEADER + "    return sum(x, over=)\n", HEADER + "    return sum(x, over=())\n",
    HEADER + "    return sum(x, =n)\n", HEADER + "    return f(,)\n",
    HEADER + "    return x\x00\n", HEADER + "    return x\u00a0+ 1\n", "\u202e" + HEADER,
    "kernel f(x: f64[n]) -> f64[n]:\n" + "    y = x\n" * 2 + "  " * 40 + "return y\n",
    "kernel f(x: T[n]) -> T[n]:\n    return x << 1.5\n",
    "kernel f(x: f64[n]) -> f64:\n    return sum(x, over=(n, n))\n",
    "kernel f(x: f64[n]) -> f64:\n    return mean(x, over=(n,), over=n)\n",
    "kernel f(x: f64[n]) -> f64[n]:\n    return x(x)(x)\n",
    "kernel f(x: f64[n]) -> f64[n]:\n    return (x)(x)\n",
    "kernel f(x: f64[n]) -> f64[n]:\n    return 1e999999 * x\n",
    "kernel f(x: f64[n]) -> f64[n]:\n    return x + 99999999999999999999999999999\n",
    "kernel f(x: i64[n]) -> i64[n]:\n    return x + 99999999999999999999999999999\n",
    "kernel f(x: i64[n]) -> i64[n]:\n    return x << 99999999999999999999999999999\n",
    "kernel f(x: i64[n]) -> i64[n]:\n    return i64(99999999999999999999999999999) + x\n",
    "kernel f(x: i64[n]) -> f64[n]:\n    return x ** -99999999999999999999\n",
    "const A = 10 ** 10 ** 10 ** 10\n",
    "const A = 1 << 100000000000\n",
    "const A = 2.0 ** 100000\n",
    "const A = 7 // 0 + 7 % 0 + 7.0 // 0 + 7.0 % 0.0\n",
    "const A = i8(-128) // -1\n",
]


@pytest.mark.parametrize("src", MALFORMED, ids=[f"malformed{i}" for i in range(len(MALFORMED))])
def test_malformed_inputs_raise_only_compile_errors(src):
    start = time.perf_counter()
    try:
        nbx.compile(src, filename=FILE)
    except nbx.CompileError as err:
        assert_user_facing(err, src)
    assert time.perf_counter() - start < 2


def _mutate(rng: random.Random, text: str, pieces: list[str]) -> str:
    for _ in range(rng.randint(1, 6)):
        pos = rng.randint(0, len(text))
        roll = rng.random()
        if roll < 0.4:
            text = text[:pos] + rng.choice(pieces) + text[pos:]
        elif roll < 0.8:
            text = text[:pos] + text[pos + rng.randint(1, 6):]
        else:
            other = rng.choice(pieces)
            text = text[:pos] + other * rng.randint(1, 30) + text[pos:]
    return text


PIECES = list("()[]:,=+-*/%<>!&|^~#\"'\\ \t\n_.0123456789eE") + [
    "kernel ", "def ", "const ", "return ", " if ", " else ", " and ", " or ", " not ", "True",
    "False", "x", "n", "sum(", "over=", "f64", "T", "\n    ", "\n        ", "**", "//", "<<",
    ">>", "->", "\r\n", "\x00", "é", "\u2028", "\f", "(x,)", "index(", "__", "i8(", "1e308",
    "2**63", '"""']


def test_mutated_examples_raise_only_compile_errors():
    sources = [Path(path).read_text(encoding="utf-8") for path in EXAMPLES]
    assert sources, "the examples directory is empty"
    rng = random.Random(20240611)
    slowest = 0.0
    for _ in range(300):
        src = _mutate(rng, rng.choice(sources), PIECES)
        start = time.perf_counter()
        try:
            nbx.compile(src, filename=FILE)
        except nbx.CompileError as err:
            assert_user_facing(err, src)
            assert "internal compiler error" not in err.message, (src, str(err))
        slowest = max(slowest, time.perf_counter() - start)
    assert slowest < 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_raises_only_compile_errors(src):
    try:
        nbx.compile(src, filename=FILE)
    except nbx.CompileError as err:
        assert_user_facing(err, src)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=60))
def test_random_token_soup_raises_only_compile_errors(pieces):
    src = "".join(pieces)
    try:
        nbx.compile(src, filename=FILE)
    except nbx.CompileError as err:
        assert_user_facing(err, src)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_random_kernel_bodies_raise_only_compile_errors(pieces):
    src = HEADER + "    y = " + "".join(pieces) + "\n    return y\n"
    try:
        nbx.compile(src, filename=FILE)
    except nbx.CompileError as err:
        assert_user_facing(err, src)
        assert "internal compiler error" not in err.message


def test_examples_compile():
    for path in EXAMPLES:
        nbx.load(path)
