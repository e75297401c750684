"""Determinism: 1 thread and N threads, and run after run, give bitwise equal results."""

import numba
import numpy as np
import pytest
from problems import activations_for, make_problem

import loopbp

N_THREADS = numba.config.NUMBA_NUM_THREADS

CASES = [
    ((64, 128, 128, 10), 300, "series"),
    ((13, 37, 29, 7), 999, "cycle"),
    ((5, 3, 7, 2, 9, 4, 3), 17, "relu"),
]


def _run(W, b, X, Y, acts, threads):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        E, dW, db = loopbp.gradient(W, b, X, Y, acts)
        A = loopbp.forward(W, b, X, acts)
    finally:
        numba.set_num_threads(previous)
    return E, dW, db, A


def _assert_bitwise_equal(first, second):
    E1, dW1, db1, A1 = first
    E2, dW2, db2, A2 = second
    assert E1 == E2
    for x, y in zip(dW1 + db1 + [A1], dW2 + db2 + [A2]):
        assert x.tobytes() == y.tobytes()


@pytest.mark.skipif(N_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes,m,pattern", CASES)
def test_one_thread_equals_n_threads(sizes, m, pattern, dtype):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), dtype)
    _assert_bitwise_equal(_run(W, b, X, Y, acts, 1), _run(W, b, X, Y, acts, N_THREADS))


@pytest.mark.parametrize("sizes,m,pattern", CASES)
def test_run_to_run_identical(sizes, m, pattern):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1))
    _assert_bitwise_equal(_run(W, b, X, Y, acts, N_THREADS), _run(W, b, X, Y, acts, N_THREADS))


def test_both_paths_are_exercised_by_the_test_table():
    # Tiny networks run in the calling thread, larger ones in parallel regions; the
    # shapes of the agreement table cover both sides of passes.SERIAL_BELOW.
    from loopbp import passes

    assert not passes._worth_threads(np.array([2, 8, 8, 1]), 100)
    assert passes._worth_threads(np.array([64, 128, 128, 10]), 200)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_serial_and_parallel_kernels_are_bitwise_equal(dtype):
    from loopbp import kernels, tiled_kernels

    rng = np.random.default_rng(0)
    n_in, n, n_next, m = 37, 29, 13, 999
    W = rng.standard_normal((n, n_in)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    A_prev = rng.standard_normal((n_in, m)).astype(dtype)
    W_next_T = rng.standard_normal((n, n_next)).astype(dtype)
    dZ_next = rng.standard_normal((n_next, m)).astype(dtype)
    Y = rng.standard_normal((n, m)).astype(dtype)

    scratch = np.empty(tiled_kernels.scratch_length(max(n_in, n_next), numba.config.NUMBA_NUM_THREADS), dtype)

    def run(parallel):
        A = np.empty((n, m), dtype)
        tiled_kernels.forward_layer(W, b, 1, A_prev, A, scratch, parallel)
        dZ = np.empty((n, m), dtype)
        tiled_kernels.hidden_delta_to_z(W_next_T, dZ_next, 3, A, dZ, scratch, parallel)
        dW = np.empty((n, n_in), dtype)
        tiled_kernels.weight_gradient(dZ, A_prev, dW, parallel)
        delta, squares = np.empty((n, m), dtype), np.empty(n)
        kernels.output_delta(A, Y, delta, squares, parallel)
        kernels.delta_to_z(2, A, delta, parallel)
        db = np.empty(n, dtype)
        kernels.bias_gradient(dZ, db, parallel)
        return [A, dZ, dW, delta, squares, db]

    for x, y in zip(run(True), run(False)):
        assert x.tobytes() == y.tobytes()
