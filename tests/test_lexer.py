"""The Pygments lexer for .nbx (nbx/lexer.py), found through its entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from nbx.cli import main
from nbx.dsl.ops import FUNCTIONS, REDUCTIONS
from nbx.lexer import NbxLexer

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.nbx"))


def tokens(text: str) -> list[tuple]:
    return [(t, v) for t, v in NbxLexer().get_tokens(text) if v.strip()]


def test_registered_through_the_entry_point():
    assert isinstance(get_lexer_by_name("nbx"), NbxLexer)
    assert isinstance(get_lexer_for_filename("kernels.nbx"), NbxLexer)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_lex_without_errors_and_round_trip(path):
    text = path.read_text()
    toks = list(NbxLexer().get_tokens(text))
    assert not [v for t, v in toks if t in Error]
    assert "".join(v for _, v in toks) == text if text.endswith("\n") else text + "\n"


def test_what_each_word_is():
    src = ('# comment\nconst EPS = 1e-6\nkernel f(x: T2[n], y: f32) -> f64:\n'
           '    "doc"\n    return sum(sqrt(x) ** 2.5, over=n) + pi if True else index(n) // 3\n')
    toks = dict((v, t) for t, v in tokens(src))
    assert toks["# comment"] in Comment
    assert toks["const"] in Keyword and toks["EPS"] in Name.Function
    assert toks["kernel"] in Keyword and toks["f"] in Name.Function
    assert toks["T2"] in Keyword.Type and toks["f32"] in Keyword.Type
    assert toks['"doc"'] in String.Doc
    assert toks["sum"] in Name.Builtin and toks["sqrt"] in Name.Builtin
    assert toks["index"] in Name.Builtin and toks["pi"] in Name.Builtin
    assert toks["over"] in Keyword and toks["if"] in Keyword and toks["True"] in Keyword
    assert toks["**"] in Operator and toks["//"] in Operator
    assert toks["2.5"] in Number.Float and toks["1e-6"] in Number.Float
    assert toks["3"] in Number.Integer
    assert toks["x"] is Name and toks["n"] is Name


def test_every_function_of_the_op_table_is_a_builtin():
    for word in list(FUNCTIONS) + list(REDUCTIONS):
        ((t, v),) = tokens(word)
        assert t in Name.Builtin, word


def test_a_local_named_over_is_a_name():
    toks = tokens("    over = x\n")
    assert toks[0] == (Name, "over")


def test_nbxc_explain_highlights_the_source(capsys):
    path = str(EXAMPLES[0])
    assert main(["explain", path, "--emit", "source", "--color", "always"]) == 0
    colored = capsys.readouterr().out
    assert main(["explain", path, "--emit", "source", "--color", "never"]) == 0
    plain = capsys.readouterr().out
    assert "\x1b[" in colored and "\x1b[" not in plain and "kernel " in plain
