"""The scratch buffer of the loops backend: packed panels shared by the threads, then each thread's block.

The packed kernels (``packed_kernels``) copy the left operand of each contraction into
panels of MR rows, which every thread reads, and give each thread a block of its own for
its panels of the right operand; the portable kernels (``tiled_kernels``) share (W^l)^T
and give each thread a row of sums. One flat buffer holds both parts, sized here for the
largest layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit
from numba.extending import register_jitable

from . import packed_kernels, simd, tiled_kernels


@njit(cache=True)
def shared_scratch_length(tile, sizes, m, backward):
    """Length of the part of the scratch that all threads share.

    With a tile: the largest left operand packed in panels of MR rows, W^l (forward),
    dE/dZ^l (dE/dW^l) or (W^(l+1))^T (dE/dA^l). Without (the portable kernels): the
    largest (W^l)^T for l >= 2, for dE/dA^(l-1); nothing for the forward pass alone.
    """
    L = sizes.shape[0] - 1
    n = 0
    if tile is None:
        if backward:
            for l in range(2, L + 1):
                n = max(n, sizes[l] * sizes[l - 1])
    else:
        mr = simd.tile_shape(tile)[0]
        for l in range(1, L + 1):
            rows = (sizes[l] + mr - 1) // mr * mr
            n = max(n, rows * sizes[l - 1])
            if backward:
                n = max(n, rows * m)
                if l < L:
                    n = max(n, rows * sizes[l + 1])
    return n


@register_jitable(inline="always")
def split_scratch(scratch, shared):
    """The shared part of the scratch (`shared` long) and the threads' blocks after it."""
    return scratch[:shared], scratch[shared:]


def scratch_length(tile, sizes: Sequence[int], m: int, backward: bool, threads: int) -> int:
    """Length of the whole scratch buffer: the shared part, then `threads` threads' blocks."""
    shared = shared_scratch_length(tile, np.asarray(sizes, np.int64), m, backward)
    if tile is None:
        return shared + tiled_kernels.scratch_length(max(sizes), threads)
    # (K, columns of C): the forward pass, then dE/dA^(l-1) and dE/dW^l.
    contractions = [(n, m) for n in sizes[:-1]]
    if backward:
        contractions += [(n, m) for n in sizes[2:]] + [(m, n) for n in sizes[:-1]]
    return shared + packed_kernels.scratch_length(tile, threads, contractions)
