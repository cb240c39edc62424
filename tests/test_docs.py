"""The documentation says true things: every `nbx` block in the docs compiles, or gives the
diagnostic printed under it; the promotion table of docs/language.md matches the checker;
every function and reduction is documented; links and file names point at real files.

Only parsing and checking run here (nothing is compiled by Numba), so this file is quick.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import nbx
from nbx.callconv import DTYPES
from nbx.dsl import check
from nbx.dsl.compile import Compiler
from nbx.dsl.ir import Cast
from nbx.dsl.ops import FUNCTIONS, REDUCTIONS

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "examples" / "README.md"]
LANGUAGE = ROOT / "docs" / "language.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


def nbx_blocks():
    """(page, line, source, expected diagnostic or None) for every ```nbx block."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = list(FENCE.finditer(text))
        for i, m in enumerate(blocks):
            if m.group(1) != "nbx":
                continue
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            expected = None
            if (after is not None and after.group(1) == "text" and after.start() == m.end()
                    and after.group(2).startswith("example.nbx:")):
                expected = after.group(2).rstrip("\n")
            line = text.count("\n", 0, m.start()) + 1
            yield pytest.param(m.group(2), expected, id=f"{page.name}:{line}")


@pytest.mark.parametrize("source, expected", list(nbx_blocks()))
def test_nbx_block(source, expected):
    """A block compiles for its target (a first line `# target: NAME`, else cpu); compiling
    checks only, Numba compiles at a first call."""
    first = re.match(r"# target: ([\w-]+)\n", source)
    target = first.group(1) if first else "cpu"
    if expected is None:
        nbx.compile(source, filename="example.nbx", target=target, cache=False)
        return
    with pytest.raises(nbx.CompileError) as err:
        nbx.compile(source, filename="example.nbx", target=target, cache=False)
    assert str(err.value) == expected


def promotion_rows():
    text = LANGUAGE.read_text(encoding="utf-8")
    table = text[text.index("| expression | with | dtype |"):]
    table = table[:table.index("\n\n")]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| (\w+) \|$", table, re.M)
    assert len(rows) >= 30, "the promotion table was not found"
    return rows


PRELUDE = "const HALF = f32(0.5)\nconst EPS = 1e-12\n"


@pytest.mark.parametrize("expr, params, dtype", promotion_rows())
def test_promotion_table(expr, params, dtype):
    """The row's expression, returned from a kernel of the row's parameters, has the row's
    dtype before the (same_kind) conversion to the declared f64 result."""
    dims = list(dict.fromkeys(re.findall(r"\w+", " ".join(re.findall(r"\[(.*?)\]", params)))))
    result = f"f64[{', '.join(dims)}]" if dims else "f64"
    source = f"{PRELUDE}kernel t({params}) -> {result}:\n    return {expr}\n"
    compiler = Compiler(source, filename="row.nbx", cache=False)
    kernel_ir = check.check_kernel(compiler.env, compiler.env.kernels["t"], {})
    value = kernel_ir.results[0].expr
    if isinstance(value, Cast):
        value = value.arg
    assert value.dtype == DTYPES[dtype], f"{expr} with {params}: {value.dtype}, not {dtype}"


def test_every_function_and_dtype_is_in_the_reference():
    text = FENCE.sub("", LANGUAGE.read_text(encoding="utf-8"))
    words = set(re.findall(r"\w+", " ".join(re.findall(r"`([^`]+)`", text))))
    missing = [w for w in [*FUNCTIONS, *REDUCTIONS, *DTYPES, "index", "pi", "e", "inf", "nan"]
               if w not in words]
    assert not missing, f"docs/language.md does not mention {missing}"


def test_links_and_paths_exist():
    """Markdown links and `path/like.this` mentions of the repository's files resolve."""
    bad = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))
        for target in re.findall(r"\]\(([^)#\s]+)", prose):
            if "://" not in target and not (page.parent / target).exists():
                bad.append(f"{page.name}: ({target})")
        for path in re.findall(r"`((?:docs|benchmarks|examples|nbx|tests)/[\w./-]+)", text):
            if not (ROOT / path.rstrip(".")).exists():
                bad.append(f"{page.name}: `{path}`")
    assert not bad, bad


def test_the_reference_dtype_table_is_numpy_s():
    text = LANGUAGE.read_text(encoding="utf-8")
    pairs = re.findall(r"\| `(\w+)` \| `(\w+)` \|", text)
    assert len(pairs) == len(DTYPES)
    for short, numpy_name in pairs:
        assert DTYPES[short] == np.dtype(numpy_name)
