"""The plain loops in one thread: an entry point that compiles in seconds, for the first calls.

The fast kernels (``loopbp.cpu.driver``) take Numba 20 to 50 s to compile on 2 cores, once
per dtype and kernel set, because of their parallel regions and register tiles. Until
they are in the cache, ``loopbp.cpu.warming`` has a background process compile them and
runs the calls here instead: the plain loop nests of ``loopbp.cpu.kernels`` (the seed's
equations as written), compiled without threads, where every ``prange`` runs as a
``range``. They compile in a few seconds and agree with the fast kernels to rounding
error; they are slower on all but small networks, and use one thread.

`run` takes the arguments of ``driver.run`` and returns what it returns, so that the
engine can call either; it ignores those that only the fast kernels use (the scratch,
the tile, the kernel set, the plan and the thread count).
"""

import numpy as np
from numba import njit

from ..shuffling import mini_batches
from . import kernels, layer_loop
from .driver import FORWARD, GRADIENT, TRAIN
from .training_loop import descend, gather

# The plain kernels compiled without parallel regions: the same loop nests, one thread,
# inlined into `checked_pass`, which is cached whole.
_forward_layer = njit(inline="always")(kernels.forward_layer.py_func)
_output_delta = njit(inline="always")(kernels.output_delta.py_func)
_delta_to_z = njit(inline="always")(kernels.delta_to_z.py_func)
_weight_gradient = njit(inline="always")(kernels.weight_gradient.py_func)
_bias_gradient = njit(inline="always")(kernels.bias_gradient.py_func)
_hidden_delta = njit(inline="always")(kernels.hidden_delta.py_func)


@njit(inline="always")
def gradient_pass(theta, sizes, codes, X, Y, grad, activations, deltas, squares, forward_only):
    """E and the whole gradient on the plain loop nests of ``loopbp.cpu.kernels``, in one thread.

    With `forward_only`, the forward pass alone (A^1..A^L into `activations`); E is then 0.
    The buffers are those of a ``Workspace`` (``loopbp.cpu.workspace``), laid out as
    ``loopbp.layout`` says.
    """
    L = sizes.shape[0] - 1
    m = X.shape[1]
    A_prev = X
    # theta (and grad) hold W^1, b^1, ..., W^L, b^L; activations A^1, ..., A^L, each (n^l, m).
    p = 0
    a = 0
    for l in range(1, L + 1):
        n, n_prev = sizes[l], sizes[l - 1]
        A = activations[a : a + n * m].reshape((n, m))
        W = theta[p : p + n * n_prev].reshape((n, n_prev))
        _forward_layer(W, theta[p + n * n_prev : p + n * n_prev + n], codes[l - 1], A_prev, A)
        A_prev = A
        p += n * n_prev + n
        a += n * m
    if forward_only:
        return 0.0

    # dE/dA^L and E, then dE/dZ^L in place.
    A_L = A_prev
    delta = deltas[0, : sizes[L] * m].reshape((sizes[L], m))
    _output_delta(A_L, Y, delta, squares, False)
    E = layer_loop.sum_in_order(squares) / (2.0 * m)
    _delta_to_z(codes[L - 1], A_L, delta, False)
    for l in range(L, 0, -1):
        n, n_prev = sizes[l], sizes[l - 1]
        p -= n * n_prev + n
        a -= n * m
        # delta holds dE/dZ^l; the other buffer receives dE/dZ^(l-1).
        A_prev = activations[a - n_prev * m : a].reshape((n_prev, m)) if l > 1 else X
        delta = deltas[(L - l) % 2, : n * m].reshape((n, m))
        _weight_gradient(delta, A_prev, grad[p : p + n * n_prev].reshape((n, n_prev)))
        _bias_gradient(delta, grad[p + n * n_prev : p + n * n_prev + n], False)
        if l > 1:
            previous = deltas[(L - l + 1) % 2, : n_prev * m].reshape((n_prev, m))
            _hidden_delta(theta[p : p + n * n_prev].reshape((n, n_prev)), delta, previous)
            _delta_to_z(codes[l - 2], A_prev, previous, False)
    return E


@njit(cache=True, error_model="numpy")
def checked_pass(mode, theta, network, X, Y, grad, buffers):
    """A checked gradient (`mode` ``driver.GRADIENT``) or a forward pass (``driver.FORWARD``).

    `network` and `buffers` are ``driver.run``'s (the scratch is not used). Returns
    (status, E) as ``driver.run`` returns its first two values.
    """
    sizes, codes = network
    activations, deltas, _, squares = buffers
    if mode == GRADIENT and not (
        layer_loop.all_finite(theta) and layer_loop.all_finite(X.ravel()) and layer_loop.all_finite(Y.ravel())
    ):
        return layer_loop.INPUT_NOT_FINITE, np.nan
    # The one call site of the pass, inlined.
    E = gradient_pass(theta, sizes, codes, X, Y, grad, activations, deltas, squares, mode == FORWARD)
    if mode == FORWARD:
        return layer_loop.FINITE, 0.0
    if not (np.isfinite(E) and layer_loop.all_finite(grad)):
        return layer_loop.RESULT_NOT_FINITE, E
    return layer_loop.FINITE, E


def run(mode, theta, network, X, Y, grad, buffers, tile, narrow, plan, training, threads):
    """``driver.run`` on the plain loops in one thread: its arguments, its results to rounding error.

    The scratch, `tile`, `narrow`, `plan` and `threads` are not used. The epochs of `TRAIN`
    run here in Python, around one compiled gradient per step, with the compiled shuffle,
    gather and step of ``loopbp.cpu.training_loop`` that ``driver.run`` runs: compiling the
    epochs' loop as well would double the first call's compile.
    """
    if mode != TRAIN:
        status, E = checked_pass(mode, theta, network, X, Y, grad, buffers)
        return status, E, 0
    alpha, first, count, history, batch_size, rng, order, X_batch, Y_batch = training
    m = X.shape[1]
    full = batch_size >= m
    for epoch in range(first, first + count):
        E = 0.0
        for start, end in [(0, m)] if full else mini_batches(order, rng, batch_size):
            Xb = X if full else gather(X, order, start, end, X_batch)
            Yb = Y if full else gather(Y, order, start, end, Y_batch)
            status, E_b = checked_pass(GRADIENT, theta, network, Xb, Yb, grad, buffers)
            # As in driver.run: the epochs before the first step that is not finite.
            if status != layer_loop.FINITE or not descend(theta, grad, alpha):
                return layer_loop.FINITE, 0.0, epoch - first
            E = E_b if full else E + E_b * (end - start)
        history[epoch] = E if full else E / m
    return layer_loop.FINITE, 0.0, count
