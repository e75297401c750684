"""The back-propagation derivation as Numba loops over i, j, c and l.

Each kernel is one equation of Jan Marthedal Rasmussen's "Neural Networks -
Back-propagation Derivation" (19 January 2023, in the series at https://janmr.com/blog/),
stated in its docstring in the post's notation and written as the loop nest that the
equation's indices describe:

- i runs over the units of the layer being written, j over the units of the layer
  the sum runs over, c over the m samples, and l over the layers;
- ``prange`` is always taken over an index that the kernel writes (i), so that no
  two threads write one element and every element's sum runs in the same order
  whatever the thread count: 1 thread and N threads give bitwise equal results;
- no BLAS, ``np.dot``, ``@`` or einsum appears: the point is loop-level code;
- every constant is made in the arrays' dtype, so float32 work stays float32.

The three contractions (Z^l, dE/dW^l and dE/dA^(l-1)) run as written here on the plain
path, the reference that the tests hold the faster ones to (``tiled_kernels``,
``packed_kernels``, ``narrow_kernels``); the elementwise equations (dE/dA^L, dE/dZ^l,
dE/db^l and E) run as written here on every path. The loop over the layers l is in
``loopbp.cpu.layer_loop``, the storage the kernels work on in ``loopbp.layout``.
"""

import numpy as np
from numba import njit, prange

from .activation_rows import activate_row, multiply_by_derivative_row

# --- one kernel per equation -------------------------------------------------------


@njit(parallel=True)
def forward_layer(W, b, code, A_prev, A):
    r"""Forward pass through layer l: Z^l and then A^l, written into `A`.

    Equations (1) and (2) of the docs' page "The derivation in code" (docs/derivation.md).

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


@njit(parallel=True)
def output_delta(A, Y, dA, row_squares, parallel=True):
    r"""dE/dA^L and the terms of E.

    Equations (3) and (4) of the docs' page "The derivation in code" (docs/derivation.md).

    .. math::

        \frac{\partial E}{\partial A^L_{ic}} = \tfrac{1}{m}\left(A^L_{ic} - Y_{ic}\right),
        \qquad
        E = \tfrac{1}{2m} \sum_{i=1}^{n^L} \sum_{c=1}^m \left(A^L_{ic} - Y_{ic}\right)^2

    The post writes the range of the dE/dA^L equation as i = 1..n^(l-1), a typo: it is
    i = 1..n^L.

    Parameters
    ----------
    A, Y : (n^L, m) arrays
    dA : (n^L, m) array
        Output, dE/dA^L.
    row_squares : (n^L,) float64 array
        Output, sum_c (A^L_ic - Y_ic)^2 for each i. The caller sums these in a fixed
        order, so E does not depend on the thread count. They are accumulated in
        float64, whatever the dtype, because E sums n^L m terms.
    parallel : bool
        Split the rows among threads (True), or run them in this thread: a tiny
        network's whole gradient costs less than starting a parallel region.
    """
    n = A.shape[0]
    if parallel:
        for i in prange(n):
            row_squares[i] = _output_delta_row(A[i], Y[i], dA[i])
    else:
        for i in range(n):
            row_squares[i] = _output_delta_row(A[i], Y[i], dA[i])


# error_model="numpy": no zero-divisor branch in the loop (m >= 1), so it vectorises.
@njit(cache=True, error_model="numpy")
def _output_delta_row(a, y, d):
    # One row i of output_delta; returns sum_c (a_c - y_c)^2 in float64, summed by
    # squared_error_row, as E alone is (a second pass over a row that is in cache).
    m_t = a.dtype.type(a.shape[0])
    for c in range(a.shape[0]):
        d[c] = (a[c] - y[c]) / m_t
    return squared_error_row(a, y)


@njit(fastmath={"reassoc"}, cache=True)
def squared_error_row(a, y):
    # sum_c (a_c - y_c)^2 in float64. Vectorised (reassoc): a sum in order is a chain of
    # dependent additions, one each four cycles, three times as slow. The order is then the
    # compiled loop's, fixed by m alone, so the bits do not depend on the threads; E alone
    # (error_from_output) and the gradient's E both sum with this function.
    s = 0.0
    for c in range(a.shape[0]):
        r = np.float64(a[c] - y[c])
        s += r * r
    return s


@njit(parallel=True)
def delta_to_z(code, A, delta, parallel=True):
    r"""Turn dE/dA^l into dE/dZ^l in place.

    Equation (5) of the docs' page "The derivation in code" (docs/derivation.md).

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
    parallel : bool
        As in `output_delta`.
    """
    n = A.shape[0]
    if parallel:
        for i in prange(n):
            multiply_by_derivative_row(code, A[i], delta[i])
    else:
        for i in range(n):
            multiply_by_derivative_row(code, A[i], delta[i])


@njit(parallel=True)
def weight_gradient(dZ, A_prev, dW):
    r"""dE/dW^l.

    Equation (7) of the docs' page "The derivation in code" (docs/derivation.md).

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


@njit(parallel=True)
def bias_gradient(dZ, db, parallel=True):
    r"""dE/db^l.

    Equation (8) of the docs' page "The derivation in code" (docs/derivation.md).

    .. math::

        \frac{\partial E}{\partial b^l_i} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}}

    Parameters
    ----------
    dZ : (n^l, m) array
        dE/dZ^l.
    db : (n^l,) array
        Output.
    parallel : bool
        As in `output_delta`.
    """
    n = dZ.shape[0]
    if parallel:
        for i in prange(n):
            db[i] = _row_sum(dZ[i])
    else:
        for i in range(n):
            db[i] = _row_sum(dZ[i])


@njit(cache=True)
def _row_sum(row):
    s = row.dtype.type(0)
    for c in range(row.shape[0]):
        s += row[c]
    return s


@njit(parallel=True)
def hidden_delta(W_next, dZ_next, dA):
    r"""dE/dA^l for a hidden layer l < L, from layer l+1.

    Equation (6) of the docs' page "The derivation in code" (docs/derivation.md).

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
