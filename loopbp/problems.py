"""Seeded problems: a network and data drawn from seeds, the same for every caller.

``loopbp compare``, the benchmarks (``benchmarks/common.py``) and the tests all build
their problems here, so that a seed means the same network and data everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from .network import Network


def default_activations(L: int) -> tuple[str, ...]:
    """Sigmoid hidden layers and an identity output, as in the series."""
    return ("sigmoid",) * (L - 1) + ("identity",)


def seeded_problem(
    sizes: Sequence[int],
    m: int,
    activations: Sequence[str] | None = None,
    dtype: DTypeLike = np.float64,
    seed: int = 0,
) -> tuple[Network, np.ndarray, np.ndarray]:
    """A seeded network and N(0, 1) data X (n^0, m) and Y (n^L, m).

    Parameters
    ----------
    sizes : sequence of int
        n^0, ..., n^L.
    m : int
        The number of samples.
    activations : sequence of str or None
        One name per layer; None for `default_activations`.
    dtype : float64 or float32
    seed : int
        Seeds the network (the series' initialisation, ``Network(..., seed=seed)``);
        ``seed + 1`` seeds X and Y.

    Returns
    -------
    net : Network
    X, Y : arrays of `dtype`
    """
    if activations is None:
        activations = default_activations(len(sizes) - 1)
    net = Network(sizes, activations, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((sizes[0], m)).astype(net.dtype)
    Y = rng.standard_normal((sizes[-1], m)).astype(net.dtype)
    return net, X, Y
