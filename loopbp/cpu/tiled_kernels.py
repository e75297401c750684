r"""Dot-product tiles of the three contractions: the loops backend's portable path.

The plain kernels of ``loopbp.cpu.kernels`` are the seed's loop nests as written; this module
computes the same three sums faster on any CPU, in plain scalar loops that LLVM
vectorises. Where the CPU has AVX2 or AVX-512, the loops backend runs the packed
contractions of ``loopbp.cpu.packed_kernels`` instead (see ``loopbp.cpu.simd``); this path runs
elsewhere, or when ``LOOPBP_SIMD=portable``. The sums are those of ``loopbp.cpu.kernels``:

.. math::

    Z^l_{ic} = \sum_j W^l_{ij} A^{l-1}_{jc} + b^l_i,

    \frac{\partial E}{\partial A^l_{ic}} = \sum_j \frac{\partial E}{\partial Z^{l+1}_{jc}} W^{l+1}_{ji},

    \frac{\partial E}{\partial W^l_{ij}} = \sum_c \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc}.

Each is written as C[p, q] = sum_k P[p, k] Q[q, k], a dot product over an index k that is
contiguous in memory in both operands (`dot_rows`), so that the loop over k is a
straight vectorisable sweep. Where the summed index is not contiguous (j in A^(l-1)_jc
and dE/dZ^(l+1)_jc), a block of samples is first copied, transposed, into a small buffer
("packing"); for j in W^(l+1)_ji the whole of W^(l+1) is transposed once by `transpose`,
before `hidden_delta_to_z` is called. Each tile of TILE_P x TILE_Q = 4 x 2 outputs keeps
its 8 accumulators in registers, so every loaded value feeds several multiply-adds; k runs
in chunks of `K_CHUNK` so that a tile's rows stay in the L1 cache.

The three contractions, with n^l the width of layer l and m the number of samples:

=============  ========================  ==========================  ========================
role           forward                   dE/dA^l                     dE/dW^l
=============  ========================  ==========================  ========================
C[p, q]        Z^l_ic, written in A^l    dE/dA^l_ic, written in      dE/dW^l_ij
                                         dE/dZ^l
P[p, k]        W^l_ij                    (W^(l+1))^T_ij, copied by   dE/dZ^l_ic
                                         `transpose`
Q[q, k]        A^(l-1)_jc, packed        dE/dZ^(l+1)_jc, packed      A^(l-1)_jc, as stored
p              i, n^l values             i, n^l values               i, n^l values
q              c, C_BLOCK at a time      c, C_BLOCK at a time        j, n^(l-1) values
k              j, n^(l-1) values         j, n^(l+1) values           c, m values
function       `forward_layer`           `hidden_delta_to_z`         `weight_gradient`
prange over    blocks of C_BLOCK c       blocks of C_BLOCK c         blocks of ROW_BLOCK i
=============  ========================  ==========================  ========================

"Packed" is a block of C_BLOCK samples copied as Q[c, j] (`_pack_columns`), so that j
is contiguous. In the forward pass C receives the sums and then the bias and g^l; in
dE/dA^l it receives the sums and then the factor g^l', which makes it dE/dZ^l. In
dE/dW^l, both operands already have c contiguous, and k (the samples) is the outer loop,
one chunk of `K_CHUNK` at a time; in the other two, the chunks of k run inside each block.

Determinism: ``prange`` runs over blocks of an index the kernel writes (samples c for the
forward pass and dE/dA, rows i for dE/dW), and the order of every sum depends on the
shapes alone, never on the thread count. fastmath is limited to reassociation and
contraction (FMA), which the vectorised sums need; no flag assumes finite values.
"""

import numpy as np
from numba import get_thread_id, njit, prange

from .activation_rows import activate_row, multiply_by_derivative_row

_FASTMATH = {"reassoc", "contract"}

#: Samples per block in the forward pass and dE/dA: the packed block is C_BLOCK x n.
C_BLOCK = 32
#: Length of the chunks the summed index is cut into, so that a tile's rows fit in L1.
K_CHUNK = 512
#: Output rows per tile (P side) and columns per tile (Q side). Fixed, not a tuning knob:
#: the tile body in `dot_rows` is written out for 4 x 2 (rows x0..x3 of P, y0 and y1 of Q,
#: accumulators a00..a31), and other values need that body rewritten. 4 x 2 accumulators
#: plus the six loaded rows fit the 16 vector registers of AVX2.
TILE_P = 4
TILE_Q = 2
#: Rows per block on each side of the weight gradient. A multiple of TILE_P and TILE_Q (as
#: C_BLOCK is of TILE_Q), so that only the edges of the arrays fall outside whole tiles.
ROW_BLOCK = 32


def scratch_length(width, threads):
    """Length of the `scratch` buffer that `forward_layer` and `hidden_delta_to_z` need.

    One packed block of C_BLOCK samples x `width` (the widest summed index) per thread
    that may run a block, so that no block allocates.
    """
    return threads * C_BLOCK * width


@njit(fastmath=_FASTMATH, cache=True)
def dot_rows(P, Q, C, k0, k1, accumulate):
    r"""C[p, q] (+)= sum_{k0 <= k < k1} P[p, k] Q[q, k], in tiles of TILE_P x TILE_Q = 4 x 2.

    .. math:: C_{pq} \mathrel{+}= \sum_{k=k_0}^{k_1 - 1} P_{pk} Q_{qk}

    With `accumulate` false, C is overwritten instead of added to.
    """
    n_p = P.shape[0]
    n_q = Q.shape[0]
    n_k = k1 - k0
    zero = P.dtype.type(0)
    for p in range(0, n_p, TILE_P):
        if p + TILE_P <= n_p:
            # The 4 x 2 tile body, written out: TILE_P rows x0..x3, TILE_Q rows y0 and y1,
            # and a<r><s> the accumulator of row p + r and column q + s.
            # Row views that start at k0 and a loop from 0: Numba then knows every
            # index is non-negative and LLVM sees contiguous loads.
            x0 = P[p, k0:k1]
            x1 = P[p + 1, k0:k1]
            x2 = P[p + 2, k0:k1]
            x3 = P[p + 3, k0:k1]
            for q in range(0, n_q - TILE_Q + 1, TILE_Q):
                y0 = Q[q, k0:k1]
                y1 = Q[q + 1, k0:k1]
                a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = zero
                for k in range(n_k):
                    a00 += x0[k] * y0[k]
                    a01 += x0[k] * y1[k]
                    a10 += x1[k] * y0[k]
                    a11 += x1[k] * y1[k]
                    a20 += x2[k] * y0[k]
                    a21 += x2[k] * y1[k]
                    a30 += x3[k] * y0[k]
                    a31 += x3[k] * y1[k]
                if not accumulate:
                    C[p, q] = C[p, q + 1] = zero
                    C[p + 1, q] = C[p + 1, q + 1] = zero
                    C[p + 2, q] = C[p + 2, q + 1] = zero
                    C[p + 3, q] = C[p + 3, q + 1] = zero
                C[p, q] += a00
                C[p, q + 1] += a01
                C[p + 1, q] += a10
                C[p + 1, q + 1] += a11
                C[p + 2, q] += a20
                C[p + 2, q + 1] += a21
                C[p + 3, q] += a30
                C[p + 3, q + 1] += a31
            first_q = n_q - n_q % TILE_Q
        else:
            first_q = 0
        # The edges that do not fill a tile: one dot product per output.
        for r in range(p, min(p + TILE_P, n_p)):
            x = P[r, k0:k1]
            for q in range(first_q, n_q):
                y = Q[q, k0:k1]
                s = zero
                for k in range(n_k):
                    s += x[k] * y[k]
                if accumulate:
                    C[r, q] += s
                else:
                    C[r, q] = s


@njit(cache=True)
def transpose(W, W_T):
    """W_T[i, j] = W[j, i], in square blocks.

    Element by element down a column of W, each read would touch another row and, for
    wide layers, another page; in blocks of 32 x 32 the 32 rows being read stay in cache
    while their next columns are used. (An array assignment ``W_T[...] = W.T`` would first
    copy W, because Numba cannot prove that the two do not overlap.)
    """
    n_rows, n_cols = W.shape
    for j0 in range(0, n_rows, ROW_BLOCK):
        for i0 in range(0, n_cols, ROW_BLOCK):
            for i in range(i0, min(i0 + ROW_BLOCK, n_cols)):
                for j in range(j0, min(j0 + ROW_BLOCK, n_rows)):
                    W_T[i, j] = W[j, i]


@njit(cache=True)
def _pack_columns(A, c0, cn, packed):
    """packed[s, j] = A[j, c0 + s] for s < cn: a block of samples with j contiguous."""
    for j in range(A.shape[0]):
        for s in range(cn):
            packed[s, j] = A[j, c0 + s]


@njit(cache=True)
def columns_block(W, A_prev, c0, cn, packed, out):
    """out[i, c0:c0+cn] = sum_j W[i, j] A_prev[j, c0:c0+cn], through a packed block."""
    _pack_columns(A_prev, c0, cn, packed)
    n_in = W.shape[1]
    block = packed[:cn]
    target = out[:, c0 : c0 + cn]
    for k0 in range(0, n_in, K_CHUNK):
        dot_rows(W, block, target, k0, min(k0 + K_CHUNK, n_in), k0 > 0)


@njit(cache=True)
def _packing_buffer(scratch, n, slot):
    """The C_BLOCK x n packed block of thread `slot`, a C-contiguous view of scratch."""
    size = C_BLOCK * n
    if (slot + 1) * size > scratch.shape[0]:
        raise ValueError("scratch is too short for this many threads; see scratch_length")
    return scratch[slot * size : (slot + 1) * size].reshape((C_BLOCK, n))


@njit(cache=True)
def _forward_block(W, b, code, A_prev, A, block, packed):
    # One block of C_BLOCK samples of forward_layer.
    n_out = W.shape[0]
    c0 = block * C_BLOCK
    cn = min(C_BLOCK, A.shape[1] - c0)
    columns_block(W, A_prev, c0, cn, packed, A)
    for i in range(n_out):
        row = A[i, c0 : c0 + cn]
        for s in range(cn):
            row[s] += b[i]
        activate_row(code, row)


@njit(parallel=True)
def forward_layer(W, b, code, A_prev, A, scratch, parallel=True):
    r"""Forward pass through layer l, tiled; the same result as ``kernels.forward_layer``.

    .. math::

        Z^l_{ic} = \sum_{j=1}^{n^{l-1}} W^l_{ij} A^{l-1}_{jc} + b^l_i,
        \qquad A^l_{ic} = g^l(Z^l_{ic})

    The bias and g are applied to each block of samples right after its sums, while the
    block is still in cache. With `parallel` false the blocks run in this thread, in the
    same order and with the same arithmetic, so the result is bitwise the same.
    `scratch` holds each thread's packed block (`scratch_length`); which thread takes
    which block does not change the result, because each block is packed afresh.
    """
    n_in = W.shape[1]
    n_blocks = (A.shape[1] + C_BLOCK - 1) // C_BLOCK
    if parallel:
        for block in prange(n_blocks):
            packed = _packing_buffer(scratch, n_in, get_thread_id())
            # prange's index is unsigned; as int64 it shares the serial branch's compiled block.
            _forward_block(W, b, code, A_prev, A, np.int64(block), packed)
    else:
        packed = _packing_buffer(scratch, n_in, 0)
        for block in range(n_blocks):
            _forward_block(W, b, code, A_prev, A, block, packed)


@njit(cache=True)
def _hidden_delta_block(W_next_T, dZ_next, code, A, dZ, block, packed):
    # One block of C_BLOCK samples of hidden_delta_to_z.
    n = W_next_T.shape[0]
    c0 = block * C_BLOCK
    cn = min(C_BLOCK, dZ.shape[1] - c0)
    columns_block(W_next_T, dZ_next, c0, cn, packed, dZ)
    for i in range(n):
        multiply_by_derivative_row(code, A[i, c0 : c0 + cn], dZ[i, c0 : c0 + cn])


@njit(parallel=True)
def hidden_delta_to_z(W_next_T, dZ_next, code, A, dZ, scratch, parallel=True):
    r"""dE/dZ^l for a hidden layer l < L, tiled: dE/dA^l, then the factor g^l'.

    .. math::

        \frac{\partial E}{\partial Z^l_{ic}}
        = \Bigl(\sum_{j=1}^{n^{l+1}} \frac{\partial E}{\partial Z^{l+1}_{jc}} W^{l+1}_{ji}\Bigr)
          {g^l}'(Z^l_{ic})

    `W_next_T` is (W^(l+1))^T, copied so that j is contiguous. `scratch` and `parallel`
    as in `forward_layer`.
    """
    n_next = W_next_T.shape[1]
    n_blocks = (dZ.shape[1] + C_BLOCK - 1) // C_BLOCK
    if parallel:
        for block in prange(n_blocks):
            packed = _packing_buffer(scratch, n_next, get_thread_id())
            _hidden_delta_block(W_next_T, dZ_next, code, A, dZ, np.int64(block), packed)
    else:
        packed = _packing_buffer(scratch, n_next, 0)
        for block in range(n_blocks):
            _hidden_delta_block(W_next_T, dZ_next, code, A, dZ, block, packed)


@njit(cache=True)
def _weight_gradient_block(dZ, A_prev, dW, k0, k1, block):
    # Square blocks of ROW_BLOCK rows on both sides keep the rows a tile streams through
    # in L2, instead of sweeping all of A^(l-1) for every 4 rows of dZ^l.
    i0 = block * ROW_BLOCK
    i1 = min(i0 + ROW_BLOCK, dZ.shape[0])
    n_in = A_prev.shape[0]
    for j0 in range(0, n_in, ROW_BLOCK):
        j1 = min(j0 + ROW_BLOCK, n_in)
        dot_rows(dZ[i0:i1], A_prev[j0:j1], dW[i0:i1, j0:j1], k0, k1, k0 > 0)


@njit(parallel=True)
def weight_gradient_chunk(dZ, A_prev, dW, k0, k1, parallel):
    n_blocks = (dZ.shape[0] + ROW_BLOCK - 1) // ROW_BLOCK
    if parallel:
        for block in prange(n_blocks):
            _weight_gradient_block(dZ, A_prev, dW, k0, k1, np.int64(block))
    else:
        for block in range(n_blocks):
            _weight_gradient_block(dZ, A_prev, dW, k0, k1, block)


@njit(cache=True)
def weight_gradient(dZ, A_prev, dW, parallel=True):
    r"""dE/dW^l, tiled; the same sums as ``kernels.weight_gradient``.

    .. math::

        \frac{\partial E}{\partial W^l_{ij}} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc}

    The samples run in chunks, the outer loop, so that both threads work on the same
    chunk of A^(l-1) while it is in the shared cache; each chunk's sums are added to dW
    in chunk order. `parallel` as in `forward_layer`.
    """
    m = dZ.shape[1]
    for k0 in range(0, m, K_CHUNK):
        weight_gradient_chunk(dZ, A_prev, dW, k0, min(k0 + K_CHUNK, m), parallel)
