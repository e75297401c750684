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
