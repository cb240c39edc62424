"""Fusion: which passes a kernel compiles to (no Numba compilation needed)."""

from __future__ import annotations

import pytest

from nbx.dsl import check, ir
from nbx.dsl.compile import Compiler
from nbx.dsl.fuse import format_plan, fuse

SOURCE = """
kernel poly(a: f64[n], b: f64[n], c: f64[n]) -> f64[n]:
    return 2*a + 3*b*c - sin(a)

kernel dot(a: f64[n], b: f64[n]) -> f64:
    return sum(a*b)

kernel normalize(x: f64[n]) -> f64[n]:
    d = x - mean(x)
    return d / sqrt(mean(d * d))

kernel softmax(x: f64[m, k]) -> f64[m, k]:
    e = exp(x - max(x, over=k))
    return e / sum(e, over=k)

kernel stats(x: f64[n]) -> (f64, f64, f64, f64):
    return min(x), max(x), mean(x), std(x)

kernel matvec(A: f64[m, k], v: f64[k]) -> f64[m]:
    return sum(A * v, over=k)

kernel both(A: f64[m, k]) -> (f64[m], f64[k], f64):
    return sum(A, over=k), sum(A, over=m), sum(A)

kernel outer(x: f64[n], y: f64[m]) -> f64[n, m]:
    return x + y

kernel mixed(A: f64[m, k], v: f64[k]) -> (f64[m, k], f64[m]):
    return A * v, sum(A * v, over=k)
"""


@pytest.fixture(scope="module")
def plans():
    c = Compiler(SOURCE, filename="plan.nbx")
    out = {}
    for name, k in c.env.kernels.items():
        out[name] = fuse(c.check_kernel(k, check.default_binding(c.env, k)))
    return out


def test_elementwise_is_one_pass_with_no_reduction(plans):
    p = plans["poly"]
    assert len(p.stages) == 1
    assert p.stages[0].space == ("n",)
    assert p.stages[0].reductions == ()
    assert [i for i, _ in p.stages[0].stores] == [0]


def test_full_reduction_is_one_pass_and_writes_the_result_directly(plans):
    p = plans["dot"]
    assert len(p.stages) == 1
    assert len(p.reductions) == 1
    assert p.direct == {0: p.reductions[0]}
    # the product a*b is computed inside the reduction's loop, never stored
    assert isinstance(p.reductions[0].arg, ir.Apply)


def test_normalize_takes_three_passes(plans):
    p = plans["normalize"]
    assert [s.level for s in p.stages] == [0, 1, 2]
    assert [len(s.reductions) for s in p.stages] == [1, 1, 0]


def test_softmax_takes_three_passes_over_the_matrix(plans):
    p = plans["softmax"]
    assert [s.space for s in p.stages] == [("m", "k")] * 3
    kinds = [[r.kind for r in s.reductions] for s in p.stages]
    assert kinds == [[ir.RKind.MAX], [ir.RKind.SUM], []]


def test_sibling_reductions_share_a_pass(plans):
    p = plans["stats"]
    first = p.stages[0]
    assert {r.kind for r in first.reductions} == {ir.RKind.MIN, ir.RKind.MAX, ir.RKind.SUM}
    # std needs the mean first: exactly one more pass over x for the squared deviations
    assert [s.level for s in p.stages if s.space] == [0, 1]


def test_reductions_over_different_dims_of_one_input_share_a_pass(plans):
    p = plans["both"]
    assert len(p.stages) == 1
    assert len(p.stages[0].reductions) == 3
    assert set(p.direct) == {0, 1, 2}


def test_matvec_is_one_pass(plans):
    p = plans["matvec"]
    assert len(p.stages) == 1 and p.stages[0].space == ("m", "k")


def test_outer_sum_loops_over_both_names(plans):
    p = plans["outer"]
    assert p.stages[0].space == ("n", "m")


def test_elementwise_result_and_its_reduction_share_a_pass(plans):
    p = plans["mixed"]
    assert len(p.stages) == 1
    stage = p.stages[0]
    assert len(stage.reductions) == 1 and [i for i, _ in stage.stores] == [0]


def test_plan_text_names_stages_reads_and_writes(plans):
    text = format_plan(plans["normalize"])
    assert "stage 0" in text and "stage 2" in text
    assert "reads   x" in text
    assert "write   result 0 : f64[n]" in text


def test_loop_order_follows_the_arrays_not_the_parameter_order():
    src = """
kernel mv(v: f64[k], A: f64[m, k]) -> f64[m]:
    return sum(A * v, over=k)

kernel tr(A: f64[m, k]) -> f64[k, m]:
    return A * 2
"""
    c = Compiler(src, filename="order.nbx")
    plans = {name: fuse(c.check_kernel(k, check.default_binding(c.env, k)))
             for name, k in c.env.kernels.items()}
    # canonical order is (k, m), but A[m, k] is contiguous along k: k runs innermost, and the
    # reduction keeps the outer loop (no per-block partials)
    assert plans["mv"].stages[0].space == ("m", "k")
    # a stage that writes a result loops in the result's (C) order
    assert plans["tr"].stages[0].space == ("k", "m")
