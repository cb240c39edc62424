"""Kernels called with Dask arrays (nbx/chunked) against the same kernels called with NumPy.

Every case compares a lazy call's computed results with the NumPy call on the same data:
element-wise kernels with broadcasting by name, full and partial reductions of every kind,
multi-stage kernels (normalize, softmax), uneven and empty blocks, mixed NumPy and Dask
arguments; on Dask's threaded scheduler and on a dask.distributed cluster of two worker
processes. The kernels are compiled once for the whole file.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import nbx
from nbx.backends import cuda_runtime

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

SOURCE = """
kernel expr(a: f64[n], b: f64[n], c: f64[n]) -> f64[n]:
    return 2*a + 3*b*c - sin(a)

kernel outer(x: f64[n], y: f32[m], s: f64) -> f64[m, n]:
    return x * y + s

kernel flip(x: T[m, n]) -> T[n, m]:
    return x * 2

kernel full(x: f64[m, n]) -> (f64, f64, f64, f64, bool, bool, f64, f64, f64):
    return sum(x), prod(x), min(x), max(x), any(x > 1.5), all(x > -3.0), mean(x), var(x), std(x)

kernel parts(x: T[m, n]) -> (i64[n], T[m], T[n], i64[m], i64[n], f64[m], f64, T[n, m]):
    total = i64(sum(x, over=m))
    low = min(x, over=n)
    first = argmin(x, over=m)
    varn = var(x, over=n)
    return total, max(x, over=n), min(x, over=m), argmax(x, over=n), first, varn, std(x), x - low

kernel wrap(x: i64[n]) -> (i64, i64):
    return sum(x), prod(x)

kernel positions(x: f64[n]) -> (f64[n], i64, f64, i64):
    return x * f64(index(n)) / n, argmax(x), sum(f64(index(n)) * x) / n, argmin(x)

kernel normalize(x: f64[n]) -> f64[n]:
    m = mean(x)
    d = x - m
    return d / sqrt(mean(d * d))

kernel softmax(x: f64[m, n]) -> f64[m, n]:
    e = exp(x - max(x, over=n))
    return e / sum(e, over=n)

kernel spread(x: f64[m, n]) -> f64[m, n]:
    return sum(x, over=n) + f64(index(n))

kernel scaled(x: f64[n], s: f64) -> f64[n]:
    return x * s

kernel moments(x: T[n]) -> (f64, f64):
    return mean(x), var(x)

kernel sumvar(x: f64[m, n]) -> (f64, f64):
    return sum(x), var(x)

kernel twice(x: f64[m, n]) -> (f64[m], f64[m]):
    s = sum(x, over=n)
    return s, s
"""


@pytest.fixture(scope="module")
def mod():
    # serial loops: Numba compiles them faster, and the steps on blocks are serial anyway
    return nbx.compile(SOURCE, filename="dask_test.nbx", parallel=False)


@pytest.fixture(autouse=True)
def threads():
    with dask.config.set(scheduler="threads"):
        yield


RNG = np.random.default_rng(20261124)


def lazy(x, chunks):
    return da.from_array(x, chunks=chunks)


def computed(results):
    if isinstance(results, tuple):
        return dask.compute(*results)
    return results.compute()


def same(got, want, rtol=1e-12):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, np.ndarray) == isinstance(w, np.ndarray), (i, type(g), type(w))
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, (i, g.dtype, g.shape, w.dtype, w.shape)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, equal_nan=True,
                                       err_msg=f"result {i}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"result {i}")


def test_elementwise_uneven_chunks(mod):
    a, b, c = (RNG.standard_normal(1000) for _ in range(3))
    got = mod.expr(lazy(a, 300), lazy(b, (1, 499, 500)), lazy(c, 1000))
    assert isinstance(got, da.Array) and got.chunks == ((1, 299, 200, 100, 300, 100),)
    same(got.compute(), mod.expr(a, b, c))


def test_broadcasting_by_name_and_mixed_arguments(mod):
    x = RNG.standard_normal(13)
    y = RNG.standard_normal(7).astype(np.float32)
    want = mod.outer(x, y, 0.5)
    same(mod.outer(lazy(x, 4), lazy(y, 3), 0.5).compute(), want)
    same(mod.outer(x, lazy(y, 2), np.float64(0.5)).compute(), want)   # NumPy x chunked too
    same(mod.outer(lazy(x, 5), y, s=0.5).compute(), want)
    same(mod.outer(lazy(x, 5), y, s=da.from_array(np.float64(0.5))).compute(), want)


def test_result_axes_in_declared_order(mod):
    x = RNG.integers(-100, 100, (6, 10)).astype(np.int16)
    got = mod.flip(lazy(x, (4, 3)))
    assert got.shape == (10, 6) and got.dtype == np.int16
    same(got.compute(), mod.flip(x))


@pytest.mark.parametrize("chunks", [(3, 4), (7, 10), (1, 10), ((2, 0, 5), (4, 0, 6))])
def test_full_reductions(mod, chunks):
    x = RNG.uniform(0.5, 1.6, (7, 10))   # prod stays finite
    got = mod.full(lazy(x, chunks))
    assert all(isinstance(g, da.Array) and g.shape == () for g in got)
    same(computed(got), mod.full(x))


@pytest.mark.parametrize("dtype", [np.int32])
def test_partial_reductions(mod, dtype):
    x = (RNG.standard_normal((9, 11)) * 50).astype(dtype)
    got = mod.parts(lazy(x, (4, 3)))
    assert got[1].chunks == ((4, 4, 1),) and got[2].chunks == ((3, 3, 3, 2),)   # kept chunked
    same(computed(got), mod.parts(x), rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_nan_and_ties_keep_numpy_semantics(mod):
    x = RNG.standard_normal((9, 11))
    x[2, 5] = x[6, 5] = np.nan         # argmin over m: the first NaN
    x[4, :] = 7.0                      # argmax over n: ties, the first wins
    x[:, 9] = -9.0
    same(computed(mod.parts(lazy(x, (2, 2)))), mod.parts(x))


def test_integer_sums_and_products_wrap(mod):
    x = RNG.integers(2**60, 2**62, 50, dtype=np.int64)
    same(computed(mod.wrap(lazy(x, 7))), mod.wrap(x))


def test_positions_are_global(mod):
    x = RNG.standard_normal(100)
    x[[17, 83]] = 5.0
    x[[20, 90]] = -5.0
    same(computed(mod.positions(lazy(x, (10, 30, 1, 59)))), mod.positions(x))


@pytest.mark.parametrize("kernel", ["normalize", "softmax"])
def test_multi_stage(mod, kernel):
    shape = (100,) if kernel == "normalize" else (12, 30)
    x = RNG.standard_normal(shape) * 3 + 10
    k = mod[kernel]
    same(k(lazy(x, 7)).compute(), k(x))


def test_reductions_within_one_block_are_not_combined(mod):
    """A reduction over dimensions that come in one block needs no combining: a softmax over
    rows in blocks of whole rows is one step, one task per block, as fused as a NumPy call."""
    x = RNG.standard_normal((12, 30))
    got = mod.softmax(lazy(x, (5, 30)))
    layers = {k: len(v) for k, v in got.__dask_graph__().layers.items() if k.startswith("nbx")}
    assert list(layers.values()) == [3]
    same(got.compute(), mod.softmax(x))
    assert "1 step" in mod.softmax.explain_chunks(whole=("n",))
    same(computed(mod.parts(lazy(x, (12, 7)))), mod.parts(x))   # over m whole, over n not


def test_a_result_dimension_no_array_has(mod):
    x = RNG.standard_normal((5, 8))
    same(mod.spread(lazy(x, (2, 3))).compute(), mod.spread(x))


def test_lazy_scalar_argument(mod):
    x = RNG.standard_normal(20)
    s = da.from_array(x, chunks=6).max()
    same(mod.scaled(lazy(x, 6), s).compute(), mod.scaled(x, x.max()))


def test_variance_combines_by_chan(mod):
    """Chan's combination of (count, mean, M2) is as accurate as the two-pass variance: data
    far from zero, where a sum of squares minus the squared sum loses every digit."""
    m = mod
    x = 1e9 + RNG.standard_normal(10_000)
    got_mean, got_var = computed(m.moments(lazy(x, 999)))
    assert abs(got_var - np.var(x)) <= 1e-12 * np.var(x)
    assert abs(got_mean - np.mean(x)) <= 1e-15 * np.mean(x)
    # f32 data: the blocks' moments in f64, so no worse than the NumPy call's f32 passes
    x32 = (1e4 + 3 * RNG.standard_normal((6, 9))).astype(np.float32)
    want = np.var(x32.astype(np.float64), axis=1)
    got = m.parts(lazy(x32, (2, 4)))[5].compute()
    assert np.max(np.abs(got - want) / want) <= 2 * np.max(np.abs(m.parts(x32)[5] - want) / want)


def test_empty_dimension(mod):
    e = np.empty(0, np.int64)
    same(computed(mod.wrap(lazy(e, 2))), mod.wrap(e))            # sum and prod of nothing
    x = np.empty((0, 4))
    with pytest.raises(ValueError, match=r"full\(\): min\(\) over dimension m of length 0"):
        mod.full(lazy(x, 2))                                     # raised at the call, as NumPy
    same(mod.normalize(lazy(e.astype(float), 3)).compute(), mod.normalize(e.astype(float)))


def test_arrays_with_no_elements_in_several_blocks(mod):
    """What compute_chunk_sizes() gives after a selection that keeps nothing."""
    e = da.zeros(0, chunks=((0, 0),))
    same(computed(mod.wrap(e.astype(np.int64))), mod.wrap(np.zeros(0, np.int64)))
    same(mod.expr(e, da.zeros(0, chunks=((0, 0, 0),)), np.zeros(0)).compute(),
         mod.expr(*[np.zeros(0)] * 3))
    x = np.zeros((4, 0))   # a sum computed with a variance: 0, not the count times no mean
    same(computed(mod.sumvar(lazy(x, (2, 1)))), mod.sumvar(x))


def test_a_reduction_returned_twice_gives_two_arrays(mod):
    a, b = computed(mod.twice(lazy(RNG.standard_normal((6, 5)), (3, 2))))
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)


def test_one_task_per_block_per_step(mod):
    """The graph: one layer of tasks per step of the plan (plus the reduction tree), not one
    per operation, and one task per block in each."""
    x = lazy(RNG.standard_normal(1000), 100)   # 10 blocks
    graph = mod.expr(x, x, x).__dask_graph__()
    assert len(graph.layers[next(k for k in graph.layers if k.startswith("nbx-expr"))]) == 10
    norm = mod.normalize(x)
    layers = {k: len(v) for k, v in norm.__dask_graph__().layers.items()}
    assert sum(n for k, n in layers.items() if k.startswith("nbx-normalize-step")) == 20
    (optimized,) = dask.optimize(norm)
    # 10 blocks read, 10 partials, a tree of 3 + 1 combine tasks, 10 blocks written
    assert len(optimized.__dask_graph__()) == 10 + 10 + 4 + 10


def test_argument_errors(mod):
    x = lazy(np.zeros(10, np.float32), 5)
    with pytest.raises(TypeError, match=r"expr\(\): a must be a float64 array with 1 "
                                        r"dimension \(n\), got float32 array of shape \(10,\)"):
        mod.expr(x, x, x)
    y = lazy(np.zeros(10), 5)
    with pytest.raises(ValueError, match=r"expr\(\): dimension n is 10 in a but 9 in b"):
        mod.expr(y, np.zeros(9), y)
    with pytest.raises(TypeError, match=r"out= cannot be used with Dask arrays"):
        mod.expr(y, y, y, out=np.zeros(10))
    with pytest.raises(TypeError, match=r"expr\(\): a must be .* got a masked array"):
        mod.expr(da.ma.masked_array(y), y, y)
    unknown = y[y > 0]
    with pytest.raises(ValueError, match=r"normalize\(\): x has chunks of unknown size"):
        mod.normalize(unknown)


def test_kernels_pickle_by_source(mod):
    again = pickle.loads(pickle.dumps(mod.normalize))
    assert again is not mod.normalize and again.signature == mod.normalize.signature
    x = RNG.standard_normal(10)
    same(again(x), mod.normalize(x))
    module = pickle.loads(pickle.dumps(mod))
    assert set(module.kernels) == set(mod.kernels)
    assert pickle.loads(pickle.dumps(mod.normalize)) is again   # rebuilt once per process


def test_auto_target_takes_dask_arrays():
    m = nbx.compile(SOURCE, filename="dask_test.nbx", target="auto", parallel=False)
    x = RNG.standard_normal(30)
    same(m.normalize(lazy(x, 7)).compute(), m.normalize(x))


def test_distributed_cluster_of_processes(mod):
    """Two worker processes: the kernels reach them pickled (by source) and are rebuilt
    there from the compile cache."""
    distributed = pytest.importorskip("distributed")
    x = RNG.standard_normal((40, 30))
    v = RNG.standard_normal(30)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        X = lazy(x, (15, 7))
        results = client.compute([mod.softmax(X), *mod.parts(X), mod.normalize(lazy(v, 8)),
                                  mod.outer(lazy(v, 8), lazy(x[:, 0].astype(np.float32), 9),
                                            2.0)])
        got = client.gather(results)
        pids = client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2
    same(tuple(got), (mod.softmax(x), *mod.parts(x), mod.normalize(v),
                      mod.outer(v, x[:, 0].astype(np.float32), 2.0)))


def test_cuda_target(mod):
    """target="cuda": the steps are CUDA kernels (under Numba's simulator without a GPU). On a
    GPU with CuPy (NBX_TEST_GPU=1) the blocks are CuPy arrays and stay on the device; the
    element-wise results are CuPy-backed Dask arrays."""
    m = nbx.compile(SOURCE, filename="dask_test.nbx", target="cuda")
    x = RNG.standard_normal((6, 8))
    v = RNG.standard_normal(20)
    X, V = lazy(x, (4, 3)), lazy(v, 6)
    cupy = None
    scheduler = "sync"   # the simulator cannot run launches from two threads at once
    if not cuda_runtime._simulated():
        cupy = pytest.importorskip("cupy")
        X, V = X.map_blocks(cupy.asarray), V.map_blocks(cupy.asarray)
        scheduler = "threads"
    with dask.config.set(scheduler=scheduler):
        got = computed((m.softmax(X), *m.positions(V), m.normalize(V)))
    if cupy is not None:
        assert isinstance(got[0], cupy.ndarray) and isinstance(got[-1], cupy.ndarray)
        got = tuple(cupy.asnumpy(g) if isinstance(g, cupy.ndarray) else g for g in got)
    same(got, (mod.softmax(x), *mod.positions(v), mod.normalize(v)))
