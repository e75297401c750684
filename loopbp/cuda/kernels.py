r"""The back-propagation derivation as CUDA kernels, one equation to one kernel.

The same equations as ``loopbp.cpu.kernels``, for Numba's CUDA target (``loopbp.cuda.target``
says which package provides it). Where the CPU kernels loop over i with ``prange``, here
each GPU thread computes a small block of the elements (i, c) of Z^l and dE/dZ^l, or
(i, j) of dE/dW^l, and the loops that remain in a thread are the equation's sums:

- the three contractions (the forward pass, dE/dA^l, dE/dW^l) are tiled: a block of
  threads x threads threads writes a tile x tile block of the output, each thread a
  per_thread x per_thread register block of it, strided by threads so that
  neighbouring threads touch neighbouring samples c; the sum runs depth terms at a
  time through shared memory;
- b^l and g^l are applied as Z^l is written (the forward pass), g' as dE/dA^l is written,
  so that dE/dA^l itself is never stored: the hidden-layer kernel writes dE/dZ^l;
- dE/db^l is dE/dW^l's column for a constant input A^(l-1)_c = 1: the weight-gradient
  kernel computes it as a column j = n^(l-1) of its output.

Every sum runs in a fixed order, with no atomics, so a run gives bitwise the same results
as the last: a sum over j (n^(l-1) or n^(l+1) terms) runs in one thread from j = 1 up; a
sum over c (m terms) runs in chunks of `KernelShape.chunk` samples, each in one thread
from its first c up, and the chunks' sums are then added in chunk order (`sum_chunks`);
E's squares are summed per block of reduce_threads x elements_per_thread elements by a
fixed tree (`output_delta`), and the blocks' sums in a fixed order (`add_error`). The
order differs from the CPU loops', so the results agree with them to rounding, not
bitwise.

The kernels are made for one dtype and `KernelShape` at a time (`kernels_for`): the
shared and local arrays need their element type and size when the kernel is compiled,
and every constant is made in that dtype, so float32 work stays float32. Only E is
accumulated in float64.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from ..activations import RELU, SIGMOID, TANH
from .target import cuda_module

# A module global, not a local of `kernels_for`: the CUDA simulator swaps the kernels'
# global ``cuda`` for its own, and only a global. Importing this module needs the package.
cuda = cuda_module()


class KernelShape(NamedTuple):
    """The block and tile sizes the kernels are compiled with.

    `DEFAULT_SHAPE` is what the cuda backend runs; the tests also run the same kernels
    with a much smaller shape (`TINY_SHAPE`), under which the CUDA simulator is fast and
    small problems already span several blocks and chunks.
    """

    #: Threads per block side in the contraction kernels: threads x threads threads.
    threads: int
    #: Output elements per thread side: a thread holds per_thread x per_thread sums in registers.
    per_thread: int
    #: Terms of a contraction's sum held in shared memory at a time.
    depth: int
    #: Samples per chunk of a sum over c: the chunks' sums are added in a fixed order, so
    #: the result does not depend on how many blocks run at once. A multiple of depth.
    chunk: int
    #: Threads per block of the one-dimensional kernels (E's squares, the step); a power of 2.
    reduce_threads: int
    #: Elements of (A^L - Y)^2 each thread of `output_delta` sums before the block's tree.
    elements_per_thread: int

    @property
    def tile(self) -> int:
        """Output elements per block side in the contraction kernels."""
        return self.threads * self.per_thread


#: 16 x 16 threads, each writing 4 x 4 outputs of a 64 x 64 tile; 16 terms per shared step.
#: Chunks of 512 samples: at m = 10^4 the smallest layer of 784-256-128-10 (10 x 129
#: gradient entries, 3 tiles) still gets 60 blocks for the GPU's SMs; at m = 10^6 the
#: largest layer's chunk sums (1,954 chunks of 256 x 785) take 1.6 GB in float32, written
#: and read once: 0.016 bytes per multiply-add of its 2 x 10^11.
DEFAULT_SHAPE = KernelShape(
    threads=16, per_thread=4, depth=16, chunk=512, reduce_threads=256, elements_per_thread=8
)
#: For the simulator: 2 x 2 threads writing 2 x 2 outputs each, 4 terms per step, chunks of 8.
TINY_SHAPE = KernelShape(threads=2, per_thread=2, depth=4, chunk=8, reduce_threads=4, elements_per_thread=2)
#: The kernels `kernels_for` makes, by name.
KERNELS = (
    "forward_layer",
    "output_delta",
    "add_error",
    "hidden_delta",
    "weight_gradient",
    "sum_chunks",
    "descend",
    "check_step",
    "gather",
)
#: The most blocks one launch asks for along the grid's z axis (CUDA's limit is 65,535).
MAX_GRID_Z = 65535


def blocks(n: int, per_block: int) -> int:
    """How many blocks of `per_block` cover n elements (at least 1)."""
    return max(1, -(-n // per_block))


@functools.cache
def kernels_for(dtype: np.dtype, shape: KernelShape = DEFAULT_SHAPE) -> SimpleNamespace:
    """The kernels for arrays of `dtype` (float32 or float64) and `shape`, compiled on first launch."""
    dtype = np.dtype(dtype)
    # The shape's numbers as plain locals: the kernels capture them as compile-time constants.
    THREADS, PER_THREAD, DEPTH, CHUNK, REDUCE_THREADS, ELEMENTS_PER_THREAD = shape
    TILE = shape.tile
    tile_shape, padded_shape = (DEPTH, TILE), (DEPTH, TILE + 1)
    real = dtype.type  # the dtype's scalar type: casts and constants in the arrays' dtype
    zero, one = real(0), real(1)
    # Local per-thread room: element type and size fixed when the kernel compiles.
    local_shape = (PER_THREAD, PER_THREAD)

    @cuda.jit(device=True)
    def g(code, z):
        # g^l(z), as ``loopbp.cpu.activation_rows.activate_row`` computes it: exp only of -|z| <= 0.
        if code == SIGMOID:
            e = math.exp(-abs(z))
            s = one / (one + e)
            return s if z >= zero else e * s
        if code == RELU:
            return zero if z < zero else z
        if code == TANH:
            return math.tanh(z)
        return z

    @cuda.jit(device=True)
    def times_g_prime(code, a, d):
        # d g^l'(z), with g' written in terms of a = g^l(z) (``activation_rows.multiply_by_derivative_row``).
        if code == SIGMOID:
            return d * (a * (one - a))
        if code == RELU:
            return d if a > zero else zero
        if code == TANH:
            return d * (one - a * a)
        return d

    @cuda.jit
    def forward_layer(theta, w_offset, code, A_prev, A):
        r"""Forward pass through layer l: Z^l and then A^l, written into `A`.

        .. math::

            Z^l_{ic} = \sum_{j=1}^{n^{l-1}} W^l_{ij} A^{l-1}_{jc} + b^l_i,
            \qquad A^l_{ic} = g^l(Z^l_{ic})

        One thread per (i, c) of a per_thread x per_thread register block.

        Parameters
        ----------
        theta : 1-D device array
            The parameters (``loopbp.layout``); W^l starts at `w_offset`, b^l follows it.
        w_offset : int
        code : int
            The activation code of g^l.
        A_prev : (n^(l-1), m) device array
            A^(l-1); A^0 is X.
        A : (n^l, m) device array
            Output, A^l.
        """
        n_out, m = A.shape
        n_in = A_prev.shape[0]
        # W's tile is stored transposed, [j, i], and padded by one column: the loads run
        # along j and would otherwise hit one shared-memory bank.
        W_tile = cuda.shared.array(padded_shape, real)
        A_tile = cuda.shared.array(tile_shape, real)
        Z = cuda.local.array(local_shape, real)
        a = cuda.local.array(PER_THREAD, real)
        ti, tc = cuda.threadIdx.y, cuda.threadIdx.x
        i0, c0 = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE
        t = ti * THREADS + tc
        for r in range(PER_THREAD):
            for s in range(PER_THREAD):
                Z[r, s] = zero
        for j0 in range(0, n_in, DEPTH):
            for k in range(t, DEPTH * TILE, THREADS * THREADS):
                jj, ii = k % DEPTH, k // DEPTH
                i, j = i0 + ii, j0 + jj
                W_tile[jj, ii] = theta[w_offset + i * n_in + j] if i < n_out and j < n_in else zero
                cc, jj = k % TILE, k // TILE
                j, c = j0 + jj, c0 + cc
                A_tile[jj, cc] = A_prev[j, c] if j < n_in and c < m else zero
            cuda.syncthreads()
            for jj in range(DEPTH):
                for s in range(PER_THREAD):
                    a[s] = A_tile[jj, tc + s * THREADS]
                for r in range(PER_THREAD):
                    w = W_tile[jj, ti + r * THREADS]
                    for s in range(PER_THREAD):
                        Z[r, s] += w * a[s]
            cuda.syncthreads()
        b_offset = w_offset + n_out * n_in
        for r in range(PER_THREAD):
            i = i0 + ti + r * THREADS
            if i < n_out:
                b = theta[b_offset + i]
                for s in range(PER_THREAD):
                    c = c0 + tc + s * THREADS
                    if c < m:
                        A[i, c] = g(code, Z[r, s] + b)

    @cuda.jit
    def output_delta(A, Y, code, m_real, write, dZ, squares):
        r"""dE/dZ^L, and E's squares summed per block.

        .. math::

            \frac{\partial E}{\partial Z^L_{ic}}
            = \tfrac{1}{m}\left(A^L_{ic} - Y_{ic}\right) {g^L}'(Z^L_{ic}),
            \qquad
            E = \tfrac{1}{2m} \sum_{i=1}^{n^L} \sum_{c=1}^m \left(A^L_{ic} - Y_{ic}\right)^2

        (The post's range i = 1..n^(l-1) for dE/dA^L is a typo for i = 1..n^L.) A block
        takes reduce_threads x elements_per_thread consecutive elements (i, c); its
        threads sum their squares in float64 and a fixed tree adds the threads' sums.

        Parameters
        ----------
        A, Y : (n^L, m) device arrays
        code : int
            The activation code of g^L.
        m_real : scalar of the dtype
            m, by which each A - Y is divided, as the CPU kernels divide.
        write : bool
            Whether to write dE/dZ^L (False: E alone).
        dZ : (n^L, m) device array
            Output, dE/dZ^L, when `write`; left as it is otherwise.
        squares : float64 device array, one per block
            Output, each block's sum of (A^L_ic - Y_ic)^2.
        """
        n, m = A.shape
        block_sums = cuda.shared.array(REDUCE_THREADS, np.float64)
        t = cuda.threadIdx.x
        first = cuda.blockIdx.x * (REDUCE_THREADS * ELEMENTS_PER_THREAD)
        s = 0.0
        for q in range(ELEMENTS_PER_THREAD):
            e = first + q * REDUCE_THREADS + t
            if e < n * m:
                i, c = e // m, e % m
                r = A[i, c] - Y[i, c]
                if write:
                    dZ[i, c] = times_g_prime(code, A[i, c], r / m_real)
                s += np.float64(r) * np.float64(r)
        block_sums[t] = s
        cuda.syncthreads()
        half = REDUCE_THREADS // 2
        while half > 0:
            if t < half:
                block_sums[t] += block_sums[t + half]
            cuda.syncthreads()
            half //= 2
        if t == 0:
            squares[cuda.blockIdx.x] = block_sums[0]

    @cuda.jit
    def add_error(squares, halves, weight, history, slot, failed, epoch):
        r"""history[slot] += weight E, with E = (sum of `squares`) / `halves` (= 2m).

        One block: thread t sums squares t, t + reduce_threads, ... in order, and a fixed
        tree adds the threads' sums. A non-finite E marks `failed` (see `descend`).
        """
        block_sums = cuda.shared.array(REDUCE_THREADS, np.float64)
        t = cuda.threadIdx.x
        s = 0.0
        for k in range(t, squares.shape[0], REDUCE_THREADS):
            s += squares[k]
        block_sums[t] = s
        cuda.syncthreads()
        half = REDUCE_THREADS // 2
        while half > 0:
            if t < half:
                block_sums[t] += block_sums[t + half]
            cuda.syncthreads()
            half //= 2
        if t == 0:
            E = block_sums[0] / halves
            history[slot] += weight * E
            if (math.isinf(E) or math.isnan(E)) and failed[0] == 0:
                failed[0] = epoch + 1

    @cuda.jit
    def hidden_delta(theta, w_offset, code, dZ_next, A, dZ):
        r"""dE/dZ^l for a hidden layer l < L, from layer l+1: dE/dA^l and g' at once.

        .. math::

            \frac{\partial E}{\partial Z^l_{ic}}
            = {g^l}'(Z^l_{ic}) \sum_{j=1}^{n^{l+1}} \frac{\partial E}{\partial Z^{l+1}_{jc}} W^{l+1}_{ji}

        One thread per (i, c) of a per_thread x per_thread register block.

        Parameters
        ----------
        theta : 1-D device array
            The parameters; W^(l+1) starts at `w_offset`.
        w_offset : int
        code : int
            The activation code of g^l.
        dZ_next : (n^(l+1), m) device array
            dE/dZ^(l+1).
        A : (n^l, m) device array
            A^l, from which g^l' is computed.
        dZ : (n^l, m) device array
            Output, dE/dZ^l.
        """
        n, m = dZ.shape
        n_next = dZ_next.shape[0]
        W_tile = cuda.shared.array(tile_shape, real)
        D_tile = cuda.shared.array(tile_shape, real)
        S = cuda.local.array(local_shape, real)
        d = cuda.local.array(PER_THREAD, real)
        ti, tc = cuda.threadIdx.y, cuda.threadIdx.x
        i0, c0 = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE
        t = ti * THREADS + tc
        for r in range(PER_THREAD):
            for s in range(PER_THREAD):
                S[r, s] = zero
        for j0 in range(0, n_next, DEPTH):
            for k in range(t, DEPTH * TILE, THREADS * THREADS):
                # W^(l+1)_ji for fixed j is contiguous in i: both tiles load along a row.
                ii, jj = k % TILE, k // TILE
                i, j = i0 + ii, j0 + jj
                W_tile[jj, ii] = theta[w_offset + j * n + i] if i < n and j < n_next else zero
                c = c0 + ii
                D_tile[jj, ii] = dZ_next[j, c] if j < n_next and c < m else zero
            cuda.syncthreads()
            for jj in range(DEPTH):
                for s in range(PER_THREAD):
                    d[s] = D_tile[jj, tc + s * THREADS]
                for r in range(PER_THREAD):
                    w = W_tile[jj, ti + r * THREADS]
                    for s in range(PER_THREAD):
                        S[r, s] += w * d[s]
            cuda.syncthreads()
        for r in range(PER_THREAD):
            i = i0 + ti + r * THREADS
            if i < n:
                for s in range(PER_THREAD):
                    c = c0 + tc + s * THREADS
                    if c < m:
                        dZ[i, c] = times_g_prime(code, A[i, c], S[r, s])

    @cuda.jit
    def weight_gradient(dZ, A_prev, chunk_sums):
        r"""dE/dW^l and dE/db^l, summed over c one chunk of `KernelShape.chunk` samples at a time.

        .. math::

            \frac{\partial E}{\partial W^l_{ij}}
            = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc},
            \qquad
            \frac{\partial E}{\partial b^l_i} = \sum_{c=1}^m \frac{\partial E}{\partial Z^l_{ic}} \cdot 1

        dE/db^l is the column j = n^(l-1) of the same sum, for an input that is 1 for every
        sample. One thread per (i, j) of a per_thread x per_thread register block; the
        grid's z index runs over the chunks (`sum_chunks` adds them).

        Parameters
        ----------
        dZ : (n^l, m) device array
            dE/dZ^l.
        A_prev : (n^(l-1), m) device array
            A^(l-1).
        chunk_sums : (chunks, n^l, n^(l-1) + 1) device array
            Output, the sum over each chunk's samples.
        """
        n_out, m = dZ.shape
        n_in = A_prev.shape[0]
        D_tile = cuda.shared.array(padded_shape, real)
        A_tile = cuda.shared.array(padded_shape, real)
        S = cuda.local.array(local_shape, real)
        a = cuda.local.array(PER_THREAD, real)
        ti, tj = cuda.threadIdx.y, cuda.threadIdx.x
        i0, j0 = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE
        t = ti * THREADS + tj
        for chunk in range(cuda.blockIdx.z, chunk_sums.shape[0], cuda.gridDim.z):
            start = chunk * CHUNK
            stop = start + CHUNK if start + CHUNK < m else m
            for r in range(PER_THREAD):
                for s in range(PER_THREAD):
                    S[r, s] = zero
            for cs in range(start, stop, DEPTH):
                for k in range(t, DEPTH * TILE, THREADS * THREADS):
                    # Both operands are rows along c: each tile loads along c, stored [c, i] and [c, j].
                    cc, ii = k % DEPTH, k // DEPTH
                    c = cs + cc
                    i, j = i0 + ii, j0 + ii
                    D_tile[cc, ii] = dZ[i, c] if i < n_out and c < stop else zero
                    if j < n_in and c < stop:
                        A_tile[cc, ii] = A_prev[j, c]
                    else:
                        A_tile[cc, ii] = one if j == n_in and c < stop else zero
                cuda.syncthreads()
                for cc in range(DEPTH):
                    for s in range(PER_THREAD):
                        a[s] = A_tile[cc, tj + s * THREADS]
                    for r in range(PER_THREAD):
                        d = D_tile[cc, ti + r * THREADS]
                        for s in range(PER_THREAD):
                            S[r, s] += d * a[s]
                cuda.syncthreads()
            for r in range(PER_THREAD):
                i = i0 + ti + r * THREADS
                if i < n_out:
                    for s in range(PER_THREAD):
                        j = j0 + tj + s * THREADS
                        if j <= n_in:
                            chunk_sums[chunk, i, j] = S[r, s]

    @cuda.jit
    def sum_chunks(chunk_sums, grad, w_offset):
        r"""dE/dW^l_ij and dE/db^l_i: the chunks' sums added in chunk order, written into `grad`.

        .. math::

            \frac{\partial E}{\partial W^l_{ij}} = \sum_{k} S_{kij},
            \qquad \frac{\partial E}{\partial b^l_i} = \sum_{k} S_{k i n^{l-1}}

        One thread per (i, j), j = n^(l-1) being b^l's column. `grad` is laid out like theta;
        W^l starts at `w_offset`, b^l follows it.
        """
        j, i = cuda.grid(2)
        chunks, n_out, columns = chunk_sums.shape
        n_in = columns - 1
        if i < n_out and j < columns:
            s = zero
            for k in range(chunks):
                s += chunk_sums[k, i, j]
            if j < n_in:
                grad[w_offset + i * n_in + j] = s
            else:
                grad[w_offset + n_out * n_in + i] = s

    @cuda.jit
    def descend(theta, grad, alpha, failed):
        r"""One step theta <- theta - alpha grad E, in place, unless `failed` is marked.

        .. math:: \theta_k \leftarrow \theta_k - \alpha \frac{\partial E}{\partial \theta_k}

        `failed[0]` is 0, or 1 + the epoch whose E, gradient or step was first found not
        finite (by `add_error` or `check_step`); from then on no step is taken, so theta
        keeps the last finite parameters, as the CPU loop keeps them.
        """
        k = cuda.grid(1)
        if k < theta.shape[0] and failed[0] == 0:
            theta[k] -= alpha * grad[k]

    @cuda.jit
    def check_step(theta, grad, alpha, failed, epoch):
        """Mark `failed` with 1 + `epoch` if any theta_k - alpha grad_k is not finite.

        Every thread that finds one writes the same value, so the result is the same
        whichever writes last.
        """
        k = cuda.grid(1)
        if k < theta.shape[0] and failed[0] == 0:
            step = theta[k] - alpha * grad[k]
            if math.isinf(step) or math.isnan(step):
                failed[0] = epoch + 1

    @cuda.jit
    def gather(source, order, start, batch):
        """batch[j, c] = source[j, order[start + c]]: one mini-batch's samples, in the shuffled order."""
        c, j = cuda.grid(2)
        if j < batch.shape[0] and c < batch.shape[1]:
            batch[j, c] = source[j, order[start + c]]

    made = locals()
    return SimpleNamespace(dtype=dtype, shape=shape, **{name: made[name] for name in KERNELS})
