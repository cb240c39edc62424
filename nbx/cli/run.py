"""nbxc run FILE -k KERNEL: one call of a kernel on .npy files, literals or random inputs.

Command-line text -> the kernel's arguments (sizes, literals, .npy files, seeded random
arrays) -> one call -> results printed (summaries for large arrays) or saved to .npy/.npz.
The argument builders here are shared with `nbxc bench`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import load
from ..dsl.types import DTYPES, NAMES, suggest_dtype
from .common import UserError, add_options, add_target, kernel_names, options, whole_number

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DTYPE_LIST = " ".join(DTYPES)

SIZE_HELP = ("the length of dimension NAME: an integer-valued number >= 0, e.g. n=1000000 or "
             "n=1e6 (repeat for each dimension; a dimension an --arg array already defines "
             "needs none)")
ARG_HELP = ("give parameter NAME a value: a number or bool literal (42, -1.5, 1e-3, nan, inf, "
            "True, False) for a scalar parameter, anything else is read as a .npy file "
            "(numpy.load, no pickles) for an array or scalar parameter. Parameters not given "
            "get random values: floats standard normal, signed integers in [-100, 100), "
            "unsigned integers in [0, 100), bools uniform")
SPECIALIZE_HELP = (f"bind type variable T to a dtype ({_DTYPE_LIST}); default: the dtype of "
                   "the first --arg array that uses T, else what NumPy makes of the --arg "
                   "literals that use it (i64, f64 or bool), else f64")
SEED_HELP = ("seed of the random inputs (default 0): parameter number i draws from "
             "numpy.random.default_rng([SEED, i]), so one input does not change when another "
             "is given by --arg")


# command line -----------------------------------------------------------------------------
def add_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="run a kernel once on .npy files or random inputs",
        description="Run one kernel once and print its results (NumPy's printing for arrays "
        "up to NumPy's print threshold, else shape, dtype, min/max/mean, NaN count and a few "
        "values), or save them with -o. Inputs come from --arg, the rest are random arrays "
        "of the --size lengths.")
    p.add_argument("file", metavar="FILE", help="the .nbx file")
    add_kernel_option(p)
    add_input_options(p)
    p.add_argument("-o", "--output", metavar="OUT",
                   help="save the results instead of printing them: OUT.npy for a kernel "
                   "with one result; OUT.npz holds every result by name (result0, result1, "
                   "...) and is required when the kernel returns several")
    add_target(p)
    add_options(p)
    p.set_defaults(run=run)


def add_kernel_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--kernel", metavar="KERNEL",
                   help="the kernel to run (may be left out when the file has only one)")


def add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", dest="sizes", action="append", default=[], type=parse_size,
                   metavar="NAME=N", help=SIZE_HELP)
    p.add_argument("--arg", dest="inputs", action="append", default=[], type=parse_arg,
                   metavar="NAME=VALUE|FILE.npy", help=ARG_HELP)
    p.add_argument("--specialize", dest="specialize", action="append", default=[],
                   type=parse_specialize, metavar="T=DTYPE", help=SPECIALIZE_HELP)
    p.add_argument("--seed", type=whole_number(0), default=0, metavar="S", help=SEED_HELP)


def _split(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not _NAME.match(name) or not value.strip():
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return name, value.strip()


def parse_size(text: str) -> tuple[str, int]:
    """`n=1000000` or `n=1e6` -> ("n", 1000000): integer-valued and >= 0."""
    name, value = _split(text, "NAME=N such as n=1000 or n=1e6")
    try:
        n = int(value)
    except ValueError:
        try:
            f = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"size of {name} must be a number, got {value!r}") from None
        if not f.is_integer():   # also nan and inf
            raise argparse.ArgumentTypeError(
                f"size of {name} must be a whole number, got {value!r}") from None
        n = int(f)
    if n < 0:
        raise argparse.ArgumentTypeError(f"size of {name} must be >= 0, got {value!r}")
    return name, n


@dataclass(frozen=True)
class Arg:
    """One --arg: a literal scalar (value) or a file to read (path)."""

    name: str
    text: str
    value: bool | int | float | None = None
    path: str | None = None


def parse_literal(text: str) -> bool | int | float | None:
    """A number or bool literal, or None if the text is not one (never eval)."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    try:
        return int(text, 10)
    except ValueError:
        pass
    try:
        return float(text)  # also 1e6, nan, inf, -inf
    except ValueError:
        return None


def parse_arg(text: str) -> Arg:
    """`x=x.npy` -> a file to read; `a=2.5` -> a literal."""
    name, value = _split(text, "NAME=VALUE or NAME=FILE.npy")
    literal = parse_literal(value)
    if literal is not None:
        return Arg(name, value, value=literal)
    return Arg(name, value, path=value)


def parse_specialize(text: str) -> tuple[str, np.dtype]:
    name, value = _split(text, "T=DTYPE such as T=f32")
    if value not in DTYPES:
        hint = suggest_dtype(value)
        hint = f" (did you mean {hint}?)" if hint else ""
        raise argparse.ArgumentTypeError(
            f"unknown dtype {value!r}{hint}; dtypes: {_DTYPE_LIST}")
    return name, DTYPES[value]


def unique(pairs, flag: str) -> dict:
    """Repeated NAME=... options as a dict; a name given twice is an error."""
    out: dict = {}
    for name, value in pairs:
        if name in out:
            raise UserError(f"{flag} {name} is given twice")
        out[name] = value
    return out


# the kernel -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    dtype: np.dtype | None      # None for a type variable
    typevar: str | None
    axes: tuple[str, ...] | None  # None for a scalar


# These four functions are the only readers of the runtime's internals.
def params(kernel) -> list[Param]:
    """The kernel's parameters."""
    return [Param(p.name, p.dtype, p.typevar, None if p.axes is None else tuple(p.axes))
            for p in kernel._params]


def type_variables(kernel) -> list[str]:
    return list(kernel._typevars)


def result_count(kernel) -> int:
    return len(kernel._def.results)


def results_tuple(kernel, value) -> tuple:
    """A call's results as a tuple, one result or several."""
    return value if kernel._def.tuple_result else (value,)


def select_kernel(module, path: str, wanted: str | None):
    kernels = module.kernels
    if wanted is None and len(kernels) != 1:
        names = ", ".join(kernels) or "none"
        raise UserError(f"{path} has {len(kernels)} kernels ({names}): choose one with -k")
    (name,) = kernel_names(path, kernels, wanted) if wanted else list(kernels)
    return kernels[name]


# inputs -----------------------------------------------------------------------------------
@dataclass
class Inputs:
    """The kernel's arguments by name, and how each was made (for printing)."""

    kwargs: dict
    binding: dict[str, np.dtype]
    lengths: dict[str, int]
    described: list[str]
    random: bool        # whether any argument is random (then the seed matters)

    def positional(self, kernel) -> list:
        return [self.kwargs[p.name] for p in params(kernel)]


def read_npy(arg: Arg) -> np.ndarray:
    try:
        value = np.load(arg.path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise UserError(f"--arg {arg.name}={arg.path}: cannot read a .npy file: "
                        f"{reason}") from None
    if not isinstance(value, np.ndarray):   # an .npz archive
        value.close()
        raise UserError(f"--arg {arg.name}={arg.path}: an .npz archive; give one .npy file "
                        "per array")
    return value


def random_value(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...] | None):
    """Random values: floats standard normal, signed ints in [-100, 100), unsigned in [0, 100),
    bools uniform; a NumPy scalar when shape is None."""
    size = () if shape is None else shape
    if dtype.kind == "f":
        value = rng.standard_normal(size, dtype=dtype)
    elif dtype.kind == "i":
        value = rng.integers(-100, 100, size, dtype=dtype)
    elif dtype.kind == "u":
        value = rng.integers(0, 100, size, dtype=dtype)
    else:
        value = rng.random(size) < 0.5
    return value[()] if shape is None else value


def choose_binding(ps: list[Param], typevars: list[str], given: dict,
                   specialized: dict[str, np.dtype]) -> dict[str, np.dtype]:
    """Each type variable's dtype: --specialize, else the first given array (or NumPy value)
    that uses it, else what NumPy makes of the given literals that use it, else f64."""
    known = set(DTYPES.values())
    binding: dict[str, np.dtype] = {}
    for tv in typevars:
        arrays = [(p.name, given[p.name]) for p in ps if p.typevar == tv and p.name in given
                  and isinstance(given[p.name], np.ndarray) and given[p.name].dtype in known]
        literals = [given[p.name] for p in ps if p.typevar == tv and p.name in given
                    and not isinstance(given[p.name], np.ndarray)]
        if tv in specialized:
            binding[tv] = specialized[tv]
            for name, value in arrays:
                if value.dtype != specialized[tv]:
                    raise UserError(f"--specialize {tv}={NAMES[specialized[tv]]} but {name} "
                                    f"is a {value.dtype} array")
        elif arrays:
            binding[tv] = arrays[0][1].dtype
        elif literals:
            binding[tv] = np.result_type(*literals)
        else:
            binding[tv] = DTYPES["f64"]
    return binding


def _literal_as(name: str, text: str, value, dtype: np.dtype):
    """A literal for a type variable that no array binds, as a NumPy scalar of the chosen
    dtype (so that --specialize holds), by the kernel's rules: integers by value, else
    same-kind conversions only."""
    if isinstance(value, int) and not isinstance(value, bool) and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise UserError(f"--arg {name}={text}: out of range for {dtype}")
        return dtype.type(value)
    src = np.result_type(value)
    if not np.can_cast(src, dtype, casting="same_kind"):
        raise UserError(f"--arg {name}={text}: a {src} value does not convert to {dtype}")
    with np.errstate(all="ignore"):
        return dtype.type(value)


def build_inputs(kernel, args) -> Inputs:
    """The kernel's arguments from --arg, --size, --specialize and --seed.

    Arguments the kernel cannot take (unknown names, wrong dtypes or ranks) are passed on
    unchanged: the kernel's own checks name them when it is called."""
    ps = params(kernel)
    typevars = type_variables(kernel)
    given_args = unique(((a.name, a) for a in args.inputs), "--arg")
    specialized = unique(args.specialize, "--specialize")
    for tv in specialized:
        if tv not in typevars:
            raise UserError(f"--specialize {tv}: {kernel.name} has no type variable {tv} "
                            f"(type variables: {', '.join(typevars) or 'none'})")
    given = read_given(ps, given_args)
    binding = choose_binding(ps, typevars, given, specialized)
    lengths = dimension_lengths(kernel.name, ps, given, given_args,
                                unique(args.sizes, "--size"))
    kwargs: dict = {}
    described: dict[str, str] = {}
    for i, p in enumerate(ps):
        dtype = p.dtype if p.dtype is not None else binding[p.typevar]
        if p.name in given:
            a, value = given_args[p.name], given[p.name]
            if (p.typevar in specialized and p.axes is None and not isinstance(value, np.ndarray)
                    and not any(q.typevar == p.typevar and q.axes is not None for q in ps)):
                value = _literal_as(p.name, a.text, value, dtype)
            kwargs[p.name] = value
            described[p.name] = a.text if a.path is None else f"{a.path} ({_describe(value)})"
            continue
        shape = None if p.axes is None else tuple(lengths[d] for d in p.axes)
        try:
            value = random_value(np.random.default_rng([args.seed, i]), dtype, shape)
        except MemoryError:
            raise UserError(f"cannot allocate {p.name}: {dtype} array of shape "
                            f"{shape}") from None
        kwargs[p.name] = value
        described[p.name] = (f"random {_describe(value)}" if shape is not None
                             else f"random {_format_scalar(value)} ({value.dtype})")
    for name, value in given.items():
        if name not in kwargs:   # not a parameter: the kernel says "unexpected keyword"
            kwargs[name] = value
            described[name] = given_args[name].text
    return Inputs(kwargs, binding, lengths, [f"{n} = {t}" for n, t in described.items()],
                  random=any(p.name not in given for p in ps))


def read_given(ps: list[Param], given_args: dict[str, Arg]) -> dict:
    """The --arg values: literals as they are, files read."""
    by_name = {p.name: p for p in ps}
    given: dict = {}
    for name, a in given_args.items():
        p = by_name.get(name)
        if a.path is None and p is not None and p.axes is not None:
            raise UserError(f"--arg {name}={a.text}: {name} is an array parameter "
                            f"({_type_text(p)}): give a .npy file")
        given[name] = read_npy(a) if a.path is not None else a.value
    return given


def dimension_lengths(kernel_name: str, ps: list[Param], given: dict,
                      given_args: dict[str, Arg], sizes: dict[str, int]) -> dict[str, int]:
    """Every dimension's length, in the order the parameters name them: from the given
    arrays, else --size; a --size that contradicts an array is an error."""
    dims = list(dict.fromkeys(d for p in ps for d in p.axes or ()))
    for d in sizes:
        if d not in dims:
            raise UserError(f"--size {d}: {kernel_name} has no dimension {d} "
                            f"(dimensions: {', '.join(dims) or 'none'})")
    lengths: dict[str, int] = {}
    origin: dict[str, str] = {}
    for p in ps:
        value = given.get(p.name)
        if p.axes is None or not isinstance(value, np.ndarray) or value.ndim != len(p.axes):
            continue    # a wrong rank is the kernel's to report
        for d, n in zip(p.axes, value.shape):
            if d not in lengths:
                lengths[d], origin[d] = n, p.name
    for d, n in sizes.items():
        if d in lengths and lengths[d] != n:
            raise UserError(f"--size {d}={n}, but {origin[d]} ({given_args[origin[d]].text}) "
                            f"has {d}={lengths[d]}")
        lengths[d] = n
    missing = [d for d in dims if d not in lengths]
    if missing and _wrong_rank(ps, given):
        # the kernel's own message about the array is better than "no length": it comes at
        # the call, whatever the other lengths are
        lengths.update(dict.fromkeys(missing, 0))
    elif missing:
        need = ", ".join(f"--size {d}=N" for d in missing)
        raise UserError(f"{kernel_name}: no length for dimension{'s' if len(missing) > 1 else ''}"
                        f" {', '.join(missing)}: give {need} (or an --arg array that has it)")
    return {d: lengths[d] for d in dims}


def _wrong_rank(ps: list[Param], given: dict) -> bool:
    return any(p.axes is not None and isinstance(given.get(p.name), np.ndarray)
               and given[p.name].ndim != len(p.axes) for p in ps)


def _type_text(p: Param) -> str:
    dtype = p.typevar or NAMES[p.dtype]
    return dtype + (f"[{', '.join(p.axes)}]" if p.axes is not None else "")


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"


# results ----------------------------------------------------------------------------------
def _format_scalar(value) -> str:
    value = np.asarray(value)[()]
    if isinstance(value, np.floating):
        return f"{float(value):.6g}"
    return str(value)


def format_result(name: str, value) -> str:
    """`name = value` for scalars and small arrays (NumPy's printing and threshold), else a
    summary: dtype, shape, min/max/mean, NaN count and the first and last values."""
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
        return f"{name} = {value[()]} ({value.dtype})"
    head = f"{name} = {value.dtype} array of shape {value.shape}"
    if value.size <= np.get_printoptions()["threshold"]:
        return f"{head}:\n{np.array2string(value)}"
    lines = [head]
    with np.errstate(all="ignore"):
        if value.dtype.kind == "f":
            nans = int(np.count_nonzero(np.isnan(value)))
            finite = value[~np.isnan(value)]
        else:
            nans, finite = None, value
        stats = []
        if finite.size:
            stats = [f"min {_format_scalar(finite.min())}", f"max {_format_scalar(finite.max())}",
                     f"mean {float(finite.mean(dtype=np.float64)):.6g}"]
        if nans is not None:
            stats.append(f"NaN {nans}")
    lines.append("  " + "  ".join(stats))
    edge = 3 if value.ndim == 1 else 2
    text = np.array2string(value, threshold=0, edgeitems=edge)
    lines.append("  " + text.replace("\n", "\n  "))
    return "\n".join(lines)


def output_kind(output: str | None, n_results: int, kernel_name: str) -> str | None:
    """'npy' or 'npz' for -o, checked before the kernel runs."""
    if output is None:
        return None
    suffix = Path(output).suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix == ".npy":
        if n_results != 1:
            raise UserError(f"{kernel_name} returns {n_results} results: save them with "
                            f"-o FILE.npz (result0 ... result{n_results - 1})")
        return "npy"
    raise UserError(f"-o {output}: the name must end in .npy (one result) or .npz (every "
                    "result, by name result0, result1, ...)")


def save_results(output: str, kind: str, results: tuple) -> None:
    try:
        if kind == "npy":
            np.save(output, np.asarray(results[0]))
        else:
            np.savez(output, **{f"result{i}": np.asarray(r) for i, r in enumerate(results)})
    except OSError as err:
        raise UserError(f"cannot write {output}: {err.strerror or err}") from None


# the command ------------------------------------------------------------------------------
def run(args) -> int:
    module = load(args.file, target=args.target, **options(args))
    kernel = select_kernel(module, args.file, args.kernel)
    kind = output_kind(args.output, result_count(kernel), kernel.name)
    inputs = build_inputs(kernel, args)
    try:
        value = kernel(**inputs.kwargs)
    except MemoryError:
        raise UserError(f"{kernel.name}(): out of memory for its results") from None
    results = results_tuple(kernel, value)
    if kind is not None:
        save_results(args.output, kind, results)
        names = "result" if kind == "npy" else ", ".join(f"result{i}"
                                                           for i in range(len(results)))
        print(f"saved {names} to {args.output}", file=sys.stderr)
        return 0
    print(kernel.signature)
    if inputs.lengths:
        print("  " + ", ".join(f"{d}={n}" for d, n in inputs.lengths.items()))
    for line in inputs.described:
        print(f"  {line}")
    if inputs.random:
        print(f"  random inputs from seed {args.seed}")
    for i, r in enumerate(results):
        print(format_result(f"result{i}", r))
    return 0
