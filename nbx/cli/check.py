"""nbxc check FILE...: parse and type-check; diagnostics as text or JSON (for editors)."""

from __future__ import annotations

import json
import sys

from ..dsl.compile import diagnose
from ..dsl.source import CompileError
from .common import read_source


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="parse and type-check .nbx files; exit 1 on errors",
                       description="Parse and type-check .nbx files. Errors go to stderr as "
                       "file:line:col: error: ...; exit 1 on any error. Reported per file: "
                       "the first syntax error of each top-level definition or, without "
                       "syntax errors, the first type error of each const and kernel.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: a list of diagnostics on stdout (file, line, column, "
                   "end_line, end_column, message, hint)")
    p.set_defaults(run=run)


def diagnostic(path: str, err: CompileError) -> dict:
    span = err.span
    return {"file": span.filename if span else path, "line": err.line, "column": err.column,
            "end_line": span.end_line if span else 0,
            "end_column": span.end_column if span else 0,
            "message": err.message, "hint": err.hint}


def run(args) -> int:
    diagnostics = []
    failed = False
    for path in args.files:
        try:
            errors = diagnose(read_source(path), path)
        except CompileError as err:   # the file cannot be read
            errors = [err]
        failed = failed or bool(errors)
        for err in errors:
            diagnostics.append(diagnostic(path, err))
            if args.format == "text":
                print(err, file=sys.stderr)
    if args.format == "json":
        print(json.dumps(diagnostics, indent=2))
    elif not failed:
        n = len(args.files)
        print(f"ok: {n} file{'s' if n != 1 else ''} checked")
    return 1 if failed else 0
