"""The NumPy einsum reference: the same math in the matrix style (``backend="einsum"``).

This is the "vectorised" side of every comparison and the reference the loop kernels are
validated against. Every contraction is an ``np.einsum`` whose subscripts are the
derivation's indices (i, j, c), so each line reads like its equation in the series'
matrix-style post
(https://janmr.com/blog/2023/01/neural-networks-07-back-propagation-matrix-style), and a
comment gives each line's equation number on the docs' page "The derivation in code"
(docs/derivation.md):

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


#: The same five contractions written with NumPy ``@`` (BLAS): the baseline that
#: ``loopbp compare`` and the benchmarks call "numpy".
_MATMUL = {
    "ij,jc->ic": lambda W, A: W @ A,
    "ic,ic->": lambda R, S: np.vdot(R, S),
    "ic,jc->ij": lambda dZ, A: dZ @ A.T,
    "ic->i": lambda dZ: dZ.sum(axis=1),
    "ji,jc->ic": lambda W, dZ: W.T @ dZ,
}


def _matmul(subscripts, *operands):
    return _MATMUL[subscripts](*operands)


def forward_pass(W, b, X, activations, *, matmul=False):
    """A^0, ..., A^L as a list, for validated W, b, X and activation names.

    With `matmul`, each contraction is a NumPy ``@`` product instead of an einsum.
    """
    contract = _matmul if matmul else _contract
    A = [X]
    for W_l, b_l, g in zip(W, b, activations):
        Z = contract("ij,jc->ic", W_l, A[-1]) + b_l[:, None]  # equation (1)
        A.append(value(g, Z))  # equation (2)
    return A


def error_from_output(A_L, Y, *, matmul=False):
    """E = 1/(2m) sum_c sum_i (A^L_ic - Y_ic)^2, accumulated in float64 as the loops do."""
    contract = _matmul if matmul else _contract
    m = Y.shape[1]
    R = (A_L - Y).astype(np.float64)
    return float(contract("ic,ic->", R, R)) / (2 * m)  # equation (3)


def gradient(W, b, X, Y, activations, *, matmul=False):
    """E, [dE/dW^l], [dE/db^l] for validated inputs; `matmul` as in `forward_pass`."""
    contract = _matmul if matmul else _contract
    A = forward_pass(W, b, X, activations, matmul=matmul)
    L = len(W)
    m = X.shape[1]
    E = error_from_output(A[L], Y, matmul=matmul)
    dW = [None] * L
    db = [None] * L
    dA = (A[L] - Y) / m  # equation (4)
    for l in range(L, 0, -1):
        dZ = dA * derivative_from_value(activations[l - 1], A[l])  # equation (5)
        dW[l - 1] = contract("ic,jc->ij", dZ, A[l - 1])  # equation (7)
        db[l - 1] = contract("ic->i", dZ)  # equation (8)
        if l > 1:
            dA = contract("ji,jc->ic", W[l - 1], dZ)  # equation (6)
    return E, dW, db
