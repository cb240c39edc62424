"""check: AST -> typed IR (ir.py), one kernel and one type-variable binding at a time.

The checker decides every type: names are resolved, dtypes promoted as NumPy 2 (NEP 50, weak
literals), dimensions united by name, defs inlined, consts folded, mean/var/std lowered to sums,
and every implicit conversion made an explicit Cast. Every mistake is a CompileError at its span.
"""

from __future__ import annotations

import difflib
import math
import operator
from dataclasses import dataclass, field

import numpy as np

from . import ast, ir
from .ops import BUILTIN_CONSTANTS, FUNCTIONS, REDUCTIONS, Op, Reduction, Rule
from .source import CompileError, Source, Span, located
from .types import (
    BOOL,
    DTYPES,
    F64,
    I64,
    RESERVED_DTYPES,
    U64,
    VType,
    can_cast_same_kind,
    dtype_name,
    is_type_variable,
    promote,
    suggest_dtype,
    weak_default,
)

MAX_INLINE_DEPTH = 64


def _fits_float(v: int) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


@dataclass(frozen=True)
class Weak:
    """An untyped literal or const: a Python value that adapts to the operand it meets."""

    value: int | float | bool


Value = ir.Node | Weak


@dataclass
class ModuleEnv:
    """Module-wide names: consts (folded lazily), defs and kernels."""

    source: Source
    consts: dict[str, ast.ConstDef]
    defs: dict[str, ast.DefDef]
    kernels: dict[str, ast.KernelDef]
    const_values: dict[str, Value] = field(default_factory=dict)
    const_visiting: list[str] = field(default_factory=list)

    def error(self, span: Span, message: str, hint: str | None = None) -> CompileError:
        return CompileError(span, message, hint, self.source)


def collect(module: ast.Module, source: Source) -> ModuleEnv:
    """Check that module-level names are unique; index them by kind."""
    env = ModuleEnv(source, {}, {}, {})
    seen: dict[str, str] = {}
    for d in module.definitions:
        kind = {ast.ConstDef: "const", ast.DefDef: "def", ast.KernelDef: "kernel"}[type(d)]
        if d.name in seen:
            raise env.error(d.name_span, f"'{d.name}' is defined twice",
                            f"it is already a {seen[d.name]}; names are module-wide")
        seen[d.name] = kind
        {"const": env.consts, "def": env.defs, "kernel": env.kernels}[kind][d.name] = d
    for d in env.defs.values():
        check_def_names(env, d)
    return env


def module_clash(env: ModuleEnv, name: str, span: Span, what: str,
                 owner: str) -> CompileError | None:
    """`name`, at `span` `what` (e.g. "dimension") of `owner`, also names a const, def or
    kernel: an error pointing at whichever of the two comes second in the file."""
    for kind, table in (("const", env.consts), ("def", env.defs), ("kernel", env.kernels)):
        if name in table:
            other = table[name].name_span
            if (other.line, other.column) > (span.line, span.column):
                return env.error(other, f"{kind} '{name}' has the name of a {what} of "
                                 f"{owner} (line {span.line})", "rename one of them")
            return env.error(span, f"{what} '{name}' has the name of a {kind}",
                             "rename one of them")
    return None


def check_def_names(env: ModuleEnv, d: ast.DefDef) -> None:
    """A def's parameters and locals are new names, each bound once (checked even when the
    def is never called)."""
    names: set[str] = set()
    bound = [(n, s, "parameter") for n, s in zip(d.params, d.param_spans)]
    bound += [(n, s, "local") for a in d.body for n, s in zip(a.targets, a.target_spans)]
    for name, span, what in bound:
        if name in names:
            raise env.error(span, f"parameter '{name}' is declared twice" if what ==
                            "parameter" else f"'{name}' is assigned twice",
                            "each name is bound once; pick a new name")
        clash = module_clash(env, name, span, what, f"def '{d.name}'")
        if clash is not None:
            raise clash
        names.add(name)


def check_module(env: ModuleEnv, on_error=None) -> None:
    """Check everything that does not depend on a type-variable binding, now. With
    `on_error`, each const's, kernel's and def's first error goes there (once: a def's error
    is also a calling kernel's) and checking goes on."""
    items = [(const_value, name) for name in env.consts]
    items += [(check_generic, kernel) for kernel in env.kernels.values()]
    items += [(check_def, d) for d in env.defs.values()]
    reported: set[tuple] = set()
    for check, item in items:
        try:
            check(env, item)
        except CompileError as err:
            if on_error is None:
                raise
            key = (err.line, err.column, err.message)
            if key not in reported:
                reported.add(key)
                on_error(err)


def check_def(env: ModuleEnv, d: ast.DefDef) -> None:
    """Check a def on its own, so that a mistake in one that no kernel calls (yet) is still
    reported. Its parameters are taken as scalars of one dtype, each dtype in turn, and an
    error is reported only if every dtype gives that same error: unknown names, recursion,
    reductions and the like. Errors that depend on the dtypes are left to the calls, since a
    def may be meant for mixed types (`x if c else -x` wants a bool and a number)."""
    errors = []
    for dtype in DTYPES.values():
        try:
            _Checker(env, None, {}).def_body(
                d, [ir.Param(dtype, (), p, i, None) for i, p in enumerate(d.params)])
            return
        except CompileError as err:
            errors.append(err)
    if len({(e.line, e.column, e.message) for e in errors}) == 1:
        raise errors[0]


def check_generic(env: ModuleEnv, kernel: ast.KernelDef) -> None:
    """Check a kernel ahead of any call. A generic kernel is checked with every type variable
    f64; an error there is reported only if no other dtype (the same for all variables) checks
    either, since a kernel such as `x << 1` is meant for integer bindings."""
    binding = default_binding(env, kernel)
    try:
        check_kernel(env, kernel, binding)
    except CompileError as err:
        if not binding:
            raise
        for dtype in DTYPES.values():
            try:
                check_kernel(env, kernel, {tv: dtype for tv in binding})
                return
            except CompileError:
                continue
        raise err


def type_variables(kernel: ast.KernelDef) -> list[str]:
    out: list[str] = []
    for p in kernel.params:
        if is_type_variable(p.type.dtype) and p.type.dtype not in out:
            out.append(p.type.dtype)
    return out


def default_binding(env: ModuleEnv, kernel: ast.KernelDef) -> dict[str, np.dtype]:
    """The binding used to check a generic kernel ahead of any call: every variable f64."""
    return {tv: F64 for tv in type_variables(kernel)}


def const_value(env: ModuleEnv, name: str) -> Value:
    if name in env.const_values:
        return env.const_values[name]
    definition = env.consts[name]
    if name in env.const_visiting:
        cycle = " -> ".join(env.const_visiting[env.const_visiting.index(name):] + [name])
        raise env.error(definition.name_span, f"consts depend on each other in a cycle: {cycle}")
    env.const_visiting.append(name)
    try:
        checker = _Checker(env, kernel=None, binding={})
        with located(definition.span):
            value = checker.expr(definition.value)
        if isinstance(value, ir.Node) and not isinstance(value, ir.Const):
            raise env.error(definition.value.span, "a const must be a compile-time scalar")
    finally:
        env.const_visiting.pop()
    env.const_values[name] = value
    return value


def wrap_int(value: int, dtype: np.dtype) -> int:
    """A Python int converted to an integer dtype with wraparound, as NumPy's astype."""
    info = np.iinfo(dtype)
    span = info.max - info.min + 1
    return (value - info.min) % span + info.min


def _int_pow(base: int, exp: int) -> int:
    if abs(base) > 1 and exp >= 64:  # overflows i64 anyway; never compute a huge power
        return 2**64
    return base ** exp


# Weak integer ops whose NumPy (i64) result must equal the exact one (see fold_weak).
_EXACT_INT = {Op.ADD: operator.add, Op.SUB: operator.sub, Op.MUL: operator.mul,
              Op.NEG: operator.neg, Op.POS: operator.pos, Op.POW: _int_pow,
              Op.POWER: _int_pow}


def check_kernel(env: ModuleEnv, kernel: ast.KernelDef,
                 binding: dict[str, np.dtype]) -> ir.KernelIR:
    return _Checker(env, kernel, binding).kernel()


# --------------------------------------------------------------------------------------------

@dataclass
class _Scope:
    """Names visible in a kernel or def body: locals over params over module names."""

    values: dict[str, Value]
    in_def: str | None = None


class _Checker:
    def __init__(self, env: ModuleEnv, kernel: ast.KernelDef | None,
                 binding: dict[str, np.dtype]):
        self.env = env
        self.kernel_ast = kernel
        self.binding = binding
        self.dim_order: list[str] = []
        self.inline_stack: list[str] = []

    def error(self, span: Span, message: str, hint: str | None = None) -> CompileError:
        return self.env.error(span, message, hint)

    # kernel ---------------------------------------------------------------------------------
    def kernel(self) -> ir.KernelIR:
        k = self.kernel_ast
        assert k is not None
        owner = f"kernel '{k.name}'"
        params: list[ir.ParamInfo] = []
        scope = _Scope({})
        param_names: dict[str, Span] = {}
        for index, p in enumerate(k.params):
            if p.name in param_names:
                raise self.error(p.span, f"parameter '{p.name}' is declared twice")
            if p.name in self.dim_order:
                raise self.error(p.span, f"'{p.name}' is already a dimension name",
                                 "a dimension name cannot also name a parameter")
            clash = module_clash(self.env, p.name, p.span, "parameter", owner)
            if clash is not None:
                raise clash
            param_names[p.name] = p.span
            dtype = self.resolve_dtype(p.type, params_so_far=True)
            axes = None
            if p.type.dims is not None:
                axes = p.type.dims
                for i, (d, dspan) in enumerate(zip(axes, p.type.dim_spans)):
                    if d in axes[:i]:
                        raise self.error(dspan, f"dimension '{d}' appears twice in one type",
                                         "nbx 0.1 has no diagonals; use two names")
                    if d in param_names:
                        raise self.error(dspan, f"'{d}' is already a parameter name",
                                         "a dimension name cannot also name a parameter")
                    clash = module_clash(self.env, d, dspan, "dimension", owner)
                    if clash is not None:
                        raise clash
                    if d not in self.dim_order:
                        self.dim_order.append(d)
            params.append(ir.ParamInfo(p.name, p.type.dtype, dtype, axes))
            scope.values[p.name] = ir.Param(dtype, self.canon(axes or ()), p.name, index, axes)
        results: list[tuple[np.dtype, tuple[str, ...] | None, ast.TypeExpr]] = []
        for t in k.results:
            dtype = self.resolve_dtype(t, params_so_far=False)
            if t.dims is not None:
                for i, (d, dspan) in enumerate(zip(t.dims, t.dim_spans)):
                    if d in t.dims[:i]:
                        raise self.error(dspan, f"dimension '{d}' appears twice in one type",
                                         "nbx 0.1 has no diagonals; use two names")
                    if d not in self.dim_order:
                        raise self.error(dspan, f"dimension '{d}' is not bound by any parameter",
                                         "every dimension of a result must be a dimension of "
                                         "an array parameter")
            results.append((dtype, t.dims, t))
        for stmt in k.body:
            with located(stmt.span):
                self.assign(stmt, scope)
        if len(k.ret.values) != len(results):
            raise self.error(k.ret.span, f"kernel '{k.name}' returns {len(k.ret.values)} "
                             f"value{'s' if len(k.ret.values) != 1 else ''} but its type "
                             f"declares {len(results)}")
        out: list[ir.ResultInfo] = []
        for expr, (dtype, axes, texpr) in zip(k.ret.values, results):
            with located(expr.span):
                value = self.expr(expr, scope)
            out.append(ir.ResultInfo(dtype, axes, self.convert_result(value, dtype, axes,
                                                                      expr.span, texpr)))
        binding = tuple((tv, dtype_name(dt)) for tv, dt in self.binding.items())
        return ir.KernelIR(k.name, tuple(params), tuple(self.dim_order), tuple(out),
                           k.tuple_result, binding)

    def resolve_dtype(self, t: ast.TypeExpr, params_so_far: bool) -> np.dtype:
        name = t.dtype
        if name in DTYPES:
            return DTYPES[name]
        if name in RESERVED_DTYPES:
            raise self.error(t.dtype_span, f"dtype '{name}' is not supported yet",
                             "nbx 0.1 supports bool, i8-i64, u8-u64, f32 and f64")
        if is_type_variable(name):
            if name in self.binding:
                return self.binding[name]
            raise self.error(t.dtype_span, f"type variable '{name}' is not bound by any "
                             "parameter", "a result's type variable must appear in a "
                             "parameter's type")
        suggestion = suggest_dtype(name)
        raise self.error(t.dtype_span, f"unknown type '{name}'",
                         f"did you mean '{suggestion}'?" if suggestion else
                         "dtypes are bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64, or a type "
                         "variable such as T")

    def canon(self, dims) -> tuple[str, ...]:
        return tuple(sorted(set(dims), key=self.dim_order.index))

    def convert_result(self, value: Value, dtype: np.dtype, axes, span: Span,
                       texpr: ast.TypeExpr) -> ir.Node:
        declared = set(axes or ())
        if isinstance(value, Weak):
            return self.const_of(value, dtype, span)
        extra = [d for d in value.dims if d not in declared]
        if extra:
            d = extra[0]
            raise self.error(span, f"the returned value has dimension '{d}', which the result "
                             f"type {self.type_text(texpr)} lacks",
                             f"reduce it, e.g. sum(..., over={d})")
        if value.dtype != dtype:
            if not can_cast_same_kind(value.dtype, dtype):
                raise self.error(span, f"cannot return {dtype_name(value.dtype)} as "
                                 f"{dtype_name(dtype)} implicitly",
                                 f"cast explicitly: {dtype_name(dtype)}(...)")
            value = ir.Cast(dtype, value.dims, value)
        return value

    def const_of(self, value: Weak, dtype: np.dtype, span: Span) -> ir.Const:
        """A weak result as the declared dtype: it adapts within its kind (NEP 50), if in range."""
        kind_order = {"b": 0, "i": 1, "u": 1, "f": 2}
        if kind_order[weak_default(value.value).kind] > kind_order[dtype.kind]:
            raise self.error(span, f"cannot return {self.type_name(value)} as "
                             f"{dtype_name(dtype)} implicitly",
                             f"cast explicitly: {dtype_name(dtype)}(...)")
        v = value.value
        if dtype.kind in "iu" and not isinstance(v, bool):
            info = np.iinfo(dtype)
            if not info.min <= v <= info.max:
                raise self.error(span, f"{v} is out of range for {dtype_name(dtype)}",
                                 f"cast explicitly: {dtype_name(dtype)}(...) wraps around")
        return self.cast(value, dtype, span)

    @staticmethod
    def type_text(t: ast.TypeExpr) -> str:
        return t.dtype + (f"[{', '.join(t.dims)}]" if t.dims is not None else "")

    # statements -----------------------------------------------------------------------------
    def assign(self, stmt: ast.Assign, scope: _Scope) -> None:
        for i, (name, span) in enumerate(zip(stmt.targets, stmt.target_spans)):
            self.check_new_name(name, span, scope)
            if name in stmt.targets[:i]:
                raise self.error(span, f"'{name}' is assigned twice",
                                 "each name is assigned once; pick a new name")
        if len(stmt.targets) > 1:
            call = stmt.value
            if not (isinstance(call, ast.Call) and self.is_def_call(call, scope)):
                raise self.error(stmt.value.span, f"cannot unpack this into "
                                 f"{len(stmt.targets)} names",
                                 "only a call of a def that returns several values can be "
                                 "unpacked")
            values = self.inline_def(call, scope, expect=len(stmt.targets))
        else:
            values = (self.expr(stmt.value, scope),)
        for name, value in zip(stmt.targets, values):
            scope.values[name] = value

    def check_new_name(self, name: str, span: Span, scope: _Scope) -> None:
        if name in scope.values:
            raise self.error(span, f"'{name}' is assigned twice" if name not in
                             self.param_names() else f"'{name}' is a parameter",
                             "each name is assigned once; pick a new name")
        if name in self.dim_order:
            raise self.error(span, f"'{name}' is a dimension name",
                             "a dimension name cannot also name a local")
        clash = module_clash(self.env, name, span, "local", f"kernel '{self.kernel_ast.name}'")
        if clash is not None:
            raise clash

    def param_names(self) -> set[str]:
        return {p.name for p in self.kernel_ast.params} if self.kernel_ast else set()

    def is_def_call(self, call: ast.Call, scope: _Scope) -> bool:
        return call.func in self.env.defs and call.func not in scope.values

    # expressions ----------------------------------------------------------------------------
    def expr(self, e: ast.Expr, scope: _Scope | None = None) -> Value:
        scope = scope or _Scope({})
        if isinstance(e, ast.Num):
            return Weak(e.value)
        if isinstance(e, ast.Name):
            return self.name(e, scope)
        if isinstance(e, ast.Unary):
            return self.apply(e.op, [self.expr(e.operand, scope)], e.span, [e.operand.span])
        if isinstance(e, ast.Binary):
            args = [self.expr(e.left, scope), self.expr(e.right, scope)]
            return self.apply(e.op, args, e.span, [e.left.span, e.right.span])
        if isinstance(e, ast.IfExp):
            args = [self.expr(e.cond, scope), self.expr(e.then, scope),
                    self.expr(e.orelse, scope)]
            return self.apply(Op.WHERE, args, e.span,
                              [e.cond.span, e.then.span, e.orelse.span], spelling="'if ... else'")
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        if isinstance(e, ast.TupleExpr):
            raise self.error(e.span, "a tuple is not a value here",
                             "tuples appear only in over=(m, k)")
        raise self.error(e.span, "unsupported expression")  # pragma: no cover

    def known_names(self, scope: _Scope) -> list[str]:
        return (list(scope.values) + self.dim_order + list(self.env.consts)
                + list(self.env.defs) + list(BUILTIN_CONSTANTS) + list(FUNCTIONS)
                + list(REDUCTIONS) + list(DTYPES) + ["index"])

    def unknown(self, name: str, span: Span, scope: _Scope, what: str = "name") -> CompileError:
        known = [k for k in self.known_names(scope) if k != name]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or \
            [k for k in known if k.lower() == name.lower()]  # PI -> pi
        hint = f"did you mean '{close[0]}'?" if close else None
        return self.error(span, f"unknown {what} '{name}'", hint)

    def name(self, e: ast.Name, scope: _Scope) -> Value:
        n = e.id
        if n in scope.values:
            return scope.values[n]
        if n in self.dim_order:
            if scope.in_def:
                raise self.error(e.span, f"dimension '{n}' used inside def '{scope.in_def}'",
                                 "def bodies are element-wise; pass the length as an argument")
            return ir.DimLen(I64, (), n)
        if n in self.env.consts:
            return const_value(self.env, n)
        if n in self.env.defs or (n in self.env.kernels and n not in BUILTIN_CONSTANTS):
            kind = "def" if n in self.env.defs else "kernel"
            raise self.error(e.span, f"'{n}' is a {kind}, not a value",
                             f"call it: {n}(...)" if kind == "def" else None)
        if n in BUILTIN_CONSTANTS:
            return Weak(BUILTIN_CONSTANTS[n])
        if n in FUNCTIONS or n in REDUCTIONS or n in DTYPES or n == "index":
            raise self.error(e.span, f"'{n}' is a function, not a value", f"call it: {n}(...)")
        body = self.env.defs[scope.in_def].body if scope.in_def else \
            self.kernel_ast.body if self.kernel_ast else ()
        if any(n in stmt.targets for stmt in body):
            raise self.error(e.span, f"'{n}' is used before it is assigned",
                             "every name must be defined before use; reorder the statements")
        raise self.unknown(n, e.span, scope)

    # calls ----------------------------------------------------------------------------------
    def call(self, e: ast.Call, scope: _Scope) -> Value:
        f = e.func
        if f in scope.values:
            raise self.error(e.func_span, f"'{f}' is a value, not a function")
        if f in self.env.defs:
            values = self.inline_def(e, scope, expect=1)
            return values[0]
        # A kernel cannot be called, so its name does not hide a builtin function: a kernel
        # `clip` may well return clip(x, lo, hi).
        if f in self.env.kernels and not (f in FUNCTIONS or f in REDUCTIONS or f in DTYPES
                                          or f in RESERVED_DTYPES or f == "index"):
            raise self.error(e.func_span, f"kernel '{f}' cannot be called from a kernel or def",
                             "move the shared part into a def")
        if f in self.env.consts or f in self.dim_order or f in BUILTIN_CONSTANTS:
            raise self.error(e.func_span, f"'{f}' is a value, not a function")
        if f in REDUCTIONS:
            return self.reduction(e, REDUCTIONS[f], scope)
        if f in DTYPES or f in RESERVED_DTYPES:
            return self.cast_call(e, scope)
        if f == "index":
            return self.index_call(e, scope)
        if f in ("min", "max") or f in FUNCTIONS:
            op = FUNCTIONS[f]
            if e.keywords:
                raise self.error(e.keywords[0].span, f"{f}() takes no keyword arguments")
            if len(e.args) != op.info.arity:
                raise self.error(e.span, f"{f}() takes {op.info.arity} argument"
                                 f"{'s' if op.info.arity != 1 else ''}, got {len(e.args)}")
            args = [self.expr(a, scope) for a in e.args]
            return self.apply(op, args, e.span, [a.span for a in e.args])
        raise self.unknown(f, e.func_span, scope, "function")

    def cast_call(self, e: ast.Call, scope: _Scope) -> Value:
        f = e.func
        if f in RESERVED_DTYPES:
            raise self.error(e.func_span, f"dtype '{f}' is not supported yet")
        if len(e.args) != 1 or e.keywords:
            raise self.error(e.span, f"{f}() takes exactly 1 argument")
        value = self.expr(e.args[0], scope)
        return self.cast(value, DTYPES[f], e.span)

    def cast(self, value: Value, dtype: np.dtype, span: Span) -> ir.Node:
        if isinstance(value, Weak):
            with np.errstate(all="ignore"):
                v = value.value
                if isinstance(v, float) and dtype.kind in "iu" and not math.isfinite(v):
                    raise self.error(span, f"cannot cast {v} to {dtype_name(dtype)}")
                if isinstance(v, int) and not isinstance(v, bool) and dtype.kind in "iu":
                    if not -2**63 <= v < 2**64:
                        raise self.error(span, f"{v} is too large for any integer dtype")
                    return ir.Const(dtype, (), wrap_int(v, dtype))
                if isinstance(v, int) and not isinstance(v, bool) and not _fits_float(v):
                    digits = str(abs(v))   # as NumPy: an int too large to convert to float
                    raise self.error(span, f"literal out of range: an integer of {len(digits)} "
                                     f"digits ({digits[:12]}...) is too large for "
                                     f"{dtype_name(dtype)}",
                                     "write it as a float literal (1e400 reads as inf)")
                return ir.Const(dtype, (), np.array(v).astype(dtype).item())
        if value.dtype == dtype:
            return value
        if isinstance(value, ir.Const):
            with np.errstate(all="ignore"):
                return ir.Const(dtype, (), np.array(value.value, value.dtype).astype(dtype).item())
        return ir.Cast(dtype, value.dims, value)

    def index_call(self, e: ast.Call, scope: _Scope) -> Value:
        if scope.in_def:
            raise self.error(e.span, f"index() used inside def '{scope.in_def}'",
                             "def bodies are element-wise; pass index(d) as an argument")
        if len(e.args) != 1 or e.keywords or not isinstance(e.args[0], ast.Name):
            raise self.error(e.span, "index() takes one dimension name, as in index(n)")
        d = e.args[0].id
        if d not in self.dim_order:
            raise self.error(e.args[0].span, f"'{d}' is not a dimension",
                             "index(d) takes a dimension name of this kernel")
        return ir.Index(I64, (d,), d)

    def inline_def(self, e: ast.Call, scope: _Scope, expect: int) -> tuple[Value, ...]:
        d = self.env.defs[e.func]
        if e.func in self.inline_stack:
            raise self.error(e.func_span, f"def '{e.func}' calls itself",
                             "recursion is not supported; defs are inlined")
        if len(self.inline_stack) >= MAX_INLINE_DEPTH:
            raise self.error(e.func_span, "defs are nested too deeply")
        if e.keywords:
            raise self.error(e.keywords[0].span, f"def '{d.name}' takes no keyword arguments")
        if len(e.args) != len(d.params):
            raise self.error(e.span, f"def '{d.name}' takes {len(d.params)} argument"
                             f"{'s' if len(d.params) != 1 else ''}, got {len(e.args)}")
        if len(d.ret.values) != expect:
            if expect == 1:
                raise self.error(e.span, f"def '{d.name}' returns {len(d.ret.values)} values",
                                 f"unpack them: a, b = {d.name}(...)")
            raise self.error(e.span, f"def '{d.name}' returns {len(d.ret.values)} value"
                             f"{'s' if len(d.ret.values) != 1 else ''}, not {expect}")
        return self.def_body(d, [self.expr(a, scope) for a in e.args])

    def def_body(self, d: ast.DefDef, args: list[Value]) -> tuple[Value, ...]:
        """The values a def returns for these arguments (its own names were checked once, by
        collect: check_def_names)."""
        inner = _Scope(dict(zip(d.params, args)), in_def=d.name)
        saved_dims = self.dim_order
        self.inline_stack.append(d.name)
        try:
            for stmt in d.body:
                self.assign_in_def(stmt, inner)
            return tuple(self.expr(v, inner) for v in d.ret.values)
        finally:
            self.inline_stack.pop()
            self.dim_order = saved_dims

    def assign_in_def(self, stmt: ast.Assign, scope: _Scope) -> None:
        if len(stmt.targets) > 1:
            call = stmt.value
            if not (isinstance(call, ast.Call) and self.is_def_call(call, scope)):
                raise self.error(stmt.value.span, f"cannot unpack this into "
                                 f"{len(stmt.targets)} names")
            values = self.inline_def(call, scope, expect=len(stmt.targets))
        else:
            values = (self.expr(stmt.value, scope),)
        scope.values.update(zip(stmt.targets, values))

    # reductions -----------------------------------------------------------------------------
    def reduction(self, e: ast.Call, red: Reduction, scope: _Scope) -> Value:
        f = e.func
        if scope.in_def:
            raise self.error(e.func_span, f"reduction {f}() inside def '{scope.in_def}'",
                             "def bodies are element-wise; reduce in the kernel")
        if self.kernel_ast is None:
            raise self.error(e.func_span, f"reduction {f}() in a const",
                             "a const is a scalar of element-wise operations; reduce in a kernel")
        if len(e.args) != 1:
            hint = None
            if f in ("min", "max") and len(e.args) == 2:
                hint = f"for the element-wise {f} of two values use {f}imum(a, b)"
            raise self.error(e.span, f"{f}() reduces one expression, got {len(e.args)} "
                             "arguments", hint)
        over_kw = None
        for kw in e.keywords:
            if kw.name != "over" or over_kw is not None:
                raise self.error(kw.span, f"{f}() takes only the keyword 'over'",
                                 "write over=d or over=(d1, d2)")
            over_kw = kw
        value = self.expr(e.args[0], scope)
        node = self.cast(value, weak_default(value.value), e.span) \
            if isinstance(value, Weak) else value
        if over_kw is None:
            over = node.dims
        else:
            items = over_kw.value.items if isinstance(over_kw.value, ast.TupleExpr) \
                else (over_kw.value,)
            names: list[str] = []
            for item in items:
                if not isinstance(item, ast.Name):
                    raise self.error(item.span, "over= takes dimension names",
                                     "write over=k or over=(m, k)")
                if item.id not in self.dim_order:
                    close = difflib.get_close_matches(item.id, self.dim_order, n=1)
                    raise self.error(item.span, f"'{item.id}' is not a dimension",
                                     f"did you mean '{close[0]}'?" if close else None)
                if item.id not in node.dims:
                    have = ", ".join(node.dims) or "none"
                    raise self.error(item.span, f"the reduced expression has no dimension "
                                     f"'{item.id}' (its dimensions: {have})")
                if item.id in names:
                    raise self.error(item.span, f"dimension '{item.id}' is named twice")
                names.append(item.id)
            over = self.canon(names)
        return self.lower_reduction(red, node, over, e)

    def lower_reduction(self, red: Reduction, x: ir.Node, over: tuple[str, ...],
                        e: ast.Call) -> ir.Node:
        kept = tuple(d for d in x.dims if d not in over)
        span = e.span
        if red in (Reduction.SUM, Reduction.PROD):
            acc = x.dtype if x.dtype.kind == "f" else (U64 if x.dtype.kind == "u" else I64)
            kind = ir.RKind.SUM if red == Reduction.SUM else ir.RKind.PROD
            return self.reduce(kind, self.cast(x, acc, span), over, kept, acc, span)
        if red in (Reduction.MIN, Reduction.MAX):
            kind = ir.RKind.MIN if red == Reduction.MIN else ir.RKind.MAX
            return self.reduce(kind, x, over, kept, x.dtype, span)
        if red in (Reduction.ANY, Reduction.ALL):
            kind = ir.RKind.ANY if red == Reduction.ANY else ir.RKind.ALL
            return self.reduce(kind, self.cast(x, BOOL, span), over, kept, BOOL, span)
        if red in (Reduction.ARGMIN, Reduction.ARGMAX):
            if len(over) != 1:
                raise self.error(span, f"{red.value}() reduces exactly one dimension, "
                                 f"here {len(over)} ({', '.join(over) or 'none'})",
                                 "name it: over=d")
            kind = ir.RKind.ARGMIN if red == Reduction.ARGMIN else ir.RKind.ARGMAX
            return ir.Reduce(I64, kept, kind, x, over, span)
        # mean, var and std: as NumPy, in f64 for integers and bools, else in the float dtype.
        xf = x if x.dtype.kind == "f" else self.cast(x, F64, span)
        mean = self.mean(xf, over, kept, span)
        if red == Reduction.MEAN:
            return mean
        dev = self.apply(Op.SUB, [xf, mean], span)
        var = self.mean(self.apply(Op.MUL, [dev, dev], span), over, kept, span)
        if red == Reduction.VAR:
            return var
        return self.apply(Op.SQRT, [var], span)

    def mean(self, x: ir.Node, over, kept, span: Span) -> ir.Node:
        if not over:  # the mean of a scalar is itself (so its var is 0, as NumPy)
            return x
        total = self.reduce(ir.RKind.SUM, x, over, kept, x.dtype, span)
        count: Value = ir.DimLen(I64, (), over[0])
        for d in over[1:]:
            count = self.apply(Op.MUL, [count, ir.DimLen(I64, (), d)], span)
        return self.apply(Op.TRUEDIV, [total, self.cast(count, x.dtype, span)], span)

    def reduce(self, kind: ir.RKind, x: ir.Node, over, kept, dtype, span: Span) -> ir.Node:
        if not over:  # reducing no dimension is the value itself (already cast)
            return x
        return ir.Reduce(dtype, kept, kind, x, tuple(over), span)

    # element-wise ops -----------------------------------------------------------------------
    def apply(self, op: Op, args: list[Value], span: Span,
              arg_spans: list[Span] | None = None, spelling: str | None = None) -> Value:
        """Type one element-wise op (op table rules), folding it when all operands are known."""
        arg_spans = arg_spans or [span] * len(args)
        info = op.info
        rule = info.rule
        opname = info.name if info.name.isidentifier() else f"'{info.name.rstrip('x')}'"
        kinds = ["b" if self.dtype_of(a) == BOOL else self.dtype_of(a).kind for a in args]

        def bad(i: int, message: str, hint: str | None = None) -> CompileError:
            return self.error(arg_spans[i], message, hint)

        if rule == Rule.LOGIC:
            for i, k in enumerate(kinds):
                if k != "b":
                    raise bad(i, f"{opname} takes bool operands, got "
                              f"{self.type_name(args[i])}", "compare explicitly: x != 0")
            operand = BOOL
            result = BOOL
        elif rule == Rule.WHERE:
            if kinds[0] != "b":
                what = spelling or "where()"
                raise bad(0, f"the condition of {what} must be bool, got "
                          f"{self.type_name(args[0])}", "compare explicitly: x != 0")
            operand = self.common(args[1:], span, arg_spans[1:])
            result = operand
        else:
            if rule in (Rule.ARITH,) and all(k == "b" for k in kinds) and len(args) == 2:
                raise self.error(span, f"arithmetic {opname} on two bools",
                                 "use 'or', '|', or cast: i64(a) + i64(b)")
            if rule in (Rule.NEG, Rule.POS) and kinds[0] == "b":
                raise bad(0, f"unary {opname} of a bool", "use 'not' for bools")
            if rule in (Rule.BITWISE, Rule.INVERT, Rule.SHIFT):
                for i, k in enumerate(kinds):
                    if k == "f":
                        raise bad(i, f"{opname} takes integers or bools, got "
                                  f"{self.type_name(args[i])}")
            if op == Op.SIGN and kinds[0] == "b":
                raise bad(0, "sign() of a bool")
            if rule == Rule.COMPARE:
                exact = self.compare_u64_signed(op, args, span)
                if exact is not None:
                    return exact
                operand = self.common_compare(args, span)
            else:
                operand = self.common(args, span, arg_spans)
            result = operand
            if rule == Rule.SHIFT and operand == BOOL:  # as NumPy: shifts have no bool loop
                operand = result = DTYPES["i8"]
            if rule in (Rule.TRUEDIV, Rule.FLOAT_FN, Rule.FLOAT_FN2) and operand.kind != "f":
                operand = result = F64
            if rule in (Rule.COMPARE, Rule.PREDICATE):
                result = BOOL
        if rule == Rule.ROUND_FN and operand.kind != "f":
            return args[0]  # floor/ceil/trunc/rint of an integer is the integer itself
        if all(isinstance(a, Weak) for a in args):
            return self.fold_weak(op, args, operand, result, span)
        nodes = [self.cast(a, operand if not (rule == Rule.WHERE and i == 0) else BOOL, span)
                 for i, a in enumerate(args)]
        dims = self.canon(d for n in nodes for d in n.dims)
        node = ir.Apply(result, dims, op, tuple(nodes))
        if all(isinstance(n, ir.Const) for n in nodes):
            return self.fold_const(node, span)
        return node

    _FLIPPED = {Op.LT: Op.GT, Op.LE: Op.GE, Op.GT: Op.LT, Op.GE: Op.LE, Op.EQ: Op.EQ,
                Op.NE: Op.NE}

    def compare_u64_signed(self, op: Op, args: list[Value], span: Span) -> Value | None:
        """u64 against a signed integer, exactly, as NumPy 2 compares them (promoting both to
        f64 would round): a negative signed value is below every u64; otherwise compare as u64.
        None where the ordinary promotion is exact."""
        if any(isinstance(a, Weak) for a in args):
            return None
        a, b = args
        if a.dtype.kind == "i" and b.dtype == U64:
            a, b, op = b, a, self._FLIPPED[op]
        if not (a.dtype == U64 and b.dtype.kind == "i"):
            return None
        negative = self.apply(Op.LT, [b, Weak(0)], span)
        unsigned = self.apply(op, [a, ir.Cast(U64, b.dims, b)], span)
        if op in (Op.GT, Op.GE, Op.NE):   # a > (negative b) always holds
            return self.apply(Op.OR, [negative, unsigned], span)
        return self.apply(Op.AND, [self.apply(Op.NOT, [negative], span), unsigned], span)

    def dtype_of(self, v: Value) -> np.dtype:
        return weak_default(v.value) if isinstance(v, Weak) else v.dtype

    def type_name(self, v: Value) -> str:
        if isinstance(v, Weak):
            return {"b": "bool", "i": "an integer", "f": "a float"}[weak_default(v.value).kind]
        return dtype_name(v.dtype) + (" array" if v.dims else "")

    def vtype(self, v: Value) -> VType:
        if isinstance(v, Weak):
            return VType(weak_default(v.value), (), True)
        return VType(v.dtype, v.dims, False)

    def common(self, args: list[Value], span: Span, arg_spans) -> np.dtype:
        """The dtype all operands are cast to: NumPy 2 promotion, weak operands adapting to
        the strong ones' common type (clip(bool, 9, u16) is u16, as np.clip's)."""
        args = [a for a in args if not isinstance(a, Weak)] + \
            [a for a in args if isinstance(a, Weak)]
        cur = self.vtype(args[0])
        cur_value = args[0].value if isinstance(args[0], Weak) else None
        for b in args[1:]:
            b_value = b.value if isinstance(b, Weak) else None
            try:
                dtype = promote(cur, self.vtype(b), cur_value, b_value)
            except OverflowError as err:
                raise self.error(span, f"literal out of range: {err}",
                                 "cast the other operand to a wider type first") from None
            weak = cur.weak and isinstance(b, Weak)
            cur = VType(dtype, (), weak)
            cur_value = {"b": False, "i": 0, "u": 0, "f": 0.0}[dtype.kind] if weak else None
        return cur.dtype

    def common_compare(self, args: list[Value], span: Span) -> np.dtype:
        """Comparisons accept an out-of-range weak integer (NumPy 2 compares exactly)."""
        a, b = args
        try:
            return self.common(args, span, [span, span])
        except CompileError:
            wide = [np.min_scalar_type(x.value) if isinstance(x, Weak) else x.dtype
                    for x in (a, b)]
            return np.result_type(*wide)

    def fold_weak(self, op: Op, args: list[Weak], operand, result, span: Span) -> Weak:
        """An op on weak operands only stays weak: computed as NumPy on the default dtypes."""
        values = []
        for a in args:
            v = a.value
            if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
                raise self.error(span, f"integer {v} does not fit in i64")
            values.append(np.array(v, dtype=operand if op != Op.WHERE or values else BOOL))
        out = self.evaluate(op, values, span)
        value = np.asarray(out).astype(result).item()
        if result.kind == "i" and op in _EXACT_INT:
            # A literal expression is exact in Python; wrapping it silently would surprise.
            exact = _EXACT_INT[op](*(int(a.value) for a in args))
            if exact != value:
                raise self.error(span, "integer constant overflows i64",
                                 "write it as a float (1e20), or cast an operand: i64(2) ** 70 "
                                 "wraps around")
        return Weak(value)

    def fold_const(self, node: ir.Apply, span: Span) -> ir.Const:
        values = [np.array(a.value, dtype=a.dtype) for a in node.args]
        out = self.evaluate(node.op, values, span)
        return ir.Const(node.dtype, (), np.asarray(out).astype(node.dtype).item())

    def evaluate(self, op: Op, values, span: Span):
        try:
            with np.errstate(all="ignore"):
                return op.info.numpy(*values)
        except (ValueError, ArithmeticError, TypeError) as err:
            raise self.error(span, f"cannot compute this constant: {err}") from None
