r"""The three contractions as blocked loops over packed panels, with a register micro-kernel.

The sums are those of ``loopbp.cpu.kernels``; each is one contraction
C[p, q] = sum_k P[p, k] Q[k, q] of two views, with C's rows contiguous. P is packed in
panels of MR rows (`pack_rows`), Q in panels of NR columns (`columns_block`), and K is
the length of k. With n^l the width of layer l and m the number of samples:

=============  =====================  ==========================  ========================
role           forward                dE/dA^l                     dE/dW^l
=============  =====================  ==========================  ========================
C[p, q]        Z^l_ic, written in A   dE/dA^l_ic, written in dZ   dE/dW^l_ij
P[p, k]        W^l_ij                 (W^(l+1))^T_ij, a view      dE/dZ^l_ic
Q[k, q]        A^(l-1)_jc             dE/dZ^(l+1)_jc              (A^(l-1))^T_cj, a view
p              i, n^l values          i, n^l values               i, n^l values
q              c, m values            c, m values                 j, n^(l-1) values
k              j, K = n^(l-1)         j, K = n^(l+1)              c, K = m
function       `forward_layer`        `hidden_delta_to_z`         `weight_gradient`
prange over    blocks of c            blocks of c                 blocks of j
=============  =====================  ==========================  ========================

The views are transposed views, not copies: packing reads them along whichever axis is
contiguous. MR x NR is the register tile of ``loopbp.cpu.simd`` for the host's vector width
and the dtype (``simd.tile_shape``: 14 x 16 for float64 on AVX-512, 6 x 8 on AVX2; see
the table there), not a constant of this module.

The loops are those of Goto's method (as in BLIS), with the roles of rows and columns
swapped because C is row-major here:

- q (the columns of C) is cut into blocks of up to `NC` columns; ``prange`` runs over
  these blocks, so every thread owns the columns of C it writes;
- k is cut into chunks of `KC`; for each chunk the block's Q[k, q] is copied into a
  packed panel of NR columns at a time (for each k, NR values one after another, zeros
  past the edge), sized to stay in L2 while it is used `n_p / MR` times;
- p runs in panels of MR rows; each is packed the same way (MR values per k), stays in
  L1 while it meets every Q panel of the block, and each meeting is one call of the
  register micro-kernel ``simd.register_block``: an MR x NR block of C in registers.

Packing pays when a packed value is used many times. Where it is not, the operand is read
where it lies, through ``simd.register_block_strided``: P (W^l or (W^(l+1))^T) when C has
few panels of columns (`IN_PLACE_PANELS`, a mini-batch), and Q (A^(l-1) or dE/dZ^(l+1),
whose rows are contiguous) when C has few panels of rows (`Q_IN_PLACE_PANELS`, a narrow
layer), but for Q's panel at the edge of its columns, which is packed. The arithmetic is
the same either way, so the results are bitwise the same.

Tiles at the edges (widths that are not multiples of MR or NR) run the same micro-kernel
on the zero-padded panels, and write back only their part inside C (masked stores).

Every element's sum runs over k in chunk order, one fused multiply-add per step inside a
chunk, and the chunk sums are added to C in order; how q is cut into blocks, and which
thread takes which block, never changes a sum: 1 thread and N threads give bitwise equal
results. The elementwise steps that follow a contraction run on each panel of MR rows of
a block right after its last chunk, while it is in cache: the bias and g in the forward pass,
g' in dE/dA; and dE/db is summed from each row of dE/dZ while dE/dW packs it.
"""

import numpy as np
from numba import get_thread_id, njit, prange

from . import simd
from .activation_rows import activate_row, multiply_by_derivative_row

#: Bytes of one k chunk of a packed row (KC = KC_BYTES / itemsize: 256 float64, 512
#: float32): an MR-row panel of P, 28 KiB with MR = 14, stays in a 48 KiB L1.
KC_BYTES = 2048
#: Fewest values of P worth packing with threads (W^l of a small network is not).
PARALLEL_PACKING = 65536
#: Columns per block: a packed KC x NC block of Q is 1 MiB, half a 2 MiB L2.
NC = 512
#: Up to this many panels of NR columns of C, the forward pass and dE/dA read P (W^l or
#: (W^(l+1))^T) where it lies instead of packing it: each value of P then meets so few
#: columns that packing it (a read and a write) costs as much as its multiply-adds.
#: Measured on one thread of an AMD EPYC (Zen 3, AVX2), P of 128 x 784, 256 x 256,
#: 200 x 200 and 64 x 512: in place took 0.35 to 1.07 of the packed time (0.7 at the
#: median) at 1 to 16 panels, 0.8 to 1.0 at 32, and up to 1.2 times as long at 64.
IN_PLACE_PANELS = 32
#: Up to this many panels of MR rows of C, the forward pass and dE/dA read Q (A^(l-1),
#: dE/dZ^(l+1)) where it lies instead of packing it: each value of Q then meets so few
#: rows that packing it costs more than the loads from Q's rows save.
Q_IN_PLACE_PANELS = 2
#: Bytes of a packed panel that `pack_panels` fills at a time from a transposed source
#: (dE/dW^l's Q, (A^(l-1))^T). Filled whole, a 64 KiB panel (512 float32 k of a 32-wide
#: panel) left L1 before its lines were complete: 4 GB/s of packing against 8 to 9 GB/s
#: in blocks of 8 KiB (Intel Xeon, AVX-512, one thread, 2026).
TRANSPOSE_BYTES = 8192


@njit(cache=True)
def read_q_in_place(tile, n_p, Q):
    """Whether `columns_block` reads Q where it lies rather than packing it (`Q_IN_PLACE_PANELS`).

    Only a Q whose rows are contiguous (A^(l-1) and dE/dZ^(l+1), not dE/dW^l's
    (A^(l-1))^T), for a C of n_p rows.
    """
    mr = simd.tile_shape(tile)[0]
    return Q.strides[1] == Q.itemsize and (n_p + mr - 1) // mr <= Q_IN_PLACE_PANELS


@njit(cache=True)
def read_in_place(tile, n_q):
    """Whether a contraction with n_q columns of C reads P in place (`IN_PLACE_PANELS`)."""
    nr = simd.tile_shape(tile)[1]
    return (n_q + nr - 1) // nr <= IN_PLACE_PANELS


def scratch_length(tile, threads, contractions):
    """Length of the per-thread part of the scratch: each thread's packed block of Q.

    Parameters
    ----------
    tile : simd.Tile or None
    threads : int
        The most threads that may run (``numba.config.NUMBA_NUM_THREADS``).
    contractions : iterable of (int, int)
        (K, n_q), the summed length and the columns of C, of every contraction the
        scratch will serve: a small network's blocks are small, and so is its scratch.
    """
    if tile is None:
        return 0
    itemsize = np.dtype(tile.dtype).itemsize
    return threads * max((_slot_length(tile, itemsize, K, n_q) for K, n_q in contractions), default=0)


@njit(cache=True)
def _slot_length(tile, itemsize, K, n_q):
    # Room for one block of Q: at most a chunk of k by a block of columns, whole panels.
    nr = simd.tile_shape(tile)[1]
    kc = KC_BYTES // itemsize
    return min(kc, K) * min(NC, (n_q + nr - 1) // nr * nr)


@njit(cache=True)
def thread_buffer(tile, scratch, slot, K, n_q):
    # The packed block of Q of thread `slot` for a K x n_q Q, a view of scratch.
    size = _slot_length(tile, scratch.itemsize, K, n_q)
    if (slot + 1) * size > scratch.shape[0]:
        raise ValueError("scratch is too short for this many threads; see scratch_length")
    return scratch[slot * size : (slot + 1) * size]


@njit(cache=True)
def pack_panels(V, w, packed):
    """packed[(u kn + k) w + s] = V[k, u w + s]: V (kn x n) in panels of w columns.

    For each k a panel holds its w values one after another; past column n they are
    zeros. The source is read along whichever of its axes is contiguous, so that
    memory is read in order: copying is limited by memory, not by the loop.
    """
    kn, n = V.shape
    zero = packed.dtype.type(0)
    panels = (n + w - 1) // w
    if V.strides[1] <= V.strides[0]:
        for k in range(kn):
            row = V[k]
            for u in range(panels):
                width = min(w, n - u * w)
                dst = packed[(u * kn + k) * w : (u * kn + k + 1) * w]
                for s in range(width):
                    dst[s] = row[u * w + s]
                for s in range(width, w):
                    dst[s] = zero
    else:
        # Each column of V fills every w-th value of the panel: a panel larger than
        # TRANSPOSE_BYTES is filled a block of k at a time, so that the lines it writes stay
        # in L1 until all w columns have filled them.
        step = kn
        if kn * w * packed.itemsize > 2 * TRANSPOSE_BYTES:
            step = max(1, TRANSPOSE_BYTES // (w * packed.itemsize))
        for u in range(panels):
            width = min(w, n - u * w)
            panel = packed[u * kn * w : (u + 1) * kn * w]
            for k0 in range(0, kn, step):
                k1 = min(kn, k0 + step)
                for s in range(width):
                    column = V[k0:k1, u * w + s]
                    for k in range(k1 - k0):
                        panel[(k0 + k) * w + s] = column[k]
                for s in range(width, w):
                    for k in range(k0, k1):
                        panel[k * w + s] = zero


@njit(fastmath={"reassoc"}, cache=True)
def _row_sum(row):
    # Vectorised, so in an order fixed by the compiled code alone, not by the threads.
    s = row.dtype.type(0)
    for c in range(row.shape[0]):
        s += row[c]
    return s


@njit(parallel=True)
def pack_rows(tile, P, panels, row_sums, threads=1):
    """Pack P (n_p x K) into `panels`, MR rows at a time (n_p rounded up to a multiple of MR, times K, long).

    Panel t, rows t MR to t MR + MR - 1 of P (zeros past the last), starts at t MR K and
    holds, for each k, its MR values. With a non-empty `row_sums`, also
    row_sums[p] = sum_k P[p, k]. Each panel is one thread's work.
    """
    mr = simd.tile_shape(tile)[0]
    n_p, K = P.shape
    n_panels = (n_p + mr - 1) // mr
    # A small P is packed sooner than a parallel region starts.
    if threads > 1 and n_p * K >= PARALLEL_PACKING:
        for t in prange(n_panels):
            _pack_panel(P, mr, np.int64(t), panels, row_sums)
    else:
        for t in range(n_panels):
            _pack_panel(P, mr, t, panels, row_sums)


@njit(cache=True)
def _pack_panel(P, mr, t, panels, row_sums):
    K = P.shape[1]
    p0 = t * mr
    p1 = min(p0 + mr, P.shape[0])
    pack_panels(P[p0:p1].T, mr, panels[p0 * K : (p0 + mr) * K])
    if row_sums.shape[0] > 0:
        for p in range(p0, p1):
            row_sums[p] = _row_sum(P[p])


@njit(cache=True)
def columns_block(tile, panels, rows, p_steps, Q, C, epilogue, b, code, A, block, n_blocks, scratch, slot):
    """C[p0:p1, q0:q1] = P Q[:, q0:q1] for the columns of `block` (of `n_blocks`, `_block_columns`),
    then `epilogue` on them.

    `rows` = (p0, p1), p0 a multiple of MR: the rows of C that this call computes.

    P (n_p x K) comes packed in `panels` (`pack_rows`) when `p_steps` is (0, 0, 0), else
    lies in `panels` as it is, P[p, k] = panels[start + k k_step + p p_step] for
    `p_steps` = (start, k_step, p_step); the block's Q is packed here, one chunk of k at
    a time. Each panel of MR rows gets its epilogue as soon as its last chunk of k is
    summed, while its MR x NC values are in the L1 or L2 cache (a whole block of a wide
    layer is megabytes, out of cache by the time its last row is summed).
    """
    mr, nr = simd.tile_shape(tile)
    K = Q.shape[0]
    q_block = thread_buffer(tile, scratch, slot, K, Q.shape[1])
    q0, q1 = _block_columns(tile, Q.shape[1], block, n_blocks)
    qn = q1 - q0
    q_panels = (qn + nr - 1) // nr
    # Q read where it lies (`read_q_in_place`, by all C's rows, as the plan says, whatever
    # part of them this call computes): its whole panels of NR columns; the one at its
    # edge, whose rows would be read past their ends, is packed all the same.
    q_in_place = read_q_in_place(tile, C.shape[0], Q)
    whole = qn // nr if q_in_place else 0
    q_row = Q.strides[0] // Q.itemsize
    # Chunks of k as even as they can be (784 = 4 x 196, not 3 x 256 + 16): a short chunk
    # pays a whole write-back of C for a few steps. They depend on K alone, so every
    # sum runs in the same order whatever the blocks and threads.
    kc = KC_BYTES // scratch.itemsize
    n_chunks = (K + kc - 1) // kc
    for chunk in range(n_chunks):
        k0 = chunk * K // n_chunks
        kn = (chunk + 1) * K // n_chunks - k0
        if whole < q_panels:
            pack_panels(Q[k0 : k0 + kn, q0 + whole * nr : q0 + qn], nr, q_block)
        for p0 in range(rows[0], rows[1], mr):
            for u in range(q_panels):
                col = q0 + u * nr
                if p_steps[1] == 0 and u >= whole:
                    simd.register_block(
                        tile,
                        kn,
                        panels,
                        p0 * K + k0 * mr,
                        q_block,
                        (u - whole) * kn * nr,
                        C,
                        p0,
                        col,
                        min(mr, rows[1] - p0),
                        min(nr, q0 + qn - col),
                        k0 > 0,
                    )
                else:
                    if p_steps[1] == 0:  # P packed: (start, k step, p step) = (p0 K + k0 MR, MR, 1)
                        p_start, p_kstep, p_pstep = p0 * K + k0 * mr, mr, 1
                    else:
                        p_start = p_steps[0] + p0 * p_steps[2] + k0 * p_steps[1]
                        p_kstep, p_pstep = p_steps[1], p_steps[2]
                    # Both sources as 1-D views of layout "A", so that one micro-kernel serves.
                    if u < whole:
                        q_source, q_start, q_kstep = Q[0, ::1], k0 * q_row + col, q_row
                    else:
                        q_source, q_start, q_kstep = q_block[::1], (u - whole) * kn * nr, nr
                    simd.register_block_strided(
                        tile,
                        kn,
                        panels,
                        p_start,
                        p_kstep,
                        p_pstep,
                        q_source,
                        q_start,
                        q_kstep,
                        C,
                        p0,
                        col,
                        min(mr, rows[1] - p0),
                        min(nr, q0 + qn - col),
                        k0 > 0,
                    )
            if chunk == n_chunks - 1:
                _epilogue(epilogue, b, code, A, C, p0, min(p0 + mr, rows[1]), q0, q1)
    if K == 0:
        # No k at all: the sum is empty.
        for p in range(rows[0], rows[1]):
            for s in range(qn):
                C[p, q0 + s] = 0
        _epilogue(epilogue, b, code, A, C, rows[0], rows[1], q0, q1)


# Called, not inlined, so that the loop nest around the micro-kernel compiles without it.
@njit(cache=True)
def _epilogue(epilogue, b, code, A, C, p0, p1, c0, c1):
    # `epilogue` on rows p0..p1 - 1 of C, columns c0..c1 - 1, whose sums are complete.
    if epilogue == BIAS_AND_G:
        for i in range(p0, p1):
            row = C[i, c0:c1]
            for s in range(c1 - c0):
                row[s] += b[i]
            activate_row(code, row)
    elif epilogue == TIMES_G_PRIME:
        for i in range(p0, p1):
            multiply_by_derivative_row(code, A[i, c0:c1], C[i, c0:c1])


@njit(cache=True)
def _block_count(tile, n_q, threads):
    """How many blocks the n_q columns of C are cut into.

    Enough that no block is wider than NC, and a multiple of the thread count, so that
    the static schedule of ``prange`` gives every thread the same number of blocks.
    """
    nr = simd.tile_shape(tile)[1]
    n_panels = (n_q + nr - 1) // nr
    n_blocks = (n_panels * nr + NC - 1) // NC
    if threads > 1:
        n_blocks = (n_blocks + threads - 1) // threads * threads
    return max(1, min(n_blocks, n_panels))


@njit(cache=True)
def _block_columns(tile, n_q, block, n_blocks):
    """Columns q0..q1 - 1 of `block`: whole panels of NR, as evenly shared as they can be."""
    nr = simd.tile_shape(tile)[1]
    n_panels = (n_q + nr - 1) // nr
    return min(n_q, block * n_panels // n_blocks * nr), min(n_q, (block + 1) * n_panels // n_blocks * nr)


#: What `_contraction` does to each panel of rows of C once its sums are complete,
#: while the panel is in cache. NumPy integers, not Python ints: Numba would type a
#: Python int constant as a literal and compile `_contraction` once for each value.
NO_EPILOGUE = np.int64(0)  # dE/dW: nothing
BIAS_AND_G = np.int64(1)  # forward: C_ic = g(C_ic + b_i)
TIMES_G_PRIME = np.int64(2)  # dE/dZ: C_ic *= g'(Z_ic), written with A_ic = g(Z_ic)


@njit(parallel=True)
def _contraction(tile, panels, n_p, p_steps, Q, C, epilogue, b, code, A, scratch, threads):
    """C = P Q, with P (n_p x K) in `panels`, and `epilogue` on each panel of C's rows.

    P is packed (`pack_rows`) for `p_steps` = (0, 0, 0), else read in place as
    `columns_block` says.

    The one parallel loop of all three contractions: Q comes as a view of any strides
    (layout "A"), and the epilogue as a number, so that Numba compiles this function,
    its parallel region and the micro-kernel once per tile rather than once per
    contraction (each copy cost seconds of compile time). `b`, `code` and `A` are read
    by the epilogue alone.
    """
    if C.strides[1] != C.itemsize:
        raise ValueError("C's rows must be contiguous: the micro-kernel writes them as vectors")
    n_blocks = _block_count(tile, C.shape[1], threads)
    if threads > 1:
        # Fewer blocks of columns than threads (a mini-batch's m, or dE/dW^l of a narrow
        # input): the rows are cut into parts as well, whole panels of MR each, so that
        # every thread has work. Each element of C is still one sum, in the same order.
        parts = _row_parts(tile, n_p, n_blocks, threads)
        for item in prange(n_blocks * parts):
            block, part = np.int64(item) // parts, np.int64(item) % parts
            # prange's index is unsigned; as int64 it shares the serial branch's compiled block.
            columns_block(
                tile,
                panels,
                _part_rows(tile, n_p, part, parts),
                p_steps,
                Q,
                C,
                epilogue,
                b,
                code,
                A,
                block,
                n_blocks,
                scratch,
                get_thread_id(),
            )
    else:
        rows = (np.int64(0), np.int64(n_p))
        for block in range(n_blocks):
            # np.int64(0), not 0: a literal 0 would compile every block function again.
            columns_block(
                tile, panels, rows, p_steps, Q, C, epilogue, b, code, A, block, n_blocks, scratch, np.int64(0)
            )


@njit(cache=True)
def _row_parts(tile, n_p, n_blocks, threads):
    """Into how many parts the rows are cut: enough that blocks x parts >= threads."""
    mr = simd.tile_shape(tile)[0]
    if n_blocks >= threads:
        return np.int64(1)
    return np.int64(max(1, min((threads + n_blocks - 1) // n_blocks, (n_p + mr - 1) // mr)))


@njit(cache=True)
def _part_rows(tile, n_p, part, parts):
    """Rows (p0, p1) of `part` of `parts`: whole panels of MR, as evenly shared as they can be."""
    mr = simd.tile_shape(tile)[0]
    panels = (n_p + mr - 1) // mr
    return np.int64(min(n_p, part * panels // parts * mr)), np.int64(
        min(n_p, (part + 1) * panels // parts * mr)
    )


# The three public kernels are inlined into their callers (in Numba's IR, before typing):
# each compiled level re-optimises all the code linked into it, the micro-kernel too.
@njit(cache=True, inline="always")
def forward_layer(tile, W, b, code, A_prev, A, panels, scratch, threads=1):
    r"""Forward pass through layer l, packed; the same sums as ``kernels.forward_layer``.

    .. math::

        Z^l_{ic} = \sum_{j=1}^{n^{l-1}} W^l_{ij} A^{l-1}_{jc} + b^l_i,
        \qquad A^l_{ic} = g^l(Z^l_{ic})

    Parameters
    ----------
    tile : simd.Tile
        The register tile.
    W, b, code, A_prev, A
        As in ``kernels.forward_layer``; A's rows must be contiguous.
    panels : 1-D array
        Room for W packed in panels ((n^l rounded up to MR) x n^(l-1)).
    scratch : 1-D array
        Each thread's packed block of A^(l-1) (`scratch_length`).
    threads : int
        How many threads share the blocks of samples (``numba.get_num_threads()``), or
        1 to run them all in the calling thread. The result is bitwise the same either
        way: only how the samples are cut into blocks depends on it.
    """
    n_in = W.shape[1]
    if read_in_place(tile, A.shape[1]):
        # W's rows where they lie, in theta: (start, k step, p step) = (0, 1, n^(l-1)).
        P, p_steps = W.reshape(W.shape[0] * n_in), (np.int64(0), np.int64(1), np.int64(n_in))
    else:
        pack_rows(tile, W, panels, panels[:0], threads)
        P, p_steps = panels, (np.int64(0), np.int64(0), np.int64(0))
    # A_prev[:, :] is a view of layout "A", as Q is in the other two: see `_contraction`.
    _contraction(tile, P, A.shape[0], p_steps, A_prev[:, :], A, BIAS_AND_G, b, code, A, scratch, threads)


@njit(cache=True, inline="always")
def hidden_delta_to_z(tile, W_next, dZ_next, code, A, dZ, panels, scratch, threads=1):
    r"""dE/dZ^l for a hidden layer l < L, packed: dE/dA^l, then the factor g^l'.

    .. math::

        \frac{\partial E}{\partial Z^l_{ic}}
        = \Bigl(\sum_{j=1}^{n^{l+1}} \frac{\partial E}{\partial Z^{l+1}_{jc}} W^{l+1}_{ji}\Bigr)
          {g^l}'(Z^l_{ic})

    `W_next` is W^(l+1) itself: packing reads it transposed, so no copy of it is made.
    `panels` holds (W^(l+1))^T packed ((n^l rounded up to MR) x n^(l+1)); `tile`,
    `scratch` and `threads` as in `forward_layer`.
    """
    n_out, n = W_next.shape
    if read_in_place(tile, dZ.shape[1]):
        # (W^(l+1))^T_ij = W^(l+1)_ji: (start, k step, p step) = (0, n^l, 1).
        P, p_steps = W_next.reshape(n_out * n), (np.int64(0), np.int64(n), np.int64(1))
    else:
        pack_rows(tile, W_next.T, panels, panels[:0], threads)
        P, p_steps = panels, (np.int64(0), np.int64(0), np.int64(0))
    _contraction(tile, P, n, p_steps, dZ_next[:, :], dZ, TIMES_G_PRIME, panels[:0], code, A, scratch, threads)


@njit(cache=True, inline="always")
def weight_gradient(tile, dZ, A_prev, dW, db, panels, scratch, threads=1):
    r"""dE/dW^l and dE/db^l, packed; the same sums as ``kernels.weight_gradient`` and
    ``kernels.bias_gradient``.

    .. math::

        \frac{\partial E}{\partial W^l_{ij}} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc},
        \qquad
        \frac{\partial E}{\partial b^l_i} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}}

    dE/db is summed while dE/dZ^l is packed ((n^l rounded up to MR) x m), a row at a time
    while the row is in cache. `tile`, `scratch` and `threads` as in `forward_layer`;
    dW's rows must be contiguous.
    """
    pack_rows(tile, dZ, panels, db, threads)
    # The epilogue's code and A go unread; code is an int64 as in the other two calls.
    p_steps = (np.int64(0), np.int64(0), np.int64(0))
    _contraction(
        tile,
        panels,
        dW.shape[0],
        p_steps,
        A_prev.T[:, :],
        dW,
        NO_EPILOGUE,
        db,
        NO_EPILOGUE,
        dW,
        scratch,
        threads,
    )
