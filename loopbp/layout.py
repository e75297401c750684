"""Where everything lives in the flat buffers of every backend: theta, A^l and the deltas.

- The parameters live in one flat vector theta holding, for l = 1..L, W^l (n^l x n^(l-1),
  row-major) followed by b^l (n^l). The gradient is laid out the same way.
- A^0 = X and Y are (n^0, m) and (n^L, m), C-contiguous, one sample per column.
- A^1..A^L live one after another in one flat buffer; the forward pass writes Z^l there
  and overwrites it with A^l = g^l(Z^l), because every g' is computed from A^l (see
  ``loopbp.activations``).
- The backward pass alternates between two delta buffers of max_l n^l x m: each holds
  dE/dA^l and is turned in place into dE/dZ^l.
- The loops backend's scratch buffer is laid out in ``loopbp.cpu.scratch``.

Each offset is written once, as a ``register_jitable`` function: Python calls it as plain
Python (`unpack` makes the views W^l, b^l of theta with it), and the compiled drivers of
``loopbp.cpu.layer_loop`` and ``loopbp.cpu.narrow_kernels`` call the same function, compiled.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numba.extending import register_jitable


@register_jitable(inline="always")
def matrix(buffer, offset, rows, cols):
    """The (rows, cols) C-ordered view of the 1-D `buffer` starting at `offset`."""
    return buffer[offset : offset + rows * cols].reshape((rows, cols))


@register_jitable
def weight_offset(sizes, l):
    """Offset of W^l in theta; b^l follows it, n^l n^(l-1) further on."""
    # Recomputed on each use rather than tabulated: a table would be an allocation per call.
    offset = 0
    for k in range(1, l):
        offset += (sizes[k - 1] + 1) * sizes[k]
    return offset


@register_jitable(inline="always")
def weights(theta, sizes, l):
    """W^l, a view of theta."""
    return matrix(theta, weight_offset(sizes, l), sizes[l], sizes[l - 1])


@register_jitable(inline="always")
def biases(theta, sizes, l):
    """b^l, a view of theta."""
    start = weight_offset(sizes, l) + sizes[l] * sizes[l - 1]
    return theta[start : start + sizes[l]]


@register_jitable
def activation_offset(sizes, m, l):
    """Offset of A^l in the activation buffer."""
    offset = 0
    for k in range(1, l):
        offset += sizes[k] * m
    return offset


@register_jitable(inline="always")
def output(activations, sizes, m):
    """A^L, the (n^L, m) view of the activation buffer."""
    L = len(sizes) - 1
    return matrix(activations, activation_offset(sizes, m, L), sizes[L], m)


def parameter_count(sizes: Sequence[int]) -> int:
    """p = sum_l (n^(l-1) + 1) n^l, the length of theta."""
    return weight_offset(sizes, len(sizes))


def pack(W: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """W^1, b^1, ..., W^L, b^L copied into a new theta (one dtype, checked by the caller)."""
    return np.concatenate([a.ravel() for pair in zip(W, b) for a in pair])


def unpack(flat: np.ndarray, sizes: tuple[int, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Lists of the views of `flat` (laid out like theta) that are W^l and b^l."""
    W, b = [], []
    for w0, n_out, n_in, b0 in _views(sizes):
        W.append(flat[w0:b0].reshape(n_out, n_in))
        b.append(flat[b0 : b0 + n_out])
    return W, b


@functools.lru_cache(maxsize=64)
def _views(sizes):
    # (start of W^l, n^l, n^(l-1), start of b^l) per layer, as Python ints: `unpack` runs
    # on every gradient, and slicing with NumPy integers costs several times more.
    sizes = tuple(int(n) for n in sizes)
    return tuple(
        (weight_offset(sizes, l), sizes[l], sizes[l - 1], weight_offset(sizes, l) + sizes[l] * sizes[l - 1])
        for l in range(1, len(sizes))
    )
