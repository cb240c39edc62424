"""What the nbxc commands share: reading a .nbx file, finding a kernel, common flags."""

from __future__ import annotations

import argparse

from ..dsl.compile import TARGETS, Compiler
from ..dsl.source import CompileError


class UserError(Exception):
    """An error in the user's data or request (exit 1): printed as `nbxc: error: ...`."""


def read_source(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise CompileError(None, f"cannot read {path}: {err}") from None


def compiler(path: str, target: str = "cpu", **options) -> Compiler:
    """Parse and check a file (a CompileError for any mistake in it)."""
    return Compiler(read_source(path), filename=path, target=target, **options)


def kernel_names(path: str, kernels, wanted: str | None) -> list[str]:
    """The kernels a command works on: the one named by -k, else all of them."""
    if wanted is None:
        return list(kernels)
    if wanted not in kernels:
        raise CompileError(None, f"{path} has no kernel '{wanted}' (kernels: "
                           f"{', '.join(kernels) or 'none'})")
    return [wanted]


def add_target(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        p.add_argument("-t", "--target", action="append", choices=TARGETS, dest="targets",
                       help="a target to run on (repeat for several; default: cpu)")
    else:
        p.add_argument("-t", "--target", default="cpu", choices=TARGETS,
                       help="the target to compile for (default: cpu)")


def add_options(p: argparse.ArgumentParser) -> None:
    """The compile options of LANGUAGE.md section 8 and the compile-time report."""
    p.add_argument("--fastmath", action="store_true", help="let Numba use fast-math flags")
    p.add_argument("--no-parallel", dest="parallel", action="store_false",
                   help="emit serial loops (no prange)")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="do not keep or reuse compiled modules on disk")
    add_verbose(p)


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="report compile times per kernel (like NBX_VERBOSE=1)")


def options(args) -> dict:
    return {"fastmath": args.fastmath, "parallel": args.parallel, "cache": args.cache}


def whole_number(minimum: int):
    """An argparse type: an integer >= minimum (else a usage error, exit 2)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
        return n
    return parse
