"""The NumPy einsum reference: the same math in the matrix style (``backend="einsum"``).

This is the "vectorised" side of every comparison and the reference the loop kernels are
validated against. Every contraction is an ``np.einsum`` whose subscripts are the
derivation's indices (i, j, c), so each line reads like its equation in
``shared/docs/conventions.md``:

    Z^l  = W^l A^(l-1) + b^l 1^T          einsum("ij,jc->ic")
    dA^L = (A^L - Y) / m
    dZ^l = dA^l * g^l'(Z^l)
    dA^l = (W^(l+1))^T dZ^(l+1)            einsum("ji,jc->ic")
    dW^l = dZ^l (A^(l-1))^T                einsum("ic,jc->ij")
    db^l = dZ^l 1                          einsum("ic->i")

``optimize=True`` lets einsum hand the two-operand contractions to BLAS, as a user of
the vectorised style would. These functions take validated arrays (see
``loopbp.validation``); the public entry points are in ``loopbp.gradients``.
"""

import numpy as np

from .activations import derivative_from_value, value


def _contract(subscripts, *operands):
    return np.einsum(subscripts, *operands, optimize=True)


def forward_pass(W, b, X, activations):
    """A^0, ..., A^L as a list, for validated W, b, X and activation names."""
    A = [X]
    for W_l, b_l, g in zip(W, b, activations):
        Z = _contract("ij,jc->ic", W_l, A[-1]) + b_l[:, None]
        A.append(value(g, Z))
    return A


def error_from_output(A_L, Y):
    """E = 1/(2m) sum_c sum_i (A^L_ic - Y_ic)^2, accumulated in float64 as the loops do."""
    m = Y.shape[1]
    R = (A_L - Y).astype(np.float64)
    return float(_contract("ic,ic->", R, R)) / (2 * m)


def gradient(W, b, X, Y, activations):
    """E, [dE/dW^l], [dE/db^l] for validated inputs."""
    A = forward_pass(W, b, X, activations)
    L = len(W)
    m = X.shape[1]
    E = error_from_output(A[L], Y)
    dW = [None] * L
    db = [None] * L
    dA = (A[L] - Y) / m
    for l in range(L, 0, -1):
        dZ = dA * derivative_from_value(activations[l - 1], A[l])
        dW[l - 1] = _contract("ic,jc->ij", dZ, A[l - 1])
        db[l - 1] = _contract("ic->i", dZ)
        if l > 1:
            dA = _contract("ji,jc->ic", W[l - 1], dZ)
    return E, dW, db
