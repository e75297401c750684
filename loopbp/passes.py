"""The loop over the layers l: the forward pass and back-propagation, for both kernel sets.

``tiled`` chooses the kernels: the register-tiled contractions of ``loopbp.tiled_kernels``
(what the loops backend runs), or the plain loop nests of ``loopbp.kernels`` (the seed's
equations as written, kept as a second reference for the tests). Either way the
elementwise equations (dE/dA^L, dE/dZ^l = dE/dA^l g', dE/db^l) are the plain kernels.
The flag is data, not a type, so both kernel sets share one compiled driver.

Storage, shared by the drivers and by ``loopbp.gradients``:

- the parameters live in one flat vector theta holding, for l = 1..L, W^l
  (n^l x n^(l-1), row-major) followed by b^l (n^l);
- A^0 = X and Y are (n^0, m) and (n^L, m), C-contiguous, one sample per column;
- A^1..A^L live one after another in one flat buffer; the forward pass writes
  Z^l there and overwrites it with A^l = g^l(Z^l), because every g' is computed
  from A^l (see ``loopbp.activations``);
- the backward pass alternates between two delta buffers of max_l n^l x m: each
  holds dE/dA^l and is turned in place into dE/dZ^l.
"""

import numpy as np
from numba import njit

from . import kernels, tiled_kernels

#: Below this many multiply-adds per gradient the tiled path runs in the calling thread:
#: starting a parallel region costs about 3 us here, and a tiny network's gradient takes
#: about a dozen of them. Serial and parallel runs give bitwise the same result.
SERIAL_BELOW = 250_000


@njit(cache=True)
def _matrix(buffer, offset, rows, cols):
    """The (rows, cols) C-ordered view of `buffer` starting at `offset`."""
    return buffer[offset : offset + rows * cols].reshape((rows, cols))


@njit(cache=True)
def _parameter_offsets(sizes):
    """Offsets of W^l and b^l in theta, for l = 1..L (index l-1)."""
    L = sizes.shape[0] - 1
    w_offsets = np.empty(L, np.int64)
    b_offsets = np.empty(L, np.int64)
    offset = 0
    for l in range(1, L + 1):
        w_offsets[l - 1] = offset
        offset += sizes[l] * sizes[l - 1]
        b_offsets[l - 1] = offset
        offset += sizes[l]
    return w_offsets, b_offsets


@njit(cache=True)
def _activation_offsets(sizes, m):
    """Offsets of A^l in the activation buffer, for l = 1..L (index l-1), and its length."""
    L = sizes.shape[0] - 1
    offsets = np.empty(L, np.int64)
    offset = 0
    for l in range(1, L + 1):
        offsets[l - 1] = offset
        offset += sizes[l] * m
    return offsets, offset


@njit(cache=True)
def _sum_in_order(values):
    # A serial sum in index order, so E does not depend on the thread count.
    s = 0.0
    for i in range(values.shape[0]):
        s += values[i]
    return s


@njit(cache=True)
def _worth_threads(sizes, m):
    """Whether the network is big enough for parallel regions to pay (see SERIAL_BELOW)."""
    work = 0
    for l in range(1, sizes.shape[0]):
        work += sizes[l] * sizes[l - 1] * m
    return work >= SERIAL_BELOW


@njit(cache=True)
def forward_pass(theta, sizes, codes, X, tiled):
    """Run the forward pass for l = 1..L.

    Parameters
    ----------
    theta : (p,) array
        The flat parameters (see the module docstring).
    sizes : (L+1,) int64 array
        n^0, ..., n^L.
    codes : (L,) int64 array
        The activation code of each layer.
    X : (n^0, m) C-contiguous array
        A^0.
    tiled : bool
        Use the tiled kernels (True) or the plain ones.

    Returns
    -------
    activations : 1-D array
        A^1, ..., A^L one after another.
    """
    L = sizes.shape[0] - 1
    m = X.shape[1]
    w_off, b_off = _parameter_offsets(sizes)
    a_off, total = _activation_offsets(sizes, m)
    activations = np.empty(total, theta.dtype)
    parallel = _worth_threads(sizes, m)
    A_prev = X
    for l in range(1, L + 1):
        W = _matrix(theta, w_off[l - 1], sizes[l], sizes[l - 1])
        b = theta[b_off[l - 1] : b_off[l - 1] + sizes[l]]
        A = _matrix(activations, a_off[l - 1], sizes[l], m)
        if tiled:
            tiled_kernels.forward_layer(W, b, codes[l - 1], A_prev, A, parallel)
        else:
            kernels.forward_layer(W, b, codes[l - 1], A_prev, A)
        A_prev = A
    return activations


@njit(cache=True)
def error_from_output(A_L, Y):
    """E for the output A^L and targets Y (see ``kernels.output_delta``), as float64."""
    n, m = A_L.shape
    delta = np.empty_like(A_L)
    row_squares = np.empty(n, np.float64)
    kernels.output_delta(A_L, Y, delta, row_squares)
    return _sum_in_order(row_squares) / (2.0 * m)


@njit(cache=True)
def gradient_pass(theta, sizes, codes, X, Y, grad, tiled):
    """E and the whole gradient: the forward pass, then back-propagation for l = L..1.

    Parameters
    ----------
    theta, sizes, codes, X, tiled
        As in `forward_pass`.
    Y : (n^L, m) C-contiguous array
        The targets.
    grad : (p,) array
        Output: dE/dW^l and dE/db^l, laid out like theta.

    Returns
    -------
    E : float
        The error, accumulated in float64.
    """
    L = sizes.shape[0] - 1
    m = X.shape[1]
    w_off, b_off = _parameter_offsets(sizes)
    a_off, _ = _activation_offsets(sizes, m)
    activations = forward_pass(theta, sizes, codes, X, tiled)
    parallel = _worth_threads(sizes, m)

    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    deltas = np.empty((2, widest * m), theta.dtype)

    # dE/dA^L and E, then dE/dZ^L in place.
    row_squares = np.empty(sizes[L], np.float64)
    delta = _matrix(deltas[0], 0, sizes[L], m)
    A_L = _matrix(activations, a_off[L - 1], sizes[L], m)
    kernels.output_delta(A_L, Y, delta, row_squares, parallel)
    E = _sum_in_order(row_squares) / (2.0 * m)
    kernels.delta_to_z(codes[L - 1], A_L, delta, parallel)

    for l in range(L, 0, -1):
        # delta holds dE/dZ^l; the other buffer receives dE/dZ^(l-1).
        A_prev = _matrix(activations, a_off[l - 2], sizes[l - 1], m) if l > 1 else X
        delta = _matrix(deltas[(L - l) % 2], 0, sizes[l], m)
        dW = _matrix(grad, w_off[l - 1], sizes[l], sizes[l - 1])
        if tiled:
            tiled_kernels.weight_gradient(delta, A_prev, dW, parallel)
        else:
            kernels.weight_gradient(delta, A_prev, dW)
        kernels.bias_gradient(delta, grad[b_off[l - 1] : b_off[l - 1] + sizes[l]], parallel)
        if l > 1:
            W = _matrix(theta, w_off[l - 1], sizes[l], sizes[l - 1])
            previous = _matrix(deltas[(L - l + 1) % 2], 0, sizes[l - 1], m)
            if tiled:
                tiled_kernels.hidden_delta_to_z(W.T.copy(), delta, codes[l - 2], A_prev, previous, parallel)
            else:
                kernels.hidden_delta(W, delta, previous)
                kernels.delta_to_z(codes[l - 2], A_prev, previous, parallel)
    return E
