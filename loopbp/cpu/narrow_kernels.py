"""Kernels for narrow networks: every layer at most `WIDTH` units, vectorised along the samples c.

When n^l is small (odd widths included), the register tiles of the packed and
portable kernels are mostly edges, and their packing and blocking cost more than the
arithmetic. These kernels instead make the samples c the innermost, contiguous loop, which
LLVM vectorises at the host's full width whatever n^l is, and take the whole network one
block of `BLOCK` samples at a time: the block's activations and deltas of every layer stay
in the L1/L2 cache from the forward pass to dE/dW^l, and the small elementwise steps (the
bias, g, g', dE/dA^L and dE/db^l) are applied to each row of the block while it is there.

Threads take `CHUNK` samples each (``prange`` over the chunks), and every chunk sums its
own part of dE/dW^l and dE/db^l into a slot of the scratch; the slots are added in chunk
order at the end. The chunks and blocks depend on m alone, so 1 thread and N threads give
bitwise equal results.

The contractions are written as ``+=`` of four products at a time (i, j unrolled by four):
each pass over a row of the block then loads it once for four fused multiply-adds.
"""

import numpy as np
from numba import njit, prange

from ..layout import activation_offset, biases, matrix, weights
from .activation_rows import activate_row, multiply_by_derivative_row
from .simd import full_width

#: The widest layer (n^0 included) for which the loops backend takes these kernels. Measured
#: on the Intel Xeon development machine (AVX-512, one thread, m = 1347, 2026): these
#: kernels took 0.97x the packed kernels' time at 32-32-10, 1.35x at 48-48-10 and 1.5x at
#: 64-64-10, and 0.6x at 13-37-29-7, whose odd widths leave the packed tiles a third empty.
WIDTH = 40
#: Samples per block: 128 samples of a 40-wide layer in float64 are 40 KiB, about L1.
BLOCK = 128
#: Samples per chunk, the unit of work of one thread, with its own partial dE/dW.
CHUNK = 256
#: Rows of dE/dW^l per thread's piece when a layer of a wider network streams (`weight_gradient`).
ROWS = 8


def is_narrow(sizes):
    """Whether every n^l, l = 0..L, is at most `WIDTH`."""
    return max(int(n) for n in sizes) <= WIDTH


def scratch_length(sizes, m, backward):
    """Scratch for the partial gradients of every chunk but the first (which writes grad)."""
    if not backward:
        return 0
    p = sum((int(a) + 1) * int(b) for a, b in zip(sizes[:-1], sizes[1:]))
    return p * max(0, _chunks(m) - 1)


@njit(cache=True)
def _chunks(m):
    return (m + CHUNK - 1) // CHUNK


@njit(cache=True, inline="always")
def _combine_rows(w, R, out, c0, c1):
    # out[c] = sum_j w[j] R[j, c0 + c]: the sum over j of the forward pass and of dE/dA, four
    # rows of R at a time along the contiguous samples, so that each pass over `out` does
    # four multiply-adds per load of it. Inlined, it takes its caller's fastmath flags.
    zero = out.dtype.type(0)
    for c in range(c1 - c0):
        out[c] = zero
    n = w.shape[0]
    j = 0
    while j + 4 <= n:
        w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
        r0, r1 = R[j, c0:c1], R[j + 1, c0:c1]
        r2, r3 = R[j + 2, c0:c1], R[j + 3, c0:c1]
        for c in range(c1 - c0):
            out[c] += w0 * r0[c] + w1 * r1[c] + w2 * r2[c] + w3 * r3[c]
        j += 4
    while j < n:
        wj = w[j]
        r = R[j, c0:c1]
        for c in range(c1 - c0):
            out[c] += wj * r[c]
        j += 1


@njit(cache=True, fastmath={"contract"})
def forward_block(W, b, code, A_prev, A, c0, c1):
    r"""Z^l and A^l = g^l(Z^l) for the samples c0 <= c < c1, written into `A`.

    .. math::
        Z^l_{ic} = \sum_{j=1}^{n^{l-1}} W^l_{ij} A^{l-1}_{jc} + b^l_i,
        \qquad A^l_{ic} = g^l(Z^l_{ic})
    """
    full_width()
    for i in range(W.shape[0]):
        z = A[i, c0:c1]
        _combine_rows(W[i, :], A_prev, z, c0, c1)
        # b is added last, as in W A + b: with large products first, the order decides
        # how much of b survives rounding, and this one is the reference's.
        bi = b[i]
        for c in range(c1 - c0):
            z[c] += bi
        # The row is in L1 now: apply g before moving on.
        activate_row(code, z)


@njit(cache=True, error_model="numpy")
def output_delta_block(code, A, Y, delta, m, c0, c1):
    r"""dE/dZ^L = (A^L - Y) / m g^L' for the samples c0 <= c < c1.

    The division by m is that of ``kernels.output_delta``, value for value; E itself is
    summed afterwards, row by row, as `layer_loop.error_from_output` sums it.
    """
    full_width()
    m_t = A.dtype.type(m)
    for i in range(A.shape[0]):
        a = A[i, c0:c1]
        y = Y[i, c0:c1]
        d = delta[i, c0:c1]
        for c in range(c1 - c0):
            d[c] = (a[c] - y[c]) / m_t
        multiply_by_derivative_row(code, a, d)


@njit(cache=True, fastmath={"contract"})
def hidden_delta_block(W_next, dZ_next, code, A, dZ, c0, c1):
    r"""dE/dZ^l = (sum_j dE/dZ^(l+1)_jc W^(l+1)_ji) g^l'(Z^l_ic) for c0 <= c < c1.

    .. math::
        \frac{\partial E}{\partial Z^l_{ic}} = {g^l}'(Z^l_{ic})
        \sum_{j=1}^{n^{l+1}} \frac{\partial E}{\partial Z^{l+1}_{jc}} W^{l+1}_{ji}
    """
    full_width()
    for i in range(W_next.shape[1]):
        d = dZ[i, c0:c1]
        _combine_rows(W_next[:, i], dZ_next, d, c0, c1)
        multiply_by_derivative_row(code, A[i, c0:c1], d)


@njit(cache=True, inline="always")
def weight_gradient_block(dZ, A_prev, dW, db, c0, c1, first):
    """`weight_gradient_rows` for every row i."""
    weight_gradient_rows(dZ, A_prev, dW, db, np.int64(0), dW.shape[0], c0, c1, first)


@njit(cache=True, fastmath={"reassoc", "contract"})
def weight_gradient_rows(dZ, A_prev, dW, db, i0, i1, c0, c1, first):
    r"""Add the block's part of dE/dW^l and dE/db^l to dW and db (write it, if `first`).

    .. math::
        \frac{\partial E}{\partial W^l_{ij}} \mathrel{+}= \sum_{c=c_0}^{c_1-1}
        \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc}, \qquad
        \frac{\partial E}{\partial b^l_i} \mathrel{+}= \sum_{c=c_0}^{c_1-1}
        \frac{\partial E}{\partial Z^l_{ic}}

    for the rows i0 <= i < i1. Each sum over the block is reassociated (fastmath
    ``reassoc``) so that it vectorises along c; the blocks are added in order.
    """
    full_width()
    n_in = dW.shape[1]
    zero = dW.dtype.type(0)
    for i in range(i0, i1):
        d = dZ[i, c0:c1]
        s = zero
        for c in range(c1 - c0):
            s += d[c]
        db[i] = s if first else db[i] + s
        j = 0
        while j + 4 <= n_in:
            a0, a1, a2, a3 = (
                A_prev[j, c0:c1],
                A_prev[j + 1, c0:c1],
                A_prev[j + 2, c0:c1],
                A_prev[j + 3, c0:c1],
            )
            s0 = s1 = s2 = s3 = zero
            for c in range(c1 - c0):
                s0 += d[c] * a0[c]
                s1 += d[c] * a1[c]
                s2 += d[c] * a2[c]
                s3 += d[c] * a3[c]
            if first:
                dW[i, j], dW[i, j + 1], dW[i, j + 2], dW[i, j + 3] = s0, s1, s2, s3
            else:
                dW[i, j] += s0
                dW[i, j + 1] += s1
                dW[i, j + 2] += s2
                dW[i, j + 3] += s3
            j += 4
        while j < n_in:
            a = A_prev[j, c0:c1]
            s = zero
            for c in range(c1 - c0):
                s += d[c] * a[c]
            dW[i, j] = s if first else dW[i, j] + s
            j += 1


@njit(cache=True)
def _forward_chunk(theta, sizes, codes, X, activations, chunk):
    L = sizes.shape[0] - 1
    m = X.shape[1]
    for c0 in range(chunk * CHUNK, min(m, (chunk + 1) * CHUNK), BLOCK):
        c1 = min(m, c0 + BLOCK)
        A_prev = X
        for l in range(1, L + 1):
            W, b = weights(theta, sizes, l), biases(theta, sizes, l)
            A = matrix(activations, activation_offset(sizes, m, l), sizes[l], m)
            forward_block(W, b, codes[l - 1], A_prev, A, c0, c1)
            A_prev = A


@njit(cache=True)
def _gradient_chunk(theta, sizes, codes, X, Y, grad, activations, deltas, chunk):
    # grad is the chunk's own slot: the first block writes it, the others add to it.
    L = sizes.shape[0] - 1
    m = X.shape[1]
    first = True
    for c0 in range(chunk * CHUNK, min(m, (chunk + 1) * CHUNK), BLOCK):
        c1 = min(m, c0 + BLOCK)
        A_prev = X
        for l in range(1, L + 1):
            W, b = weights(theta, sizes, l), biases(theta, sizes, l)
            A = matrix(activations, activation_offset(sizes, m, l), sizes[l], m)
            forward_block(W, b, codes[l - 1], A_prev, A, c0, c1)
            A_prev = A
        # np.int64(0), not 0: a literal would compile `matrix` once more (see passes.forward_pass).
        delta = matrix(deltas[0], np.int64(0), sizes[L], m)
        output_delta_block(codes[L - 1], A_prev, Y, delta, m, c0, c1)
        for l in range(L, 0, -1):
            delta = matrix(deltas[(L - l) % 2], np.int64(0), sizes[l], m)
            A_prev = matrix(activations, activation_offset(sizes, m, l - 1), sizes[l - 1], m) if l > 1 else X
            dW, db = weights(grad, sizes, l), biases(grad, sizes, l)
            weight_gradient_block(delta, A_prev, dW, db, c0, c1, first)
            if l > 1:
                W = weights(theta, sizes, l)
                previous = matrix(deltas[(L - l + 1) % 2], np.int64(0), sizes[l - 1], m)
                hidden_delta_block(W, delta, codes[l - 2], A_prev, previous, c0, c1)
        first = False


@njit(parallel=True)
def _forward_chunks(theta, sizes, codes, X, activations):
    for chunk in prange(_chunks(X.shape[1])):
        # prange's index is unsigned; as int64 it shares the serial branch's compiled chunk.
        _forward_chunk(theta, sizes, codes, X, activations, np.int64(chunk))


@njit(cache=True, inline="always")
def forward_pass(theta, sizes, codes, X, activations, threads):
    """A^1..A^L into `activations`, chunk by chunk (see the module docstring)."""
    n = _chunks(X.shape[1])
    if threads > 1 and n > 1:
        _forward_chunks(theta, sizes, codes, X, activations)
    else:
        for chunk in range(n):
            _forward_chunk(theta, sizes, codes, X, activations, chunk)


@njit(cache=True, inline="always")
def _slot(grad, scratch, chunk):
    # Chunk 0 writes grad itself, chunk k > 0 slot k - 1 of the scratch.
    p = grad.shape[0]
    return grad if chunk == 0 else scratch[(chunk - 1) * p : chunk * p]


@njit(parallel=True)
def _gradient_chunks(theta, sizes, codes, X, Y, grad, activations, deltas, scratch):
    for chunk in prange(_chunks(X.shape[1])):
        k = np.int64(chunk)  # (as in _forward_chunks)
        _gradient_chunk(theta, sizes, codes, X, Y, _slot(grad, scratch, k), activations, deltas, k)


@njit(cache=True, inline="always")
def gradient_pass(theta, sizes, codes, X, Y, grad, activations, deltas, scratch, threads):
    """The whole gradient into `grad`, chunk by chunk; E is left to the caller.

    Each chunk sums its part into its own slot (`_slot`); the slots are then added to
    `grad` in chunk order.
    """
    n = _chunks(X.shape[1])
    if threads > 1 and n > 1:
        _gradient_chunks(theta, sizes, codes, X, Y, grad, activations, deltas, scratch)
    else:
        for chunk in range(n):
            _gradient_chunk(
                theta, sizes, codes, X, Y, _slot(grad, scratch, chunk), activations, deltas, chunk
            )
    p = grad.shape[0]
    for chunk in range(1, n):
        slot = scratch[(chunk - 1) * p : chunk * p]
        for k in range(p):
            grad[k] += slot[k]


# --- one layer at a time: the streaming contractions of a wider network's plan ---------
#
# ``loopbp.cpu.plan`` picks these for single contractions of networks too wide for the
# kernels above (a 1-unit output layer, a sum over one or two terms), where the packed
# register tile would be mostly padding. Each runs over the whole of m, in blocks of
# BLOCK samples; threads take blocks of samples (forward, dE/dA) or of rows (dE/dW), so
# 1 and N threads give bitwise equal results.


@njit(parallel=True)
def _forward_blocks(W, b, code, A_prev, A):
    m = A.shape[1]
    for block in prange((m + BLOCK - 1) // BLOCK):
        c0 = np.int64(block) * BLOCK
        forward_block(W, b, code, A_prev, A, c0, min(m, c0 + BLOCK))


@njit(cache=True, inline="always")
def forward_layer(W, b, code, A_prev, A, threads):
    """`forward_block` over every block of samples: Z^l and A^l of one layer."""
    m = A.shape[1]
    if threads > 1:
        _forward_blocks(W, b, code, A_prev, A)
    else:
        for c0 in range(0, m, BLOCK):
            forward_block(W, b, code, A_prev, A, c0, min(m, c0 + BLOCK))


@njit(parallel=True)
def _hidden_delta_blocks(W_next, dZ_next, code, A, dZ):
    m = dZ.shape[1]
    for block in prange((m + BLOCK - 1) // BLOCK):
        c0 = np.int64(block) * BLOCK
        hidden_delta_block(W_next, dZ_next, code, A, dZ, c0, min(m, c0 + BLOCK))


@njit(cache=True, inline="always")
def hidden_delta_to_z(W_next, dZ_next, code, A, dZ, threads):
    """`hidden_delta_block` over every block of samples: dE/dZ^l of one layer."""
    m = dZ.shape[1]
    if threads > 1:
        _hidden_delta_blocks(W_next, dZ_next, code, A, dZ)
    else:
        for c0 in range(0, m, BLOCK):
            hidden_delta_block(W_next, dZ_next, code, A, dZ, c0, min(m, c0 + BLOCK))


@njit(cache=True)
def _weight_rows(dZ, A_prev, dW, db, i0, i1):
    # Rows i0..i1 - 1 of dE/dW^l and dE/db^l, the blocks of samples added in order.
    m = dZ.shape[1]
    for c0 in range(0, m, BLOCK):
        weight_gradient_rows(dZ, A_prev, dW, db, i0, i1, c0, min(m, c0 + BLOCK), c0 == 0)


@njit(parallel=True)
def _weight_row_blocks(dZ, A_prev, dW, db):
    n = dW.shape[0]
    for block in prange((n + ROWS - 1) // ROWS):
        i0 = np.int64(block) * ROWS
        _weight_rows(dZ, A_prev, dW, db, i0, min(n, i0 + ROWS))


@njit(cache=True, inline="always")
def weight_gradient(dZ, A_prev, dW, db, threads):
    """dE/dW^l and dE/db^l of one layer, streamed (`weight_gradient_rows`)."""
    if threads > 1:
        _weight_row_blocks(dZ, A_prev, dW, db)
    else:
        _weight_rows(dZ, A_prev, dW, db, np.int64(0), dW.shape[0])
