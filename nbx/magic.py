"""Jupyter and IPython: `%load_ext nbx` adds the `%%nbx` cell magic.

    %%nbx -t cpu
    kernel normalize(x: f64[n]) -> f64[n]:
        m = mean(x)
        return (x - m) / std(x)

compiles the cell as a .nbx module and binds each of its kernels in the notebook's namespace
(`normalize(x)` in the next cell). A mistake in the cell is shown as nbx's diagnostic (file
`<nbx cell N>`, line, column, caret, hint), not as a Python traceback, and binds nothing.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from .dsl.compile import TARGETS, compile
from .dsl.source import CompileError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%nbx", add_help=False,
                                description="Compile the cell as a .nbx module and bind its "
                                "kernels in the namespace.")
    p.add_argument("-t", "--target", choices=TARGETS, default="cpu")
    p.add_argument("--fastmath", action="store_true")
    p.add_argument("--no-parallel", dest="parallel", action="store_false")
    p.add_argument("--no-cache", dest="cache", action="store_false")
    p.add_argument("--module", metavar="NAME",
                   help="also bind the module (its kernels as attributes) under this name")
    return p


def nbx_cell(ipython, line: str, cell: str):
    """The %%nbx cell magic: returns None (the kernels are bound, not displayed)."""
    try:
        args = _parser().parse_args(shlex.split(line))
    except SystemExit:   # argparse has printed the usage and the error
        return None
    filename = f"<nbx cell {ipython.execution_count}>"
    try:
        module = compile(cell, filename=filename, target=args.target,
                         fastmath=args.fastmath, parallel=args.parallel, cache=args.cache)
    except CompileError as err:
        print(err, file=sys.stderr)
        return None
    ipython.user_ns.update(module.kernels)
    if args.module:
        ipython.user_ns[args.module] = module
    return None


def load_ipython_extension(ipython) -> None:
    """`%load_ext nbx`."""
    ipython.register_magic_function(lambda line, cell: nbx_cell(ipython, line, cell),
                                    magic_kind="cell", magic_name="nbx")
