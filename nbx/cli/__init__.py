"""nbxc: the command-line compiler. One file per command; this one builds the parser and runs.

Exit codes: 0 success, 1 an error in the user's program or data (a message, no traceback),
2 wrong usage (argparse's own exit code).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..backends.cuda_runtime import TargetUnavailable
from ..dsl.source import CompileError
from . import bench, cache, check, compile, explain, run
from .common import UserError

COMMANDS = (check, compile, explain, run, bench, cache)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nbxc", description="The nbx compiler: check, compile, "
                                 "explain, run and benchmark .nbx kernels.")
    ap.add_argument("--version", action="version", version=f"nbxc {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "verbose", False):
        os.environ["NBX_VERBOSE"] = "1"
    try:
        return args.run(args)
    except CompileError as err:
        print(err, file=sys.stderr)
        return 1
    except (UserError, TypeError, ValueError, OSError, TargetUnavailable) as err:
        # bad data or a bad request of the user's (an input file, a kernel's argument): the
        # message, never a traceback
        print(f"nbxc: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
