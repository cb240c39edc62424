"""emit (standalone): a whole .nbx file -> one Python module that needs numpy and numba only.

`nbxc compile` writes it. It holds nbx's calling convention copied verbatim from
nbx/callconv.py (and the backend's runtime files, which the compiled functions may use as they
are defined), then every kernel's compiled functions (one set per specialisation), then one
plain function per kernel with its docstring:

    def normalize(*args, **kwargs):
        \"\"\"normalize(x: f64[n]) -> f64[n] ...\"\"\"
        return _kernel_normalize(*args, **kwargs)

So a call checks its arguments, words its errors and computes its results exactly as
nbx.load(FILE) would: the compiled functions are the same text, compiled by the same Numba.
"""

from __future__ import annotations

import ast as pyast
import itertools
import keyword
import symtable
from pathlib import Path

from .. import __version__
from ..dsl import check, ir
from ..dsl.fuse import fuse
from ..dsl.source import CompileError
from ..dsl.types import DTYPES, dtype_name
from ..runtime import param_table, signature_text
from . import load_backend
from .base import CodeBuilder
from .wrapper import needs_error_flag

_PACKAGE = Path(__file__).resolve().parent.parent


def _copied(relative: str) -> str:
    """A runtime file of nbx's, as it is copied into the module."""
    text = (_PACKAGE / relative).read_text()
    return f"# ---- copied from nbx/{relative} (nbx {__version__}) ----\n{text}"


def bindings(compiler, definition, specialize: dict[str, list[str]]) -> list[dict]:
    """Every binding of a kernel's type variables that --specialize asks for (one {} if the
    kernel has none); a type variable with no --specialize values is a CompileError."""
    typevars = check.type_variables(definition)
    missing = [tv for tv in typevars if tv not in specialize]
    if missing:
        example = ", ".join(f"{tv}=f32,f64" for tv in missing)
        raise CompileError(definition.name_span, f"kernel '{definition.name}' is generic in "
                           f"{', '.join(missing)}: a standalone module needs its dtypes "
                           "chosen ahead of time", f"add --specialize {example} (one "
                           "specialisation per dtype, dispatched by the arguments' dtypes)",
                           compiler.source)
    choices = [[DTYPES[name] for name in specialize[tv]] for tv in typevars]
    return [dict(zip(typevars, combo)) for combo in itertools.product(*choices)]


def emit_module(compiler, specialize: dict[str, list[str]], *, origin: str) -> str:
    """The standalone module for every kernel of a checked file."""
    backend = load_backend(compiler.target)
    # cuda-ufunc modules share the cuda target's header, runtime and set-up
    frame = load_backend("cuda") if compiler.target == "cuda-ufunc" else backend
    options = {k: v for k, v in compiler.options.items() if k != "cache"}
    kernels = compiler.env.kernels
    b = CodeBuilder()
    b.line(f'"""Kernels compiled by nbxc {__version__} from {origin}: '
           f'{", ".join(kernels) or "none"}.')
    b.line("")
    b.line(f"Target {compiler.target}; options: "
           + ", ".join(f"{k}={v}" for k, v in options.items()) + ".")
    b.line(f"Needs {backend.STANDALONE_NEEDS} only. Each kernel is a function; help(kernel) "
           "shows its")
    b.line('signature. Do not edit: regenerate with nbxc compile."""')
    text = b.text() + frame.standalone_header(origin, "a standalone module")
    text += "\n\n" + _copied("callconv.py")
    for part in frame.STANDALONE_RUNTIME:
        text += "\n\n" + _copied(f"backends/{part}.py")
    objects = CodeBuilder()
    for name, definition in kernels.items():
        compiled = []
        for binding in bindings(compiler, definition, specialize):
            try:
                kernel_ir = compiler.check_kernel(definition, binding)
            except TypeError as err:   # this binding does not type-check
                raise CompileError(definition.name_span, str(err).split("\n")[0],
                                   None, compiler.source) from None
            suffix = "".join(f"__{dtype_name(dt)}" for dt in binding.values())
            with compiler.chokepoint(definition.name_span):
                plan = fuse(kernel_ir)
                if compiler.target == "cuda-ufunc":
                    compiler._refuse_non_ufunc(definition, plan)
                functions, entry, fast = backend.standalone_functions(
                    plan, suffix=suffix, **options)
            text += f"\n\n# ---- kernel {name}" + (f" ({suffix.replace('__', ' ')[1:]})"
                                                     if suffix else "") + " ----\n" + functions
            compiled.append((binding, kernel_ir, plan, entry, fast))
        _emit_kernel_object(objects, definition, compiled)
    text += "\n\n# ---- the kernels ----\n" + f"TARGET = {compiler.target!r}\n" \
        + frame.STANDALONE_SETUP + _KERNEL_CLASS
    text += objects.text()
    text += f"\n\n__all__ = {list(kernels)!r}\n"
    _refuse_clashes(compiler, text)
    return text


_KERNEL_CLASS = '''

class _Kernel(KernelBase):
    """A kernel with the specialisations it was compiled for (no compiler at hand)."""

    _device = DEVICE   # a CUDA target's kernel: its arrays may be on the GPU

    def __init__(self, name, params, tuple_result, signature, doc, compiled):
        super().__init__(name, params, tuple_result, signature, doc)
        for key, spec in compiled.items():
            self._specs[tuple(DTYPES[n] for n in key)] = spec
            if DEVICE:   # device arrays in, without the general checks
                spec.fast = FastCall(self, spec, {tv: DTYPES[n] for tv, n in
                                                  zip(self._typevars, key)})
        self._spec_list = [s for s in self._specs.values() if s.fast is not None]

    def _run_device(self, spec, values, lengths, out, stream):
        require(TARGET)
        return run(self, spec, values, lengths, out, stream)

    def build(self, binding):
        names = ", ".join(f"{tv}={binding[tv]}" for tv in self._typevars)
        have = " or ".join(", ".join(f"{tv}={dt}" for tv, dt in zip(self._typevars, key))
                         for key in self._specs)
        raise TypeError(f"{self.name}(): this module was compiled for {have} only; the "
                        f"arguments need {names} (compile it again with nbxc compile "
                        "--specialize)")
'''


def _emit_kernel_object(b: CodeBuilder, definition, compiled) -> None:
    name = definition.name
    specs = []
    for binding, kernel_ir, plan, entry, fast in compiled:
        checks = ir.empty_checks(kernel_ir)
        key = tuple(dtype_name(dt) for dt in binding.values())
        fast_code = f"_entry({fast})" if fast is not None else "None"
        specs.append(f"    {key!r}: Compiled(_entry({entry}), {fast_code}, "
                     f"{kernel_ir.dims!r}, {[r.dtype.name for r in kernel_ir.results]!r}, "
                     f"{[r.axes for r in kernel_ir.results]!r}, {checks!r}, "
                     f"can_fail={needs_error_flag(plan)!r}),")
    signature = signature_text(definition)
    doc = definition.doc or ""
    b.line("")
    b.line("")
    b.line(f"_kernel_{name} = _Kernel({name!r}, {param_table(definition)!r}, "
           f"{definition.tuple_result!r}, {signature!r}, {doc!r}, {{")
    b.extend(specs)
    b.line("})")
    b.line("")
    b.line("")
    with b.block(f"def {name}(*args, **kwargs):"):
        b.line(_docstring(signature + ("\n\n" + doc if doc else "")))
        b.line(f"return _kernel_{name}(*args, **kwargs)")


def _docstring(text: str) -> str:
    """A triple-quoted literal where the text allows it (it reads better), else repr()."""
    if '"""' in text or "\\" in text or text.endswith('"') or \
            not all(c.isprintable() or c == "\n" for c in text):
        return repr(text)
    lines = text.split("\n")
    return '"""' + "\n".join([lines[0]] + [("    " + t) if t else "" for t in lines[1:]]) \
        + '"""'


def _refuse_clashes(compiler, text: str) -> None:
    """A kernel's function must not be a Python keyword, nor replace a global the module
    defines or looks up (np, math, range, a compiled function's name...)."""
    for name, definition in compiler.env.kernels.items():
        if keyword.iskeyword(name):
            _clash(compiler, definition, "is a Python keyword")
    table = symtable.symtable(text, "<standalone>", "exec")
    defined: dict[str, int] = {}
    for node in pyast.parse(text).body:
        targets = []
        if isinstance(node, (pyast.FunctionDef, pyast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, pyast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, pyast.Name)]
        elif isinstance(node, (pyast.Import, pyast.ImportFrom)):
            targets = [(a.asname or a.name).split(".")[0] for a in node.names]
        for n in targets:
            defined[n] = defined.get(n, 0) + 1
    looked_up: set[str] = set()
    scopes = list(table.get_children())
    while scopes:
        scope = scopes.pop()
        scopes.extend(scope.get_children())
        looked_up.update(sym.get_name() for sym in scope.get_symbols() if sym.is_global())
    looked_up.update(sym.get_name() for sym in table.get_symbols() if sym.is_referenced())
    for name, definition in compiler.env.kernels.items():
        if defined.get(name, 0) > 1 or name in looked_up or name.startswith("__"):
            _clash(compiler, definition, "is a name the module itself needs")


def _clash(compiler, definition, why: str):
    raise CompileError(definition.name_span, f"kernel '{definition.name}' cannot be a "
                       f"function of a standalone Python module: '{definition.name}' {why}",
                       "rename the kernel", compiler.source)
