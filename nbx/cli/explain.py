"""nbxc explain FILE: the AST, typed IR, fusion plan, generated source, or Numba's output."""

from __future__ import annotations

import sys

from ..chunked.split import format_chunk_plan, split
from ..dsl import check, ir
from ..dsl.fuse import format_plan, fuse
from .common import add_target, add_verbose, compiler, kernel_names

EMITS = ("source", "ast", "typed", "ir", "stages", "chunks", "py", "llvm", "asm", "ptx")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain", help="show the fusion plan, IR, generated source or machine code",
        description="Show how nbx compiles each kernel: its source (highlighted), the "
        "fusion plan (stages, loop nests, reads, writes, temporaries, bytes moved per "
        "element), the AST or typed IR, the steps of a call on Dask arrays (chunks), the "
        "generated Python source, or what Numba made of it (LLVM IR, machine code; PTX for "
        "CUDA targets). Generic kernels are shown for their default binding (all f64).")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-k", "--kernel", help="only this kernel")
    add_target(p)
    p.add_argument("--emit", choices=EMITS, default="stages",
                   help="what to show (default: stages); typed and ir are the same typed IR")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="syntax highlighting of generated source (auto: on a terminal)")
    add_verbose(p)
    p.set_defaults(run=run)


def run(args) -> int:
    comp = compiler(args.file, args.target)
    kernels = comp.env.kernels
    out = []
    for name in kernel_names(args.file, kernels, args.kernel):
        definition = kernels[name]
        if args.emit == "source":
            span = definition.span
            out.append("\n".join(comp.source.text.split("\n")[span.line - 1:span.end_line])
                       .rstrip())
            continue
        if args.emit == "ast":
            out.append(repr(definition))
            continue
        kernel_ir = comp.check_kernel(definition, check.default_binding(comp.env, definition))
        if args.emit in ("typed", "ir"):
            out.append(ir.format_kernel(kernel_ir))
        elif args.emit == "stages":
            out.append(format_plan(fuse(kernel_ir)))
        elif args.emit == "chunks":
            out.append(format_chunk_plan(split(kernel_ir)))
        elif args.emit == "py":
            out.append(comp.specialize(definition, check.default_binding(comp.env, definition))
                       .source)
        else:
            from ..runtime import Kernel, Module
            kernel = Kernel(None, definition)
            Module(comp, {name: kernel})
            inspect = {"llvm": kernel.inspect_llvm, "asm": kernel.inspect_asm,
                       "ptx": kernel.inspect_ptx}[args.emit]
            out.extend(inspect().values())
    show("\n\n".join(out), {"py": "python", "source": "nbx", "llvm": "llvm",
                             "asm": "nasm"}.get(args.emit), args.color)
    return 0


def show(text: str, language: str | None, color: str) -> None:
    """Print text, highlighted as `language` when stdout is a terminal (or --color always)."""
    if language is None or color == "never" or (color == "auto" and not sys.stdout.isatty()):
        print(text)
        return
    from rich.console import Console
    from rich.syntax import Syntax
    Console(force_terminal=True).print(Syntax(text, language, theme="ansi_dark",
                                              background_color="default"))
