"""A Pygments lexer for .nbx files, registered as `nbx` through the `pygments.lexers` entry
point (pyproject.toml): `pygmentize -l nbx file.nbx`, Sphinx and MkDocs code blocks marked
`nbx`, and nbxc's own highlighting find it.

Its words come from the tables the checker uses (nbx/dsl/ops.py, types.py), so a function
added to the op table is highlighted without a change here.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from .dsl.ops import BUILTIN_CONSTANTS, FUNCTIONS, REDUCTIONS
from .dsl.types import DTYPES

KEYWORDS = ("kernel", "def", "const", "return", "if", "else", "and", "or", "not")


class NbxLexer(RegexLexer):
    """The nbx array language (.nbx): kernels over named dimensions."""

    name = "nbx"
    aliases = ["nbx"]
    filenames = ["*.nbx"]
    mimetypes = ["text/x-nbx"]

    tokens = {
        "root": [
            (r"\(", Punctuation, "call"),
            include("common"),
        ],
        "call": [   # inside parentheses: `over=` names a reduction's dimensions
            (r"(over)([ \t]*)(=)(?!=)", bygroups(Keyword, Whitespace, Operator)),
            (r"\(", Punctuation, "#push"),
            (r"\)", Punctuation, "#pop"),
            include("common"),
        ],
        "common": [
            (r"[ \t]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"""(.|\n)*?"""', String.Doc),
            (r'"([^"\\\n]|\\.)*"', String.Doc),
            (r"(kernel|def|const)([ \t]+)([A-Za-z_]\w*)",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(("True", "False"), suffix=r"\b"), Keyword.Constant),
            (words(tuple(DTYPES), suffix=r"\b"), Keyword.Type),
            (r"[A-Z][0-9]*\b", Keyword.Type),   # a type variable: T, U, T2
            (words(tuple(REDUCTIONS) + tuple(FUNCTIONS) + ("index",), suffix=r"\b"),
             Name.Builtin),
            (words(tuple(BUILTIN_CONSTANTS), suffix=r"\b"), Name.Builtin.Pseudo),
            (r"([0-9][0-9_]*)?\.[0-9][0-9_]*([eE][+-]?[0-9]+)?", Number.Float),
            (r"[0-9][0-9_]*\.([eE][+-]?[0-9]+)?", Number.Float),
            (r"[0-9][0-9_]*[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9][0-9_]*", Number.Integer),
            (r"->", Punctuation),
            (r"\*\*|//|<<|>>|<=|>=|==|!=|[-+*/%&|^~<>=]", Operator),
            (r"[()\[\],:]", Punctuation),
            (r"[A-Za-z_]\w*", Name),
            (r".", Text),
        ],
    }
