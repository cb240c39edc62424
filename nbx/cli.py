"""nbxc: the command-line compiler (first commands: check and explain).

Exit codes: 0 success, 1 an error in the user's program or data (a message, no traceback),
2 wrong usage (argparse's own exit code).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .dsl import check, ir
from .dsl.compile import Compiler
from .dsl.fuse import format_plan, fuse
from .dsl.source import CompileError

EMITS = ("ast", "typed", "ir", "stages", "py")


def _read(path: str) -> str:
    with open(path, encoding="utf-8-sig") as f:
        return f.read()


def _compiler(path: str, target: str = "cpu") -> Compiler:
    try:
        text = _read(path)
    except (OSError, UnicodeDecodeError) as err:
        raise CompileError(None, f"cannot read {path}: {err}") from None
    return Compiler(text, filename=path, target=target)


def _diagnostic(path: str, err: CompileError) -> dict:
    span = err.span
    return {"file": span.filename if span else path, "line": err.line, "column": err.column,
            "end_line": span.end_line if span else 0, "end_column": span.end_column if span
            else 0, "message": err.message, "hint": err.hint}


def cmd_check(args) -> int:
    failed = False
    diagnostics = []
    for path in args.files:
        try:
            _compiler(path)
        except CompileError as err:
            failed = True
            diagnostics.append(_diagnostic(path, err))
            if args.format == "text":
                print(err, file=sys.stderr)
    if args.format == "json":
        print(json.dumps(diagnostics, indent=2))
    elif not failed:
        print(f"ok: {len(args.files)} file{'s' if len(args.files) != 1 else ''} checked")
    return 1 if failed else 0


def cmd_explain(args) -> int:
    compiler = _compiler(args.file, args.target)
    kernels = compiler.env.kernels
    if args.kernel is not None and args.kernel not in kernels:
        raise CompileError(None, f"{args.file} has no kernel '{args.kernel}' (kernels: "
                           f"{', '.join(kernels) or 'none'})")
    names = [args.kernel] if args.kernel else list(kernels)
    out = []
    for name in names:
        definition = kernels[name]
        if args.emit == "ast":
            out.append(repr(definition))
            continue
        kernel_ir = compiler.check_kernel(definition,
                                          check.default_binding(compiler.env, definition))
        if args.emit in ("typed", "ir"):
            out.append(ir.format_kernel(kernel_ir))
            continue
        plan = fuse(kernel_ir)
        if args.emit == "stages":
            out.append(format_plan(plan))
            continue
        from .backends.cpu_backend import emit
        out.append(emit(plan, origin=args.file, **compiler.options))
    print("\n\n".join(out))
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nbxc", description="The nbx compiler.")
    ap.add_argument("--version", action="version", version=f"nbxc {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="parse and type-check .nbx files; exit 1 on errors")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: a list of diagnostics (file, line, column, end, message, hint)")
    p.set_defaults(run=cmd_check)
    p = sub.add_parser("explain", help="show the fusion plan, IR or generated source")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-k", "--kernel", help="only this kernel")
    p.add_argument("-t", "--target", default="cpu", choices=("cpu",))
    p.add_argument("--emit", choices=EMITS, default="stages",
                   help="what to show (default: stages)")
    p.set_defaults(run=cmd_explain)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except CompileError as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
