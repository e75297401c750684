"""The back-propagation derivation as Numba loops over i, j, c and l.

Each kernel is one equation of ``shared/seed/back-propagation-derivation.md`` (see
``shared/docs/conventions.md`` for the notation), written as the loop nest that the
equation's indices describe:

- i runs over the units of the layer being written, j over the units of the layer
  the sum runs over, c over the m samples, and l over the layers;
- ``prange`` is always taken over an index that the kernel writes (i), so that no
  two threads write one element and every element's sum runs in the same order
  whatever the thread count: 1 thread and N threads give bitwise equal results;
- no BLAS, ``np.dot``, ``@`` or einsum appears: the point is loop-level code;
- every constant is made in the arrays' dtype, so float32 work stays float32.

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
from numba import njit, prange

from .activations import activate_row, multiply_by_derivative_row

# --- one kernel per equation -------------------------------------------------------


@njit(parallel=True, cache=True)
def forward_layer(W, b, code, A_prev, A):
    r"""Forward pass through layer l: Z^l and then A^l, written into `A`.

    .. math::

        Z^l_{ic} = \sum_{j=1}^{n^{l-1}} W^l_{ij} A^{l-1}_{jc} + b^l_i,
        \qquad A^l_{ic} = g^l(Z^l_{ic})

    Parameters
    ----------
    W : (n^l, n^(l-1)) array
    b : (n^l,) array
    code : int
        The activation code of g^l (``loopbp.activations``).
    A_prev : (n^(l-1), m) array
        A^(l-1); A^0 is X.
    A : (n^l, m) array
        Output, A^l.
    """
    n_out, n_in = W.shape
    m = A.shape[1]
    for i in prange(n_out):
        for c in range(m):
            A[i, c] = b[i]
        # j outside c keeps the innermost loop a contiguous sweep over row A^(l-1)_j.
        for j in range(n_in):
            w = W[i, j]
            for c in range(m):
                A[i, c] += w * A_prev[j, c]
        activate_row(code, A[i])


@njit(parallel=True, cache=True)
def output_delta(A, Y, dA, row_squares):
    r"""dE/dA^L and the terms of E.

    .. math::

        \frac{\partial E}{\partial A^L_{ic}} = \tfrac{1}{m}\left(A^L_{ic} - Y_{ic}\right),
        \qquad
        E = \tfrac{1}{2m} \sum_{i=1}^{n^L} \sum_{c=1}^m \left(A^L_{ic} - Y_{ic}\right)^2

    The seed writes the range of the first equation as i = 1..n^(l-1); it is
    i = 1..n^L (conventions.md).

    Parameters
    ----------
    A, Y : (n^L, m) arrays
    dA : (n^L, m) array
        Output, dE/dA^L.
    row_squares : (n^L,) float64 array
        Output, sum_c (A^L_ic - Y_ic)^2 for each i. The caller sums these in a fixed
        order, so E does not depend on the thread count. They are accumulated in
        float64, whatever the dtype, because E sums n^L m terms.
    """
    n, m = A.shape
    m_t = A.dtype.type(m)
    for i in prange(n):
        s = 0.0
        for c in range(m):
            r = A[i, c] - Y[i, c]
            dA[i, c] = r / m_t
            s += np.float64(r) * np.float64(r)
        row_squares[i] = s


@njit(parallel=True, cache=True)
def delta_to_z(code, A, delta):
    r"""Turn dE/dA^l into dE/dZ^l in place.

    .. math::

        \frac{\partial E}{\partial Z^l_{ic}}
        = \frac{\partial E}{\partial A^l_{ic}} \, {g^l}'(Z^l_{ic})

    Parameters
    ----------
    code : int
        The activation code of g^l.
    A : (n^l, m) array
        A^l, from which g^l' is computed.
    delta : (n^l, m) array
        dE/dA^l on entry, dE/dZ^l on return.
    """
    n = A.shape[0]
    for i in prange(n):
        multiply_by_derivative_row(code, A[i], delta[i])


@njit(parallel=True, cache=True)
def weight_gradient(dZ, A_prev, dW):
    r"""dE/dW^l.

    .. math::

        \frac{\partial E}{\partial W^l_{ij}} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc}

    Parameters
    ----------
    dZ : (n^l, m) array
        dE/dZ^l.
    A_prev : (n^(l-1), m) array
        A^(l-1).
    dW : (n^l, n^(l-1)) array
        Output.
    """
    n_out, m = dZ.shape
    n_in = A_prev.shape[0]
    zero = dZ.dtype.type(0)
    for i in prange(n_out):
        for j in range(n_in):
            s = zero
            for c in range(m):
                s += dZ[i, c] * A_prev[j, c]
            dW[i, j] = s


@njit(parallel=True, cache=True)
def bias_gradient(dZ, db):
    r"""dE/db^l.

    .. math::

        \frac{\partial E}{\partial b^l_i} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}}

    Parameters
    ----------
    dZ : (n^l, m) array
        dE/dZ^l.
    db : (n^l,) array
        Output.
    """
    n, m = dZ.shape
    zero = dZ.dtype.type(0)
    for i in prange(n):
        s = zero
        for c in range(m):
            s += dZ[i, c]
        db[i] = s


@njit(parallel=True, cache=True)
def hidden_delta(W_next, dZ_next, dA):
    r"""dE/dA^l for a hidden layer l < L, from layer l+1.

    .. math::

        \frac{\partial E}{\partial A^l_{ic}}
        = \sum_{j=1}^{n^{l+1}} \frac{\partial E}{\partial Z^{l+1}_{jc}} W^{l+1}_{ji}

    Parameters
    ----------
    W_next : (n^(l+1), n^l) array
        W^(l+1).
    dZ_next : (n^(l+1), m) array
        dE/dZ^(l+1).
    dA : (n^l, m) array
        Output, dE/dA^l.
    """
    n_next, n = W_next.shape
    m = dA.shape[1]
    zero = dA.dtype.type(0)
    for i in prange(n):
        for c in range(m):
            dA[i, c] = zero
        # j outside c keeps the innermost loop a contiguous sweep over row dZ^(l+1)_j.
        for j in range(n_next):
            w = W_next[j, i]
            for c in range(m):
                dA[i, c] += w * dZ_next[j, c]


# --- drivers: the loop over l ----------------------------------------------------


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
def forward_pass(theta, sizes, codes, X):
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
    A_prev = X
    for l in range(1, L + 1):
        W = _matrix(theta, w_off[l - 1], sizes[l], sizes[l - 1])
        b = theta[b_off[l - 1] : b_off[l - 1] + sizes[l]]
        A = _matrix(activations, a_off[l - 1], sizes[l], m)
        forward_layer(W, b, codes[l - 1], A_prev, A)
        A_prev = A
    return activations


@njit(cache=True)
def _sum_in_order(values):
    # A serial sum in index order, so E does not depend on the thread count.
    s = 0.0
    for i in range(values.shape[0]):
        s += values[i]
    return s


@njit(cache=True)
def error_from_output(A_L, Y):
    """E for the output A^L and targets Y (see `output_delta`), as float64."""
    n, m = A_L.shape
    delta = np.empty_like(A_L)
    row_squares = np.empty(n, np.float64)
    output_delta(A_L, Y, delta, row_squares)
    return _sum_in_order(row_squares) / (2.0 * m)


@njit(cache=True)
def gradient_pass(theta, sizes, codes, X, Y, grad):
    """E and the whole gradient: the forward pass, then back-propagation for l = L..1.

    Parameters
    ----------
    theta, sizes, codes, X
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
    activations = forward_pass(theta, sizes, codes, X)

    widest = 0
    for l in range(1, L + 1):
        widest = max(widest, sizes[l])
    deltas = np.empty((2, widest * m), theta.dtype)

    row_squares = np.empty(sizes[L], np.float64)
    delta = _matrix(deltas[0], 0, sizes[L], m)
    output_delta(_matrix(activations, a_off[L - 1], sizes[L], m), Y, delta, row_squares)
    E = _sum_in_order(row_squares) / (2.0 * m)

    for l in range(L, 0, -1):
        A = _matrix(activations, a_off[l - 1], sizes[l], m)
        if l > 1:
            A_prev = _matrix(activations, a_off[l - 2], sizes[l - 1], m)
        else:
            A_prev = X
        delta = _matrix(deltas[(L - l) % 2], 0, sizes[l], m)
        delta_to_z(codes[l - 1], A, delta)
        dW = _matrix(grad, w_off[l - 1], sizes[l], sizes[l - 1])
        weight_gradient(delta, A_prev, dW)
        bias_gradient(delta, grad[b_off[l - 1] : b_off[l - 1] + sizes[l]])
        if l > 1:
            W = _matrix(theta, w_off[l - 1], sizes[l], sizes[l - 1])
            hidden_delta(W, delta, _matrix(deltas[(L - l + 1) % 2], 0, sizes[l - 1], m))
    return E
