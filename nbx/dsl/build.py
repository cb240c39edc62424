"""parse + build: source text -> Lark parse tree -> AST (ast.py), with a Span on every node.

Syntax errors become CompileErrors with a readable message (labelled examples, practice 4).
"""

from __future__ import annotations

import ast as pyast
import hashlib
import sys
import warnings
from functools import lru_cache
from importlib import resources

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter

from . import ast
from .ops import Op
from .source import CompileError, Source, Span, located

RESERVED = {"kernel", "def", "const", "return", "if", "else", "and", "or", "not", "True",
            "False"}


class _NbxIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def process(self, stream):
        # Lark shares one postlexer between parses; the indentation state must be per parse
        # (or two threads compiling at once corrupt each other's indentation).
        return _NbxIndenter()._process(stream)

    def handle_NL(self, token):
        if self.paren_level > 0:
            return
        indent = token.rsplit("\n", 1)[-1]
        if "\t" in indent:
            raise _LayoutError(token.end_line, 1, "tab in indentation", "indent with spaces only")
        try:
            yield from super().handle_NL(token)
        except DedentError:
            raise _LayoutError(token.end_line, len(indent) + 1,
                               "unindent does not match any outer indentation level",
                               "indent the line as far as the block it belongs to") from None


class _LayoutError(Exception):
    """An indentation error found by the postlexer, which has no source to render it."""

    def __init__(self, line: int, column: int, message: str, hint: str):
        self.line, self.column, self.message, self.hint = line, column, message, hint


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("nbx.grammar").joinpath("nbx.lark").read_text()
    options = dict(parser="lalr", postlex=_NbxIndenter(), propagate_positions=True,
                   strict=True, maybe_placeholders=True)
    # Building the LALR tables (and strict mode's regex-collision check) takes a few hundred
    # milliseconds, so the built parser is kept in nbx's private cache directory, keyed by
    # grammar, options and versions. Not with Lark's cache=: it writes in place (a process
    # starting meanwhile reads a torn pickle) and keeps no hash of what it wrote.
    from ..cache import cached_object
    key = repr((grammar, sorted((k, repr(v)) for k, v in options.items() if k != "postlex"),
                lark.__version__, sys.version_info[:2]))
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cached_object(f"parser-{digest}.pickle", lambda: Lark(grammar, **options),
                         Lark.save, Lark.load)


# Labelled examples for syntax errors: Lark finds the one whose parser state matches best.
_SYNTAX_EXAMPLES = {
    "missing operand": ["kernel f(x: f64[n]) -> f64[n]:\n    return x +\n",
                        "kernel f(x: f64[n]) -> f64[n]:\n    return x * \n",
                        "kernel f(x: f64[n]) -> f64[n]:\n    y = \n    return y\n"],
    "unclosed '('": ["kernel f(x: f64[n]) -> f64[n]:\n    return (x + 1\n",
                     "kernel f(x: f64[n]) -> f64[n]:\n    return sqrt(x\n"],
    "missing ':' at the end of the kernel header": [
        "kernel f(x: f64[n]) -> f64[n]\n    return x\n"],
    "missing '->' and result type": ["kernel f(x: f64[n]):\n    return x\n"],
    "expected an indented block": ["kernel f(x: f64[n]) -> f64[n]:\nreturn x\n"],
    "a parameter needs a type, as in 'x: f64[n]'": ["kernel f(x) -> f64[n]:\n    return x\n"],
    "comparisons cannot be chained; write 'a < b and b < c'": [],
}


def parse(source: Source) -> ast.Module:
    """Parse a whole module. Raises CompileError."""
    text = source.text
    if not text.endswith("\n"):
        text += "\n"
    _check_first_line(source, text)
    try:
        tree = _parser().parse(text)
    except _LayoutError as err:
        raise CompileError(source.span(err.line, err.column), err.message, err.hint,
                           source) from None
    except UnexpectedInput as err:
        raise _syntax_error(source, text, err) from None
    return _Builder(source).module(tree)


def _check_first_line(source: Source, text: str) -> None:
    """The first definition starts in column 1 (the indenter only sees indentation after a
    newline, so it would accept an indented first line)."""
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if line[0] in " \t\f":
                raise CompileError(source.span(number, 1), "unexpected indentation",
                                   "a definition starts in column 1", source)
            return


def _syntax_error(source: Source, text: str, err: UnexpectedInput) -> CompileError:
    line, column = max(err.line, 1), max(err.column, 1)
    hint = None
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        char = text[pos] if pos < len(text) else ""
        message = f"unexpected character {char!r}"
        if char == '"':
            message = "unterminated string"
            hint = 'a "string" ends on its own line; a """string""" may span lines'
            if text[max(0, pos - 2):pos] == '""' and text[pos - 3:pos - 2] != '"' \
                    and column > 2:  # an unterminated '"""' lexes as '""' then '"...'
                column -= 2
        elif char == "'":
            hint = "strings use double quotes and appear only as docstrings"
        elif char == "\\":
            hint = "there is no backslash continuation; break lines inside ( ) instead"
        elif char == "[":
            hint = "nbx has no indexing; arrays are used whole, dimension by name"
        elif char == ".":
            hint = "nbx has no attributes or modules; call functions by name, as in sqrt(x)"
        return CompileError(source.span(line, column), message, hint, source)
    unclosed = _unclosed_bracket(text, err)
    if unclosed is not None:
        bline, bcolumn, bracket = unclosed
        return CompileError(source.span(bline, bcolumn), f"unclosed '{bracket}'",
                            f"close it with '{_CLOSING[bracket]}'", source)
    if isinstance(err, UnexpectedEOF):
        lines = text.rstrip("\n").splitlines() or [""]
        return CompileError(source.span(len(lines), len(lines[-1]) + 1),
                            "unexpected end of file", "a block or '(' is not closed", source)
    assert isinstance(err, UnexpectedToken)
    token = err.token
    label = None
    try:
        label = err.match_examples(_parser().parse, _SYNTAX_EXAMPLES, use_accepts=True)
    except Exception:  # match_examples re-parses examples; a failure there is not the user's
        label = None
    found = _describe_token(token)
    if token.type == "COMPARE" and ("COMPARE" not in err.expected):
        label = "comparisons cannot be chained; write 'a < b and b < c'"
    if token.type == "_INDENT":  # borrowed from the newline: point at the indented line
        line, column = token.end_line, token.end_column
        label = "unexpected indentation"
    if token.type == "_DEDENT":
        label = label or "unexpected end of block"
    message = label or f"unexpected {found}"
    # `accepts` is what the parser state really takes; `expected` also lists the newline the
    # indenter lets through everywhere.
    expected = sorted(_describe_expected(e) for e in (getattr(err, "accepts", None)
                                                      or err.expected - {"_NL"}))
    expected = [e for e in expected if e and e != "end of file"]
    if not label and expected and len(expected) <= 6:
        hint = "expected " + ", ".join(expected)
    elif label:
        hint = None if found in message else f"found {found}"
    if label == "missing operand" and token.type == "_NL":
        hint = "the expression stops at the end of the line; inside ( ) it may go on"
    if token.type == "STRING":
        hint = "strings appear only as the first line of a kernel (a docstring)"
    elif token.type == "LSQB":  # '[' never starts an operand: not a "missing operand"
        message = f"unexpected {found}"
        hint = "nbx has no indexing; arrays are used whole, dimension by name"
    width = 1 if token.type.startswith("_") or token.type == "$END" else len(str(token))
    return CompileError(source.span(line, column, line, column + max(1, width)),
                        message, hint, source)


_CLOSING = {"(": ")", "[": "]"}


def _unclosed_bracket(text: str, err: UnexpectedInput) -> tuple[int, int, str] | None:
    """The innermost '(' or '[' never closed before the error, where the error is past the
    bracket's line (inside brackets newlines are ignored, so the parser only notices late)."""
    stack: list[int] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if c == '"':
            quote = '"""' if text.startswith('"""', i) else '"'
            end = text.find(quote, i + len(quote))
            i = len(text) if end < 0 else end + len(quote)
            continue
        if c in _CLOSING:
            stack.append(i)
        elif c in ")]" and stack:
            stack.pop()
        i += 1
    error_pos = getattr(err, "pos_in_stream", None)
    token = getattr(err, "token", None)
    at_end = isinstance(err, UnexpectedEOF) or (token is not None and token.type in
                                                ("_DEDENT", "$END"))
    if error_pos is None or at_end:
        error_pos = len(text)
    before = [p for p in stack if p < error_pos]
    if not before:
        return None
    pos = before[-1]
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    if not at_end and getattr(err, "line", line) <= line:
        return None
    return line, column, text[pos]


_TOKEN_WORDS = {"_NL": "end of line", "_INDENT": "indentation", "_DEDENT": "end of block",
                "$END": "end of file", "NAME": "a name", "INT": "a number", "FLOAT": "a number",
                "STRING": "a string", "COMPARE": "a comparison"}


def _describe_token(token: Token) -> str:
    if token.type in ("NAME",) and token.value in RESERVED:
        return f"keyword '{token.value}'"
    if token.type in ("NAME", "INT", "FLOAT", "COMPARE"):
        return f"'{token.value}'"
    if token.type == "STRING":
        return "string"
    return _TOKEN_WORDS.get(token.type, f"'{token.value}'")


def _describe_expected(name: str) -> str:
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return ""
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return ""


_BINARY = {"add": Op.ADD, "sub": Op.SUB, "mul": Op.MUL, "truediv": Op.TRUEDIV,
           "floordiv": Op.FLOORDIV, "mod": Op.MOD, "pow": Op.POW, "bit_and": Op.BIT_AND,
           "bit_or": Op.BIT_OR, "bit_xor": Op.BIT_XOR, "lshift": Op.LSHIFT, "rshift": Op.RSHIFT,
           "and_op": Op.AND, "or_op": Op.OR}
_UNARY = {"neg": Op.NEG, "pos": Op.POS, "invert": Op.INVERT, "not_op": Op.NOT}
_COMPARE = {"<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE, "==": Op.EQ, "!=": Op.NE}


class _Builder:
    """Turns Lark's tree into AST nodes; checks the lexical rules the grammar cannot."""

    def __init__(self, source: Source):
        self.source = source

    def error(self, span: Span, message: str, hint: str | None = None) -> CompileError:
        return CompileError(span, message, hint, self.source)

    def span(self, node: Tree | Token) -> Span:
        if isinstance(node, Token):
            return Span(self.source.filename, node.line, node.column, node.end_line,
                        node.end_column)
        meta = node.meta
        return Span(self.source.filename, meta.line, meta.column, meta.end_line,
                    meta.end_column)

    def name(self, token: Token) -> str:
        value = str(token)
        if value in RESERVED:  # the contextual lexer reads a keyword as a NAME where one fits
            raise self.error(self.span(token), f"'{value}' is a reserved word",
                             "pick another name")
        if value.startswith("__"):
            raise self.error(self.span(token), f"name '{value}' starts with '__'",
                             "names starting with '__' are reserved for generated code")
        return value

    # definitions ------------------------------------------------------------------------
    def module(self, tree: Tree) -> ast.Module:
        defs = []
        for child in tree.children:
            if isinstance(child, Tree):
                with located(self.span(child)):
                    defs.append(getattr(self, child.data)(child))
        return ast.Module(tuple(defs), self.source.filename)

    def const_def(self, tree: Tree) -> ast.ConstDef:
        name, value = tree.children
        return ast.ConstDef(self.name(name), self.expr(value), self.span(tree), self.span(name))

    def _body(self, children) -> tuple[str | None, tuple[ast.Assign, ...], ast.Return]:
        doc_tree, *stmts = children
        doc = None
        if doc_tree is not None:
            doc = self.string(doc_tree.children[0])
        assigns = []
        ret = None
        for stmt in stmts:
            if ret is not None:
                raise self.error(self.span(stmt), "statement after 'return'",
                                 "'return' must be the last statement of a body")
            with located(self.span(stmt)):
                if stmt.data == "return_stmt":
                    values = tuple(self.expr(c) for c in stmt.children)
                    if len(values) == 1 and isinstance(values[0], ast.TupleExpr):
                        values = values[0].items  # `return (a, b)` is `return a, b`
                    ret = ast.Return(values, self.span(stmt))
                else:
                    *targets, value = stmt.children
                    assigns.append(ast.Assign(tuple(self.name(t) for t in targets),
                                              tuple(self.span(t) for t in targets),
                                              self.expr(value), self.span(stmt)))
        if ret is None:
            last = stmts[-1]
            raise self.error(self.span(last), "body does not end in 'return'",
                             "a kernel or def ends with 'return expr'")
        return doc, tuple(assigns), ret

    def def_def(self, tree: Tree) -> ast.DefDef:
        name, names, *rest = tree.children
        params = tuple(names.children) if names is not None else ()
        params = tuple(p for p in params if p is not None)
        _, body, ret = self._body(rest)
        return ast.DefDef(self.name(name), tuple(self.name(p) for p in params),
                          tuple(self.span(p) for p in params), body, ret, self.span(tree),
                          self.span(name))

    def kernel_def(self, tree: Tree) -> ast.KernelDef:
        name, params, rettype, *rest = tree.children
        plist = []
        if params is not None:
            for p in params.children:
                if p is None:
                    continue
                pname, ptype = p.children
                plist.append(ast.Param(self.name(pname), self.type(ptype), self.span(p)))
        if rettype.data == "tuple_ret":
            results = tuple(self.type(t) for t in rettype.children if t is not None)
            tuple_result = True
        else:
            results = (self.type(rettype.children[0]),)
            tuple_result = False
        doc, body, ret = self._body(rest)
        return ast.KernelDef(self.name(name), tuple(plist), results, tuple_result, doc, body,
                             ret, self.span(tree), self.span(name))

    def type(self, tree: Tree) -> ast.TypeExpr:
        dtype_tok = tree.children[0]
        dims = None
        dim_spans: tuple[Span, ...] = ()
        if tree.data == "array_type":
            names = tree.children[1]
            toks = [t for t in names.children if t is not None] if names is not None else []
            if not toks:
                raise self.error(self.span(tree), "an array type needs at least one dimension "
                                 "name", f"a scalar is written without brackets: {dtype_tok}")
            dims = tuple(self.name(t) for t in toks)
            dim_spans = tuple(self.span(t) for t in toks)
        return ast.TypeExpr(str(dtype_tok), dims, self.span(tree), self.span(dtype_tok),
                            dim_spans)

    def string(self, token: Token) -> str:
        try:
            with warnings.catch_warnings():  # "\q" stays "\q" (as Python), whatever the filters
                warnings.simplefilter("ignore")
                value = pyast.literal_eval(str(token))  # a string literal token, never code
        except (ValueError, SyntaxError):
            raise self.error(self.span(token), "invalid string literal") from None
        if not isinstance(value, str):
            raise self.error(self.span(token), "invalid string literal")
        return value

    # expressions ------------------------------------------------------------------------
    def expr(self, node: Tree | Token) -> ast.Expr:
        span = self.span(node)
        kind = node.data
        kids = node.children
        if kind in _BINARY:
            return ast.Binary(_BINARY[kind], self.expr(kids[0]), self.expr(kids[1]), span=span)
        if kind in _UNARY:
            return ast.Unary(_UNARY[kind], self.expr(kids[0]), span=span)
        if kind == "compare":
            if len(kids) > 3:
                raise self.error(self.span(kids[3]), "comparisons cannot be chained",
                                 "write 'a < b and b < c'")
            return ast.Binary(_COMPARE[str(kids[1])], self.expr(kids[0]), self.expr(kids[2]),
                              span=span)
        if kind == "ifexp":
            then, cond, orelse = kids
            return ast.IfExp(self.expr(cond), self.expr(then), self.expr(orelse), span=span)
        if kind == "name":
            return ast.Name(self.name(kids[0]), span=span)
        if kind == "int_lit":
            text = str(kids[0])
            if text[0] == "0" and text.strip("0_"):
                raise self.error(span, f"invalid integer literal '{text}'",
                                 "leading zeros are not allowed (as in Python)")
            try:
                value = int(text)
            except ValueError:
                raise self.error(span, f"invalid integer literal '{text}'",
                                 "underscores go between digits: 1_000_000") from None
            return ast.Num(value, span=span)
        if kind == "float_lit":
            text = str(kids[0])
            try:
                value = float(text)
            except ValueError:
                raise self.error(span, f"invalid float literal '{text}'") from None
            return ast.Num(value, span=span)
        if kind == "true_lit":
            return ast.Num(True, span=span)
        if kind == "false_lit":
            return ast.Num(False, span=span)
        if kind == "tuple":
            return ast.TupleExpr(tuple(self.expr(k) for k in kids if k is not None), span=span)
        if kind == "string_lit":
            raise self.error(span, "a string is not a value",
                             "strings appear only as the first line of a kernel (a docstring)")
        if kind == "call":
            func, arguments = kids
            args: list[ast.Expr] = []
            keywords: list[ast.Keyword] = []
            for arg in (arguments.children if arguments is not None else []):
                if arg is None:
                    continue
                if isinstance(arg, Tree) and arg.data == "keyword":
                    kname, kvalue = arg.children
                    keywords.append(ast.Keyword(self.name(kname), self.expr(kvalue),
                                                self.span(arg)))
                elif keywords:
                    raise self.error(self.span(arg), "positional argument after a keyword")
                else:
                    args.append(self.expr(arg))
            return ast.Call(self.name(func), tuple(args), tuple(keywords), span=span,
                            func_span=self.span(func))
        raise self.error(span, f"unsupported syntax ({kind})")
