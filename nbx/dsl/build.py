"""parse + build: source text -> Lark parse tree -> AST (ast.py), with a Span on every node.

Syntax errors become CompileErrors with a readable message (labelled examples, practice 4).
"""

from __future__ import annotations

import ast as pyast
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from . import ast
from .ops import Op
from .source import CompileError, Source, Span

RESERVED = {"kernel", "def", "const", "return", "if", "else", "and", "or", "not", "True",
            "False"}


class _NbxIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token):
        if self.paren_level == 0 and "\t" in token.rsplit("\n", 1)[-1]:
            line = token.end_line
            raise _TabError(line)
        yield from super().handle_NL(token)


class _TabError(Exception):
    def __init__(self, line: int):
        self.line = line


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("nbx.grammar").joinpath("nbx.lark").read_text()
    return Lark(grammar, parser="lalr", postlex=_NbxIndenter(), propagate_positions=True,
                strict=True, maybe_placeholders=True)


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
    try:
        tree = _parser().parse(text)
    except _TabError as err:
        raise CompileError(source.span(err.line, 1), "tab in indentation",
                           "indent with spaces only", source) from None
    except UnexpectedInput as err:
        raise _syntax_error(source, text, err) from None
    return _Builder(source).module(tree)


def _syntax_error(source: Source, text: str, err: UnexpectedInput) -> CompileError:
    line, column = max(err.line, 1), max(err.column, 1)
    hint = None
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        message = f"unexpected character {char!r}"
        if char == "'":
            hint = "strings use double quotes and appear only as docstrings"
        elif char == "\\":
            hint = "there is no backslash continuation; break lines inside ( ) instead"
        elif char == "[":
            hint = "nbx has no indexing; arrays are used whole, dimension by name"
        return CompileError(source.span(line, column), message, hint, source)
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
    if token.type == "_DEDENT" or token.type == "_INDENT":
        label = label or ("unexpected indentation" if token.type == "_INDENT"
                          else "unexpected end of block")
    message = label or f"unexpected {found}"
    if label and label != message:
        pass
    expected = sorted(_describe_expected(e) for e in err.expected)
    expected = [e for e in expected if e]
    if not label and expected and len(expected) <= 6:
        hint = "expected " + ", ".join(expected)
    elif label:
        hint = None if found in message else f"found {found}"
    if token.type == "STRING":
        hint = "strings appear only as the first line of a kernel (a docstring)"
    if token.type == "_NL" or token.type in ("_DEDENT",):
        column = max(column, 1)
    return CompileError(source.span(line, column, line, column + max(1, len(str(token)))),
                        message, hint, source)


_TOKEN_WORDS = {"_NL": "end of line", "_INDENT": "indentation", "_DEDENT": "end of block",
                "$END": "end of file", "NAME": "a name", "INT": "a number", "FLOAT": "a number",
                "STRING": "a string", "COMPARE": "a comparison"}


def _describe_token(token: Token) -> str:
    if token.type in ("NAME",) and token.value in RESERVED:
        return f"keyword '{token.value}'"
    if token.type in ("NAME", "INT", "FLOAT"):
        return f"'{token.value}'"
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
        if value.startswith("__"):
            raise self.error(self.span(token), f"name '{value}' starts with '__'",
                             "names starting with '__' are reserved for generated code")
        return value

    # definitions ------------------------------------------------------------------------
    def module(self, tree: Tree) -> ast.Module:
        defs = []
        for child in tree.children:
            if isinstance(child, Tree):
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
            if stmt.data == "return_stmt":
                ret = ast.Return(tuple(self.expr(c) for c in stmt.children), self.span(stmt))
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
            dims = tuple(self.name(t) for t in toks)
            dim_spans = tuple(self.span(t) for t in toks)
        return ast.TypeExpr(str(dtype_tok), dims, self.span(tree), self.span(dtype_tok),
                            dim_spans)

    def string(self, token: Token) -> str:
        try:
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
