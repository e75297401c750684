"""The seeded shuffles of mini-batch training, the same for every backend.

Each epoch of mini-batches visits the samples in a new order: `shuffle` is Fisher-Yates,
drawing from SplitMix64, whose state (`shuffle_state`) is seeded from the network's seed,
so that a seeded network trains reproducibly, fit after fit, with any backend. It is
compiled, so that the loops backend's training loop calls it between steps without
returning to Python; NumPy's own Generator is not passed into compiled code because
Numba leaks about 80 bytes on each call that takes one.
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def next_uint64(state):
    """The next 64-bit output of SplitMix64, advancing the (1,) uint64 `state` in place."""
    # SplitMix64 (Steele, Lea and Flood, 2014): the state advances by a fixed odd
    # constant, and each state is mixed into the output. All arithmetic wraps mod 2^64.
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _below(state, n):
    # Uniform on 0..n-1: draws under 2^64 mod n are rejected, so that every residue is
    # equally likely.
    n = np.uint64(n)
    threshold = (np.uint64(0) - n) % n
    r = next_uint64(state)
    while r < threshold:
        r = next_uint64(state)
    return np.int64(r % n)


@njit(cache=True)
def shuffle(order, state):
    """Fisher-Yates: permute `order` in place, each of its n! orders equally likely."""
    for i in range(order.shape[0] - 1, 0, -1):
        j = _below(state, i + 1)
        order[i], order[j] = order[j], order[i]


def shuffle_state(seed):
    """The (1,) uint64 state for `shuffle`, drawn from ``numpy.random.default_rng(seed)``.

    Seeded once per fit from the network's seed, so that a seeded network draws the same
    orders, fit after fit, with either backend.
    """
    return np.array([np.random.default_rng(seed).integers(2**63, dtype=np.int64)], dtype=np.uint64)


def mini_batches(order, state, batch_size):
    """One epoch's mini-batches: shuffle `order` in place, then the (start, stop) of each batch.

    Batch k is the samples ``order[start:stop]``: `batch_size` of them, fewer in the last
    batch when `batch_size` does not divide m. The trainers that run their epochs in
    Python take their batches from here; ``loopbp.cpu.driver`` does the same in compiled
    code.
    """
    shuffle(order, state)
    m = order.shape[0]
    return [(start, min(start + batch_size, m)) for start in range(0, m, batch_size)]
