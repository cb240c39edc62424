"""nbxc compile FILE: a standalone Python module that needs numpy and numba only."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..dsl.types import DTYPES
from .common import UserError, add_options, add_target, compiler, options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compile", help="write a standalone Python module (needs numpy and numba only)",
        description="Compile every kernel of FILE into one Python module that needs numpy and "
        "numba only: one function per kernel, with nbx's calling convention, argument checks "
        "and error messages, and cache=True so Numba keeps the machine code beside it.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="OUT.py",
                   help="where to write the module (default: FILE with .py; '-' for stdout)")
    add_target(p)
    p.add_argument("--specialize", action="append", default=[], metavar="T=f32,f64",
                   help="dtypes for a type variable: one specialisation per dtype, chosen "
                   "at call time by the arguments' dtypes (repeat for several variables)")
    add_options(p)
    p.set_defaults(run=run)


def parse_specialize(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        dtypes = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name.strip() or not dtypes:
            raise UserError(f"--specialize takes T=dtype[,dtype...], got {item!r}")
        bad = [d for d in dtypes if d not in DTYPES]
        if bad:
            raise UserError(f"--specialize {item}: unknown dtype {bad[0]!r} (dtypes: "
                            f"{', '.join(DTYPES)})")
        out.setdefault(name.strip(), [])
        out[name.strip()] += [d for d in dtypes if d not in out[name.strip()]]
    return out


def run(args) -> int:
    from ..backends.standalone import emit_module
    if args.target == "auto":
        raise UserError("a standalone module is compiled for one target: -t cpu, cuda or "
                        "cuda-ufunc (auto chooses per call, which needs nbx)")
    specialize = parse_specialize(args.specialize)
    comp = compiler(args.file, args.target, **options(args))
    text = emit_module(comp, specialize, origin=args.file)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output) if args.output else Path(args.file).with_suffix(".py")
    if out.resolve() == Path(args.file).resolve():
        raise UserError(f"the output {out} would replace the source file")
    # atomic: an importer never sees half a module
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror}") from None
    kernels = ", ".join(comp.env.kernels) or "no kernels"
    print(f"wrote {out} ({kernels})", file=sys.stderr)
    return 0
