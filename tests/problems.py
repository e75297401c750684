"""Seeded networks and data shared by the tests."""

import numba
import numpy as np
import pytest

from loopbp import ACTIVATIONS, BACKENDS

#: The backends the CPU tests run: every backend but cuda, which ``tests/test_cuda.py``
#: tests on the CUDA simulator (at 1 to 2 s a gradient there, the whole table would take hours).
CPU_BACKENDS = tuple(b for b in BACKENDS if b != "cuda")

#: (name, sizes n^0..n^L, m): the flat table of shapes every backend must agree on.
#: Degenerate ones included: m = 1, width-1 layers, L = 1, L = 6, and sizes that are
#: not multiples of 4 or 8.
SHAPES = [
    ("toy", (2, 8, 8, 1), 100),
    ("one-sample", (3, 4, 2), 1),
    ("all-width-1", (1, 1, 1), 7),
    ("width-1-hidden", (5, 1, 7), 13),
    ("single-layer", (4, 3), 10),
    ("single-layer-scalar", (1, 1), 1),
    ("six-layers", (5, 3, 7, 2, 9, 4, 3), 17),
    ("odd-sizes", (13, 37, 29, 7), 999),
    ("small", (64, 128, 128, 10), 200),
]

#: Activation patterns: every activation on every layer, the series' choice (sigmoid
#: hidden layers, identity output), and every activation in turn along the layers.
PATTERNS = list(ACTIVATIONS) + ["series", "cycle"]

DTYPES = [np.float64, np.float32]


def activations_for(pattern, L):
    """The activation names of an L-layer network for a pattern of `PATTERNS`."""
    if pattern == "series":
        return ["sigmoid"] * (L - 1) + ["identity"]
    if pattern == "cycle":
        return [ACTIVATIONS[(l + 1) % len(ACTIVATIONS)] for l in range(L)]
    return [pattern] * L


def make_problem(sizes, m, activations, dtype=np.float64, seed=0):
    """W, b, X, Y for the network `sizes`, drawn from a seeded generator.

    Weights are scaled by 1/sqrt(n^(l-1)) so that Z^l stays of order 1 for every
    depth, where each activation is neither saturated nor linear.
    """
    rng = np.random.default_rng(seed)
    W = [
        (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]
    b = [(0.5 * rng.standard_normal(n_out)).astype(dtype) for n_out in sizes[1:]]
    X = rng.standard_normal((sizes[0], m)).astype(dtype)
    Y = rng.standard_normal((sizes[-1], m)).astype(dtype)
    return W, b, X, Y, list(activations)


#: For tests that read compiled code, count compilations or time threads: with
#: NUMBA_DISABLE_JIT=1 (the coverage run of the kernels) there is no compiled code.
needs_jit = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="inspects compiled code or threads; NUMBA_DISABLE_JIT is set"
)
