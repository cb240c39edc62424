"""emit (call wrapper): a plan -> the plain-Python fast path that calls a compiled entry point.

The checked path (nbx/runtime.py) handles every argument form and error. Most calls are simpler:
exact NumPy arrays of the bound dtypes and no `out=`. For those, the generated module carries a
function that checks just that with identity tests, allocates the outputs and calls the entry:

    def fast_fma(p_a, p_b, p_c):
        if type(p_a) is not _ndarray or p_a.dtype is not _float64 or p_a.ndim != 1:
            return None
        ...
        return o0

It returns None for anything else, and the runtime then takes the checked path, which gives
the documented result or error. It never raises for a bad argument of its own.
"""

from __future__ import annotations

from ..dsl import ir
from ..dsl.fuse import Plan
from .base import CodeBuilder

# Below this many loop iterations (the largest stage's), a serial entry point runs instead of
# the parallel one: starting the thread pool costs about 2 microseconds per parallel region.
SERIAL_BELOW = 32768

def needs_error_flag(plan: Plan) -> bool:
    """Whether the kernel can report a call-time error through its `_err` array."""
    for stage in plan.stages:
        for node in ir.topo_order(stage.roots):
            if isinstance(node, ir.Apply) and "_err" in node.op.info.cpu_template(
                    node.args[0].dtype.kind):
                return True
    return False


def emit_fast_call(b: CodeBuilder, plan: Plan, name: str, entry: str,
                   serial_entry: str | None, param_name, length_name) -> None:
    """Append the fast path `name(params...)` (fast_<kernel>) to the module being built."""
    k = plan.kernel
    dtypes = sorted({p.dtype.name for p in k.params} | {r.dtype.name for r in k.results})
    for dtype in dtypes:
        b.line(f"_{dtype} = np.dtype({dtype!r})")
    b.line("_ndarray = np.ndarray")
    error_flag = needs_error_flag(plan)
    if not error_flag:
        b.line("_no_error = np.zeros(1, np.int64)  # this kernel never sets it")
    b.line("")
    b.line("")
    params = [param_name(p.name) for p in k.params]
    with b.block(f"def {name}({', '.join(params)}):"):
        b.line('"""The common call, unchecked beyond identity tests; None: use the checked '
               'path."""')
        seen: set[str] = set()
        for p, arg in zip(k.params, params, strict=True):
            if p.axes is None:
                scalar_type = f"_{p.dtype.name}.type"
                alt = " and type(" + arg + ") is not float" if p.dtype.name == "float64" else ""
                with b.block(f"if type({arg}) is not {scalar_type}{alt}:"):
                    b.line("return None")
                continue
            with b.block(f"if type({arg}) is not _ndarray or {arg}.dtype is not "
                         f"_{p.dtype.name} or {arg}.ndim != {len(p.axes)}:"):
                b.line("return None")
            for axis, d in enumerate(p.axes):
                if d in seen:
                    with b.block(f"if {arg}.shape[{axis}] != {length_name(d)}:"):
                        b.line("return None")
                else:
                    b.line(f"{length_name(d)} = {arg}.shape[{axis}]")
                    seen.add(d)
        forbidden = sorted({d for r in plan.reductions if r.kind in ir.NO_EMPTY_VALUE
                            for d in r.over})
        if forbidden:
            cond = " or ".join(f"{length_name(d)} == 0" for d in forbidden)
            with b.block(f"if {cond}:"):
                b.line("return None  # the checked path raises the documented ValueError")
        outs = []
        for i, r in enumerate(k.results):
            shape = "(" + ", ".join(length_name(d) for d in r.axes) + ",)" if r.axes else "(1,)"
            b.line(f"o{i} = np.empty({shape}, _{r.dtype.name})")
            outs.append(f"o{i}" if r.axes else f"o{i}[0]")
        b.line("_err = np.zeros(1, np.int64)" if error_flag else "_err = _no_error")
        args = ", ".join(params + [f"o{i}" for i in range(len(k.results))] + ["_err"]
                         + [length_name(d) for d in k.dims])
        if serial_entry is not None and k.dims:
            size = " * ".join(length_name(d) for d in k.dims)
            with b.block(f"if {size} < {SERIAL_BELOW}:"):
                b.line(f"{serial_entry}({args})")
            with b.block("else:"):
                b.line(f"{entry}({args})")
        else:
            b.line(f"{entry}({args})")
        if error_flag:
            with b.block("if _err[0]:"):
                b.line("return None  # the checked path raises the documented ValueError")
        if k.tuple_result:
            b.line(f"return ({', '.join(outs)},)")
        else:
            b.line(f"return {outs[0]}")
