"""The loops backend's engine: the theta layout, the steps of the driver, per-kernel times."""

import numpy as np
import pytest
from problems import make_problem, needs_jit

import loopbp
from loopbp import layout
from loopbp.cpu import engine, layer_loop, profiler, workspace


def test_layout_is_the_one_network_and_functions_use():
    sizes = (3, 4, 2)
    net = loopbp.Network(sizes, ["tanh", "identity"], seed=0)
    assert layout.parameter_count(sizes) == net.n_parameters == 4 * 3 + 4 + 2 * 4 + 2
    # pack is W^1, b^1, W^2, b^2 row-major; unpack gives views of the same places.
    np.testing.assert_array_equal(layout.pack(net.W, net.b), net.theta)
    W, b = layout.unpack(net.theta, sizes)
    assert all(np.shares_memory(w, net.theta) for w in W + b)
    for l in (1, 2):
        assert np.array_equal(layout.weights(net.theta, sizes, l), net.W[l - 1])
        assert np.array_equal(layout.biases(net.theta, sizes, l), net.b[l - 1])
    assert [w.shape for w in W] == [(4, 3), (2, 4)] and [v.shape for v in b] == [(4,), (2,)]


def _stopped(sizes, m, stop):
    # gradient_pass on the packed/portable kernels, stopped after step `stop` (-1: all),
    # from a grad and activations filled with a sentinel.
    W, b, X, Y, acts = make_problem(sizes, m, ["tanh"] * (len(sizes) - 2) + ["sigmoid"])
    eng = engine.Engine(tuple(sizes), tuple(acts), np.dtype(np.float64), workspace.WorkspacePool(1))
    work = workspace.Workspace(sizes, m, np.float64, narrow=False)
    work.activations[:] = 7.0
    grad = np.full(eng.n_parameters, 7.0)
    E = layer_loop.gradient_pass(
        layout.pack(W, b), eng.network, X, Y, grad, work.buffers(), *work.kernels(), 1, stop
    )
    return E, grad, work.activations.copy()


def test_the_driver_stops_after_each_named_step():
    sizes, m = (5, 6, 4, 3), 11
    steps = layer_loop.gradient_steps(sizes)
    L = len(sizes) - 1
    assert len(steps) == 3 * L + 1
    assert [name for name, _ in steps][L : L + 2] == ["dE/dA^L, E", "dE/dZ^L = dE/dA^L g'"]
    E, grad, A = _stopped(sizes, m, -1)
    # Stopped after the last step: the whole gradient, bitwise.
    E_last, grad_last, A_last = _stopped(sizes, m, len(steps) - 1)
    assert E_last == E and np.array_equal(grad_last, grad) and np.array_equal(A_last, A)
    # After forward l=1: A^1 is written and nothing after it; no E yet.
    E_0, grad_0, A_0 = _stopped(sizes, m, 0)
    n1 = sizes[1] * m
    assert E_0 == 0.0 and np.all(grad_0 == 7.0)
    assert np.array_equal(A_0[:n1], A[:n1]) and np.all(A_0[n1:] == 7.0)
    # After dE/dA^L: E is known, the gradient still untouched.
    E_L, grad_L, A_L = _stopped(sizes, m, L)
    assert E_L == E and np.all(grad_L == 7.0) and np.array_equal(A_L, A)
    # After dE/dW^L: exactly W^L's and b^L's part of the gradient is written.
    _, grad_W, _ = _stopped(sizes, m, L + 2)
    start = layout.weight_offset(sizes, L)
    assert np.array_equal(grad_W[start:], grad[start:]) and np.all(grad_W[:start] == 7.0)


@pytest.mark.parametrize("narrow", [False, True])
def test_kernel_times_name_every_step(narrow):
    net, X, Y = _network()
    rows = profiler.kernel_times(net.engine, net.theta, X, Y, repeat=2, narrow=narrow)
    if narrow:
        assert [name for name, _, _ in rows] == ["narrow kernels, the whole gradient"]
    else:
        assert [name for name, _, _ in rows] == [name for name, _ in layer_loop.gradient_steps(net.sizes)]
        gflop = [g for _, _, g in rows if g is not None]
        assert len(gflop) == 3 * (len(net.sizes) - 1) - 1
    assert all(np.isfinite(seconds) for _, seconds, _ in rows)


def _network():
    from loopbp.problems import seeded_problem

    return seeded_problem((13, 37, 29, 7), 300)


def test_ready_engine_is_shared_and_refuses_what_needs_checks():
    W, b, X, Y, acts = make_problem((3, 4, 2), 5, ["tanh", "identity"])
    first = engine.ready_engine(W, b, acts)
    assert first is engine.ready_engine(tuple(W), tuple(b), tuple(acts))
    assert first.ready_samples(X, Y) == 5
    assert first.ready_samples(np.asfortranarray(X), Y) == 0
    assert first.ready_samples(X.astype(np.float32), Y) == 0
    for bad in (
        ([w.astype(np.float32) for w in W], b, acts),
        (W, b, ["tanh", "softmax"]),
        (W, b, "tanh"),
        (W[:1], b, acts),
        (W, b, [["tanh"], "identity"]),
    ):
        assert engine.ready_engine(*bad) is None


def test_a_bounded_cache_keeps_the_newest_values():
    from loopbp.bounded_cache import BoundedCache

    cache = BoundedCache(2)
    made = []
    for key in ("a", "b", "a", "c"):
        cache.get_or_make(key, lambda key=key: made.append(key) or key.upper())
    # "a" was made once, then kept; "c" dropped the oldest, "a".
    assert made == ["a", "b", "c"] and list(cache.kept) == ["b", "c"]
    cache.put("b", "B2")  # putting again makes it the newest
    assert list(cache.kept) == ["c", "b"] and cache.pop("c") == "C" and cache.get("c") is None
    with pytest.raises(ValueError, match="size must be at least 1"):
        BoundedCache(0)


@needs_jit
def test_a_tile_is_typed_without_a_call_back_into_python():
    # Every call into the packed kernels passes a Tile. Numba's dispatcher reads its type
    # from the `_numba_type_` attribute, in C; a type registered with typeof_impl instead
    # costs a call back into the interpreter (dispatcher.typeof_pyval) on every call.
    from numba import njit, typeof

    from loopbp.cpu import simd

    tile = simd.tile(np.float64, "avx2")
    assert typeof(tile) is tile._numba_type_
    assert typeof(tile) == typeof(simd.tile(np.float64, "avx2")) != typeof(simd.tile(np.float32, "avx2"))

    @njit
    def rows(tile):
        return simd.tile_shape(tile)[0]

    assert rows(tile) == tile.shape[0]
    typed = []
    typeof_pyval = rows.typeof_pyval
    rows.typeof_pyval = lambda value: typed.append(value) or typeof_pyval(value)
    assert rows(tile) == tile.shape[0]
    assert typed == []


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transposed", [False, True], ids=["rows", "transposed"])
@pytest.mark.parametrize("kn, n, w", [(5, 3, 8), (30, 100, 16), (512, 70, 32), (257, 33, 16)])
def test_pack_panels_lays_v_out_in_panels_of_w_columns(dtype, transposed, kn, n, w):
    # packed[(u kn + k) w + s] = V[k, u w + s], zeros past column n: the same from a C view
    # and from a transposed one (dE/dW^l's Q), whose large panels are filled a block of k
    # at a time (TRANSPOSE_BYTES; 512 x 32 float32 and 257 x 16 float64 are above it).
    from loopbp.cpu import packed_kernels

    rng = np.random.default_rng(kn + n)
    V = (
        rng.standard_normal((n, kn)).astype(dtype).T
        if transposed
        else rng.standard_normal((kn, n)).astype(dtype)
    )
    before = V.copy()
    panels = -(-n // w)
    packed = np.full(panels * kn * w + 3, np.nan, dtype)
    packed_kernels.pack_panels(V, w, packed)
    padded = np.zeros((kn, panels * w), dtype)
    padded[:, :n] = V
    expected = padded.reshape(kn, panels, w).transpose(1, 0, 2).ravel()
    np.testing.assert_array_equal(packed[: expected.size], expected)
    assert np.isnan(packed[expected.size :]).all()  # nothing written past the panels
    np.testing.assert_array_equal(V, before)


@needs_jit
def test_q_read_in_place_gives_the_bits_of_q_packed(dtype=np.float32):
    # A Q with contiguous rows, used by at most Q_IN_PLACE_PANELS panels of rows of C (a
    # narrow layer's A^(l-1)), is read where it lies, but for its edge panel; the same Q
    # behind a view whose rows are not contiguous is packed. The sums are the same, step
    # for step: bitwise equal, for 1 thread and for all, and agree with P Q (TOLERANCE).
    # (One dtype: the code is the same for both, and each compile of it takes seconds.)
    import numba

    from loopbp.agreement import TOLERANCE, relative_difference
    from loopbp.cpu import packed_kernels, simd

    tile = simd.tile(dtype)
    if tile is None:
        pytest.skip("the portable path has no packed kernels")
    mr, nr = tile.shape
    n_p = mr + 3  # two panels of rows, the second at the edge
    K = packed_kernels.KC_BYTES // np.dtype(dtype).itemsize + 37  # two chunks of k
    n_q = 5 * nr + 7  # whole panels and one at the edge
    assert (n_p + mr - 1) // mr <= packed_kernels.Q_IN_PLACE_PANELS
    rng = np.random.default_rng(3)
    P = rng.standard_normal((n_p, K)).astype(dtype)
    Q = rng.standard_normal((K, n_q)).astype(dtype)
    spread = np.zeros((K, 2 * n_q), dtype)
    spread[:, ::2] = Q
    Q_strided = spread[:, ::2]
    threads = numba.config.NUMBA_NUM_THREADS
    panels = np.empty((n_p + mr - 1) // mr * mr * K, dtype)
    packed_kernels.pack_rows(tile, P, panels, panels[:0])
    scratch = np.empty(packed_kernels.scratch_length(tile, threads, [(K, n_q)]), dtype)
    steps = (np.int64(0), np.int64(0), np.int64(0))
    empty = np.empty(0, dtype)
    results = []
    for source in (Q, Q_strided):
        for t in (1, threads):
            C = np.empty((n_p, n_q), dtype)
            packed_kernels._contraction(
                tile, panels, n_p, steps, source[:, :], C, packed_kernels.NO_EPILOGUE, empty,
                packed_kernels.NO_EPILOGUE, C, scratch, t,
            )  # fmt: skip
            results.append(C)
    assert packed_kernels.read_q_in_place(tile, n_p, Q[:, :])
    assert not packed_kernels.read_q_in_place(tile, n_p, Q_strided[:, :])
    for C in results[1:]:
        assert C.tobytes() == results[0].tobytes()
    exact = P.astype(np.float64) @ Q.astype(np.float64)
    assert relative_difference(results[0], exact) <= TOLERANCE[np.dtype(dtype)]
