"""The lexer and parser (LANGUAGE.md sections 2, 3 and 5): source text -> AST.

Expressions are checked through a small s-expression printer of the AST, so a precedence test
reads `-x**2` -> `(-x (** x 2))`. No Numba compilation is involved.
"""

from __future__ import annotations

import threading

import pytest

import nbx
from nbx.dsl import ast
from nbx.dsl.build import RESERVED, parse
from nbx.dsl.source import Source

HEADER = "kernel f(x: f64[n]) -> f64[n]:\n"


def module(src: str) -> ast.Module:
    return parse(Source("t.nbx", src))


def kernel(src: str) -> ast.KernelDef:
    (definition,) = [d for d in module(src).definitions if isinstance(d, ast.KernelDef)]
    return definition


def expr(text: str) -> ast.Expr:
    return kernel(f"{HEADER}    return {text}\n").ret.values[0]


def sx(node: ast.Expr | str) -> str:
    """An expression as an s-expression: operators by their op-table name."""
    if isinstance(node, str):
        node = expr(node)
    if isinstance(node, ast.Num):
        return repr(node.value)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Unary):
        return f"({node.op.info.name} {sx(node.operand)})"
    if isinstance(node, ast.Binary):
        return f"({node.op.info.name} {sx(node.left)} {sx(node.right)})"
    if isinstance(node, ast.IfExp):
        return f"(if {sx(node.cond)} {sx(node.then)} {sx(node.orelse)})"
    if isinstance(node, ast.TupleExpr):
        return "(tuple " + " ".join(sx(i) for i in node.items) + ")"
    if isinstance(node, ast.Call):
        args = [sx(a) for a in node.args] + [f"{k.name}={sx(k.value)}" for k in node.keywords]
        return f"({node.func} {' '.join(args)})".replace(" )", ")")
    raise TypeError(node)


def syntax_error(src: str) -> nbx.CompileError:
    with pytest.raises(nbx.CompileError) as info:
        module(src)
    return info.value


def body_error(line: str) -> nbx.CompileError:
    """The error for one statement inside a kernel body (the statement is on line 2)."""
    return syntax_error(f"{HEADER}    {line}\n    return x\n")


# --- comments, blank lines, line endings ----------------------------------------------------

def test_comments_anywhere():
    src = ("# leading comment\n"
           "\n"
           "kernel f(x: f64[n]) -> f64[n]:   # trailing comment on the header\n"
           "    # a comment line inside the body\n"
           "\n"
           "    y = x + 1  # trailing\n"
           "# a comment in column 1 inside the block\n"
           "        # an over-indented comment is not indentation\n"
           "    return y\n"
           "# the last line is a comment without a newline")
    k = kernel(src)
    assert [a.targets for a in k.body] == [("y",)]
    assert sx(k.ret.values[0]) == "y"


def test_hash_inside_a_docstring_is_not_a_comment():
    k = kernel(f'{HEADER}    "not # a comment"\n    return x\n')
    assert k.doc == "not # a comment"


@pytest.mark.parametrize("src", ["", "\n", "\n\n\n", "# only a comment", "# c\n\n# d\n",
                                 "   \n\n  \n"])
def test_empty_modules(src):
    assert module(src).definitions == ()


def test_blank_lines_with_spaces_inside_a_block():
    k = kernel(f"{HEADER}    y = x\n  \n        \n\n    return y\n")
    assert len(k.body) == 1


def test_crlf_line_endings_and_no_final_newline():
    k = kernel("kernel f(x: f64[n]) -> f64[n]:\r\n    y = x * 2\r\n    return y")
    assert sx(k.body[0].value) == "(* x 2)"


def test_spans_are_one_based_lines_and_columns():
    k = kernel(f"{HEADER}    y = x +  1\n    return y\n")
    value = k.body[0].value
    assert (value.span.line, value.span.column) == (2, 9)
    assert (value.right.span.line, value.right.span.column, value.right.span.end_column) == \
        (2, 14, 15)
    assert (k.name_span.line, k.name_span.column) == (1, 8)


# --- indentation ---------------------------------------------------------------------------

@pytest.mark.parametrize("indent", [1, 2, 4, 8])
def test_any_consistent_indentation(indent):
    pad = " " * indent
    k = kernel(f"{HEADER}{pad}y = x\n{pad}return y\n")
    assert len(k.body) == 1


def test_tab_in_indentation_is_an_error():
    err = syntax_error(f"{HEADER}\treturn x\n")
    assert (err.line, err.column) == (2, 1)
    assert err.message == "tab in indentation"
    assert "spaces" in err.hint


def test_tab_after_spaces_in_indentation_is_an_error():
    err = syntax_error(f"{HEADER}    y = x\n  \treturn y\n")
    assert (err.line, err.column, err.message) == (3, 1, "tab in indentation")


def test_tabs_between_tokens_are_fine():
    k = kernel(f"{HEADER}    y =\tx\t+ 1\n    return y\n")
    assert sx(k.body[0].value) == "(+ x 1)"


def test_tabs_on_a_continuation_line_inside_parentheses_are_not_indentation():
    k = kernel(f"{HEADER}    y = (x +\n\t\t1)\n    return y\n")
    assert sx(k.body[0].value) == "(+ x 1)"


def test_unexpected_indentation():
    err = syntax_error(f"{HEADER}    y = x\n        return y\n")
    assert (err.line, err.column, err.message) == (3, 9, "unexpected indentation")


def test_inconsistent_dedent():
    err = syntax_error(f"{HEADER}    y = x\n  return y\n")
    assert (err.line, err.column) == (3, 3)
    assert "unindent" in err.message


def test_missing_indented_block():
    err = syntax_error(f"{HEADER}return x\n")
    assert (err.line, err.column) == (2, 1)
    assert err.message == "expected an indented block"


def test_indented_first_definition():
    err = syntax_error("# comment\n  kernel f(x: f64[n]) -> f64[n]:\n    return x\n")
    assert (err.line, err.column, err.message) == (2, 1, "unexpected indentation")


def test_definition_inside_a_block():
    err = syntax_error(f"{HEADER}    return x\n    const A = 1\n")
    assert err.line == 3


# --- newlines inside brackets, no backslash continuation ------------------------------------

def test_newlines_inside_parentheses_and_brackets_are_ignored():
    src = ("kernel f(\n"
           "    A: f64[\n"
           "        m,\n"
           "  k],\n"
           "v: f64[k],\n"
           ") -> (\n"
           "   f64[m],\n"
           "):\n"
           "    y = sum(\n"
           "A * v,\n"
           "            over=k\n"
           "    )\n"
           "    return (y\n"
           "+ 1)\n")
    k = kernel(src)
    assert [p.name for p in k.params] == ["A", "v"]
    assert k.params[0].type.dims == ("m", "k")
    assert sx(k.body[0].value) == "(sum (* A v) over=k)"
    assert k.tuple_result and len(k.results) == 1


def test_backslash_continuation_is_an_error():
    err = syntax_error(f"{HEADER}    y = x + \\\n        1\n    return y\n")
    assert (err.line, err.column) == (2, 13)
    assert "backslash" in err.hint


def test_line_break_outside_brackets_ends_the_statement():
    err = syntax_error(f"{HEADER}    return x +\n        1\n")
    assert (err.line, err.column) == (2, 15)
    assert err.message == "missing operand"


# --- literals ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("1_000_000", 1_000_000), ("0_0", 0), ("007.5", 7.5),
    ("1.0", 1.0), (".5", 0.5), ("1.", 1.0), ("1e-3", 1e-3), ("2.5E+8", 2.5e8), ("1E5", 1e5),
    ("3e0", 3.0), ("1_0.2_5", 10.25), ("True", True), ("False", False),
    ("123456789012345678901234567890", 123456789012345678901234567890),
])
def test_literals(text, value):
    node = expr(text)
    assert isinstance(node, ast.Num)
    assert node.value == value
    assert type(node.value) is type(value)


def test_integer_and_float_literals_keep_their_kind():
    assert type(expr("1").value) is int
    assert type(expr("1.").value) is float
    assert type(expr("1e3").value) is float


def test_negative_literal_is_a_unary_minus():
    assert sx("-1") == "(-x 1)"
    assert sx("-1.5e3") == "(-x 1500.0)"


@pytest.mark.parametrize("text", ["1__0", "1_", "0x10", "1e", "1.2.3", "00012", "1e1_0",
                                  "0b101", "1j"])
def test_invalid_number_literals(text):
    err = body_error(f"y = {text}")
    assert err.line == 2
    assert err.column >= 9


# --- docstrings and strings ----------------------------------------------------------------

def test_single_quoted_docstring():
    k = kernel(f'{HEADER}    "Zero mean, unit variance."\n    return x\n')
    assert k.doc == "Zero mean, unit variance."


def test_triple_quoted_docstring_spans_lines():
    k = kernel(f'{HEADER}    """First line.\n\n    With "quotes" and # no comment.\n    """\n'
               "    return x\n")
    assert k.doc == 'First line.\n\n    With "quotes" and # no comment.\n    '


def test_docstring_escapes_as_python():
    k = kernel(f'{HEADER}    "tab\\there \\"q\\" back\\\\slash \\q"\n    return x\n')
    assert k.doc == 'tab\there "q" back\\slash \\q'


def test_no_docstring():
    assert kernel(f"{HEADER}    return x\n").doc is None


def test_def_may_have_a_docstring():
    m = module('def sq(a):\n    "Square."\n    return a * a\n')
    assert m.definitions[0].name == "sq"


def test_docstring_only_first():
    err = syntax_error(f'{HEADER}    y = x\n    "late"\n    return y\n')
    assert (err.line, err.column) == (3, 5)
    assert err.message == "unexpected string"
    assert "docstring" in err.hint


def test_two_docstrings():
    err = syntax_error(f'{HEADER}    "one"\n    "two"\n    return x\n')
    assert (err.line, err.column) == (3, 5)


def test_string_is_not_a_value():
    err = body_error('y = "text"')
    assert (err.line, err.column) == (2, 9)
    assert "string" in err.message


def test_module_level_string_is_an_error():
    err = syntax_error('"module docstring"\n' + HEADER + "    return x\n")
    assert (err.line, err.column) == (1, 1)


def test_single_quotes_are_an_error():
    err = body_error("y = 'a'")
    assert (err.line, err.column) == (2, 9)
    assert "double quotes" in err.hint


@pytest.mark.parametrize("doc", ['"open', '"""open', '"""open\n    still open'])
def test_unterminated_strings(doc):
    err = syntax_error(f"{HEADER}    {doc}\n    return x\n")
    assert (err.line, err.column) == (2, 5)
    assert err.message == "unterminated string"


def test_a_body_of_only_a_docstring_is_an_error():
    err = syntax_error(f'{HEADER}    "doc"\n')
    assert err.line == 2


# --- names and reserved words --------------------------------------------------------------

@pytest.mark.parametrize("word", sorted(RESERVED))
@pytest.mark.parametrize("template, line, column", [
    (HEADER + "    {w} = x\n    return x\n", 2, 5),                 # a local
    ("kernel f({w}: f64[n]) -> f64[n]:\n    return x\n", 1, 10),    # a parameter
    ("kernel f(x: f64[{w}]) -> f64:\n    return 1.0\n", 1, 17),     # a dimension
    ("kernel {w}(x: f64[n]) -> f64[n]:\n    return x\n", 1, 8),     # a kernel
    ("def {w}(a):\n    return a\n", 1, 5),                          # a def
    ("def g({w}):\n    return 1\n", 1, 7),                          # a def parameter
    ("const {w} = 1\n", 1, 7),                                      # a const
])
def test_reserved_words_are_not_names(word, template, line, column):
    err = syntax_error(template.format(w=word))
    if word == "return" and line == 2:  # `return = x` is a return statement gone wrong
        assert (err.line, err.column, err.message) == (2, 12, "unexpected '='")
        return
    assert (err.line, err.column) == (line, column)
    assert err.message == f"'{word}' is a reserved word"


def test_reserved_word_as_a_value():
    err = body_error("y = x + if")
    assert (err.line, err.column) == (2, 13)
    assert err.message == "'if' is a reserved word"


def test_reserved_words_list():
    assert RESERVED == {"kernel", "def", "const", "return", "if", "else", "and", "or", "not",
                        "True", "False"}


@pytest.mark.parametrize("template, column", [
    (HEADER + "    __y = x\n    return __y\n", 5),
    (HEADER + "    return __x\n", 12),
    ("kernel f(__x: f64[n]) -> f64[n]:\n    return __x\n", 10),
    ("kernel f(x: f64[__n]) -> f64:\n    return 1.0\n", 17),
    ("kernel __f(x: f64[n]) -> f64[n]:\n    return x\n", 8),
    ("def __g(a):\n    return a\n", 5),
    ("const __A = 1\n", 7),
    (HEADER + "    return sum(x, __over=n)\n", 19),
])
def test_names_starting_with_double_underscore_are_rejected(template, column):
    err = syntax_error(template)
    assert err.column == column
    assert "'__" in err.message
    assert "reserved" in err.hint


@pytest.mark.parametrize("name", ["_x", "x_", "a__b", "x1", "X", "_", "None", "lambda",
                                  "self", "e", "pi", "sum"])
def test_ordinary_names(name):
    k = kernel(f"{HEADER}    {name} = x\n    return {name}\n")
    assert k.body[0].targets == (name,)


def test_unicode_identifier_is_an_error():
    err = body_error("é = x")
    assert (err.line, err.column) == (2, 5)


# --- precedence and associativity ----------------------------------------------------------

@pytest.mark.parametrize("text, tree", [
    # ** binds tighter than unary minus on its left, and is right-associative
    ("-x**2", "(-x (** x 2))"),
    ("-x ** -y", "(-x (** x (-x y)))"),
    ("2 ** -x", "(** 2 (-x x))"),
    ("a ** b ** c", "(** a (** b c))"),
    ("(a ** b) ** c", "(** (** a b) c)"),
    ("~x ** 2", "(~ (** x 2))"),
    ("--x", "(-x (-x x))"),
    ("+-x", "(+x (-x x))"),
    ("-x * y", "(* (-x x) y)"),
    # arithmetic
    ("a + b * c", "(+ a (* b c))"),
    ("a * b + c", "(+ (* a b) c)"),
    ("a - b - c", "(- (- a b) c)"),
    ("a / b / c", "(/ (/ a b) c)"),
    ("a // b % c * d", "(* (% (// a b) c) d)"),
    ("(a + b) * c", "(* (+ a b) c)"),
    # shifts and bitwise: << >> then & then ^ then |
    ("a << b + c", "(<< a (+ b c))"),
    ("a >> 1 << 2", "(<< (>> a 1) 2)"),
    ("a<<b", "(<< a b)"),
    ("a & b << c", "(& a (<< b c))"),
    ("a | b ^ c & d", "(| a (^ b (& c d)))"),
    ("a & b | c", "(| (& a b) c)"),
    ("~a & b", "(& (~ a) b)"),
    # comparisons bind looser than | and tighter than not
    ("a + b < c", "(< (+ a b) c)"),
    ("a < b | c", "(< a (| b c))"),
    ("a << 2 < 3", "(< (<< a 2) 3)"),
    ("a<-1", "(< a (-x 1))"),
    ("a == b", "(== a b)"),
    ("a != b", "(!= a b)"),
    ("a <= b", "(<= a b)"),
    ("a >= b", "(>= a b)"),
    ("a > b", "(> a b)"),
    ("(a < b) < c", "(< (< a b) c)"),
    # not, and, or
    ("not a < b", "(not (< a b))"),
    ("not a and b", "(and (not a) b)"),
    ("not not a", "(not (not a))"),
    ("a and b or c and d", "(or (and a b) (and c d))"),
    ("a or b and c", "(or a (and b c))"),
    ("a and b and c", "(and (and a b) c)"),
    # the conditional expression is the loosest, and right-associative
    ("a if c else b", "(if c a b)"),
    ("a or b if c or d else e", "(if (or c d) (or a b) e)"),
    ("a if b else c if d else e", "(if b a (if d c e))"),
    ("(a if b else c) if d else e", "(if d (if b a c) e)"),
    ("x + 1 if x > 0 else -x", "(if (> x 0) (+ x 1) (-x x))"),
    # calls
    ("sqrt(x) + 1", "(+ (sqrt x) 1)"),
    ("-f(x) ** 2", "(-x (** (f x) 2))"),
    ("sum(A * v, over=k)", "(sum (* A v) over=k)"),
    ("sum(A, over=(m, k))", "(sum A over=(tuple m k))"),
    ("sum(A, over=(k,))", "(sum A over=(tuple k))"),
    ("clip(x, 0, 1,)", "(clip x 0 1)"),
    ("f()", "(f)"),
])
def test_precedence(text, tree):
    assert sx(text) == tree


def test_parenthesised_expression_is_not_a_tuple():
    assert sx("(x)") == "x"
    assert sx("((x))") == "x"


@pytest.mark.parametrize("text, column", [
    ("a < b < c", 11), ("a == b == c", 12), ("a < b > c", 11), ("a <= b != c", 12),
    ("x < x < x < x", 11),
])
def test_chained_comparisons_are_an_error(text, column):
    err = body_error(f"y = {text}")
    assert (err.line, err.column) == (2, column + 4)
    assert "chained" in err.message
    assert "and" in (err.hint or err.message)


@pytest.mark.parametrize("text", ["x if x > 0", "x if x > 0 else", "x if else y", "if x else y"])
def test_incomplete_conditional_expression(text):
    err = body_error(f"y = {text}")
    assert err.line == 2


def test_positional_argument_after_keyword():
    err = body_error("y = sum(over=n, x)")
    assert (err.line, err.column) == (2, 21)
    assert "positional argument after a keyword" in err.message


# --- module structure ----------------------------------------------------------------------

def test_definitions_in_any_order():
    m = module("kernel f(x: f64[n]) -> f64[n]:\n    return g(x) * K\n"
               "def g(a):\n    return a\n"
               "const K = 2\n")
    assert [type(d).__name__ for d in m.definitions] == ["KernelDef", "DefDef", "ConstDef"]


def test_types_and_parameters():
    k = kernel("kernel f(A: f32[m, k], s: i64, t: T[k], u: T2,) -> (f32[m], T):\n"
               "    return A, t\n")
    assert [(p.name, p.type.dtype, p.type.dims) for p in k.params] == [
        ("A", "f32", ("m", "k")), ("s", "i64", None), ("t", "T", ("k",)), ("u", "T2", None)]
    assert [(r.dtype, r.dims) for r in k.results] == [("f32", ("m",)), ("T", None)]
    assert k.tuple_result


def test_single_result_in_parentheses_is_a_tuple_result():
    k = kernel("kernel f(x: f64[n]) -> (f64[n],):\n    return x\n")
    assert k.tuple_result and len(k.results) == 1


def test_kernel_without_parameters():
    k = kernel("kernel f() -> f64:\n    return 1.0\n")
    assert k.params == ()


def test_empty_array_type_is_an_error():
    err = syntax_error("kernel f(x: f64[]) -> f64:\n    return sum(x)\n")
    assert (err.line, err.column) == (1, 13)
    assert "f64" in err.hint


def test_tuple_assignment():
    k = kernel(f"{HEADER}    a, b = two(x)\n    return a\n")
    assert k.body[0].targets == ("a", "b")


def test_return_several_values():
    k = kernel("kernel f(x: f64[n]) -> (f64[n], f64):\n    return x, sum(x)\n")
    assert len(k.ret.values) == 2


def test_return_of_a_parenthesised_tuple_is_several_values():
    k = kernel("kernel f(x: f64[n]) -> (f64[n], f64):\n    return (x, sum(x))\n")
    assert [sx(v) for v in k.ret.values] == ["x", "(sum x)"]


def test_statement_after_return():
    err = syntax_error(f"{HEADER}    return x\n    y = x\n")
    assert (err.line, err.column) == (3, 5)
    assert "after 'return'" in err.message


def test_missing_return():
    err = syntax_error(f"{HEADER}    y = x\n")
    assert (err.line, err.column) == (2, 5)
    assert "return" in err.message


@pytest.mark.parametrize("src, line, column, message", [
    ("kernel f(x: f64[n]) -> f64[n]\n    return x\n", 1, 30, "missing ':'"),
    ("kernel f(x: f64[n]):\n    return x\n", 1, 20, "missing '->'"),
    ("kernel f(x) -> f64[n]:\n    return x\n", 1, 11, "a parameter needs a type"),
    ("def f(x: f64):\n    return x\n", 1, 8, "unexpected ':'"),
    ("x = 1\n", 1, 1, "unexpected 'x'"),
    ("import numpy\n", 1, 1, "unexpected 'import'"),
    ("kernel f(x: f64[n]) -> f64[n]: return x\n", 1, 32, "unexpected 'return'"),
    (HEADER + "    if x > 0:\n        return x\n", 2, 8, "unexpected 'x'"),
    (HEADER + "    y += x\n    return y\n", 2, 7, "unexpected '+'"),
    (HEADER + "    return x[0]\n", 2, 13, "unexpected '['"),
    (HEADER + "    return (x\n", 2, 12, "unclosed '('"),
    (HEADER + "    y = sqrt(x\n    return y\n", 2, 13, "unclosed '('"),
    (HEADER + "    return x)\n", 2, 13, "unexpected ')'"),
    (HEADER + "    return x +* 2\n", 2, 15, "missing operand"),
    (HEADER + "    return\n", 2, 11, "unexpected end of line"),
    (HEADER + "    return x @ x\n", 2, 14, "unexpected character '@'"),
    (HEADER + "    return x.y\n", 2, 13, "unexpected character '.'"),
])
def test_syntax_error_positions(src, line, column, message):
    err = syntax_error(src)
    assert (err.line, err.column) == (line, column)
    assert message in err.message


# --- the parser is shared: it must be safe to use from several threads ---------------------

def test_parsing_from_several_threads():
    src = (HEADER + "    y = (x +\n         1)\n    z = sqrt(\n  y)\n    return z\n")
    expected = sx(kernel(src).ret.values[0])
    failures: list[str] = []

    def work():
        for _ in range(60):
            try:
                assert sx(kernel(src).ret.values[0]) == expected
            except Exception as err:  # collected and asserted on in the main thread
                failures.append(repr(err))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
