"""The loop kernels against the einsum reference, over a flat table of cases."""

import numba
import numpy as np
import pytest
from problems import DTYPES, PATTERNS, SHAPES, activations_for, make_problem

import loopbp
from loopbp.agreement import TOLERANCE, gradient_difference, relative_difference
from loopbp.cpu import simd


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("name,sizes,m", SHAPES, ids=[s[0] for s in SHAPES])
def test_loops_agree_with_einsum(name, sizes, m, pattern, dtype):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), dtype)
    tol = TOLERANCE[np.dtype(dtype)]

    loops = loopbp.gradient(W, b, X, Y, acts, backend="loops")
    einsum = loopbp.gradient(W, b, X, Y, acts, backend="einsum")
    assert gradient_difference(loops, einsum) <= tol

    E, dW, db = loops
    assert isinstance(E, float) and np.isfinite(E)
    for grads, params in ((dW, W), (db, b)):
        assert [g.shape for g in grads] == [p.shape for p in params]
        assert all(g.dtype == np.dtype(dtype) for g in grads)

    A_loops = loopbp.forward(W, b, X, acts)
    A_einsum = loopbp.forward(W, b, X, acts, backend="einsum")
    assert A_loops.shape == (sizes[-1], m) and A_loops.dtype == np.dtype(dtype)
    assert relative_difference(A_loops, A_einsum) <= tol
    # error, forward and gradient tell one story: E from error() is E from gradient().
    assert loopbp.error(W, b, X, Y, acts) == E
    assert relative_difference(loopbp.error(W, b, X, Y, acts, backend="einsum"), E) <= tol


def test_the_comparison_can_fail():
    # The agreement measure must see a wrong gradient: scale one entry of dW by 1 + 1e-9.
    W, b, X, Y, acts = make_problem((3, 4, 2), 9, ["tanh", "identity"])
    E, dW, db = loopbp.gradient(W, b, X, Y, acts)
    wrong = [g.copy() for g in dW]
    wrong[0][1, 2] *= 1 + 1e-9
    assert gradient_difference((E, dW, db), (E, dW, db)) == 0
    assert gradient_difference((E, wrong, db), (E, dW, db)) > TOLERANCE[np.dtype(np.float64)]


@pytest.mark.parametrize("path", simd.PATHS + ("narrow",))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,sizes,m", SHAPES, ids=[s[0] for s in SHAPES])
def test_fast_kernels_agree_with_the_plain_loops(name, sizes, m, dtype, path):
    # The plain kernels are the seed's loop nests as written: the second reference for
    # the kernels that the loops backend runs, on every path whatever this CPU is (a
    # vector wider than the host's runs in pieces: slow, and just as exact).
    # The fast side runs through the entry point that the library calls (driver.run), so
    # that the host's kernel sets are the ones every other test uses, compiled once; the
    # plain side is the serial loops of the first calls (``serial_driver``), the same nests
    # in one thread (tests/test_threads.py holds the parallel nests to them bitwise).
    from loopbp import layout
    from loopbp.cpu import driver, layer_loop, serial_driver, workspace
    from loopbp.validation import activation_codes

    W, b, X, Y, acts = make_problem(sizes, m, activations_for("cycle", len(sizes) - 1), dtype)
    network, theta = layer_loop.network_arrays(sizes, activation_codes(acts)), layout.pack(W, b)
    # "narrow" is the kernels of loopbp.cpu.narrow_kernels, forced on every shape; the
    # paths are the packed and portable kernels, forced on narrow shapes too.
    if path == "narrow":
        work = workspace.Workspace(sizes, m, dtype, narrow=True)
    else:
        work = workspace.Workspace(sizes, m, dtype, tile=simd.tile(dtype, path), narrow=False)
    threads = numba.get_num_threads()

    grad_tiled = np.empty_like(theta)
    unused = driver.unused_training_arguments(np.dtype(dtype))
    rest = (work.buffers(), *work.kernels(), unused, threads)
    status, E_tiled, _ = driver.run(driver.GRADIENT, theta, network, X, Y, grad_tiled, *rest)
    assert status == layer_loop.FINITE
    # The forward pass alone (FORWARD) writes the same A^1..A^L as the gradient's.
    work.activations[:] = np.nan
    driver.run(
        driver.FORWARD, theta, network, X, Y, grad_tiled, work.buffers(), *work.kernels(), unused, threads
    )
    A_tiled = work.activations.copy()

    plain = workspace.Workspace(sizes, m, dtype, tile=None, narrow=False).buffers(serial=True)
    grad_plain = np.empty_like(theta)
    status, E_plain = serial_driver.checked_pass(driver.GRADIENT, theta, network, X, Y, grad_plain, plain)
    assert status == layer_loop.FINITE
    A_plain = plain[0]
    A_plain[:] = np.nan
    serial_driver.checked_pass(driver.FORWARD, theta, network, X, Y, grad_plain, plain)

    tol = TOLERANCE[np.dtype(dtype)]
    assert relative_difference(E_tiled, E_plain) <= tol
    dW_plain, db_plain = layout.unpack(grad_plain, sizes)
    dW_tiled, db_tiled = layout.unpack(grad_tiled, sizes)
    for k in range(len(W)):
        assert relative_difference(dW_tiled[k], dW_plain[k]) <= tol
        assert relative_difference(db_tiled[k], db_plain[k]) <= tol
    assert relative_difference(A_tiled, A_plain) <= tol


def test_relative_difference_edge_cases():
    from loopbp.agreement import relative_difference

    assert relative_difference(np.zeros(0), np.zeros(0)) == 0.0
    assert relative_difference(np.array([1e-3]), np.zeros(1)) == 1e-3  # b all zero: absolute
    assert relative_difference(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == 0.5 / 2.0
    with pytest.raises(ValueError, match="same shape"):
        relative_difference(np.zeros(2), np.zeros(3))


def test_functions_keep_only_small_workspaces():
    from loopbp.cpu import workspace

    rng = np.random.default_rng(0)
    for sizes, m, kept in [((3, 4, 2), 9, True), ((10, 1000), 1100, False)]:
        W = [rng.standard_normal((sizes[1], sizes[0]))] + [
            rng.standard_normal((o, i)) for i, o in zip(sizes[1:-1], sizes[2:])
        ]
        b = [np.zeros(n) for n in sizes[1:]]
        acts = ["tanh"] * (len(sizes) - 1)
        X, Y = rng.standard_normal((sizes[0], m)), rng.standard_normal((sizes[-1], m))
        first = loopbp.gradient(W, b, X, Y, acts)
        second = loopbp.gradient(W, b, X, Y, acts)
        assert first[0] == second[0] and all(np.array_equal(x, y) for x, y in zip(first[1], second[1]))
        key = (sizes, m, np.dtype(np.float64), True)
        assert (key in workspace.shared_workspaces.kept) == kept
