"""Gradient descent in compiled code: the steps of the loop over epochs and batches behind `Network.fit`.

``driver.run`` runs many epochs in one call from Python: per step the gradient
(``passes.gradient_pass``), then theta <- theta - alpha grad E (`descend`); per epoch of
mini-batches the shuffle (`shuffle`: Fisher-Yates, drawing from SplitMix64, whose state
is seeded from the network's seed, so that a seeded network trains reproducibly) and the
gathering of each batch (`gather`). NumPy's own Generator is not passed into the compiled
loop: Numba leaks about 80 bytes on each call that takes one. ``loopbp.training`` decides
how many epochs each call runs; ``loopbp.engine`` makes the call.
"""

import numpy as np
from numba import njit

from .layout import matrix


@njit(cache=True, fastmath={"reassoc"})
def descend(theta, grad, alpha):
    r"""One step theta <- theta - alpha grad E, in place, if every new value is finite.

    .. math:: \theta_k \leftarrow \theta_k - \alpha \frac{\partial E}{\partial \theta_k}

    Returns False, and leaves theta as it was, if any theta_k - alpha grad_k is not
    finite: one pass checks the step (a non-finite gradient makes a non-finite step), a
    second writes it, so no copy of theta is needed to undo a diverging step.
    """
    # The check as a sum of (theta_k - alpha grad_k) * 0, as in ``passes.all_finite``: a
    # sum vectorises (``reassoc`` reorders only it), a test per value that stops at the
    # first failure does not, and for the 100,000 parameters of a 784-128-10 network it
    # was a sizeable part of a mini-batch's step. The step itself is written as before.
    zero = theta.dtype.type(0)
    s = zero
    for k in range(theta.shape[0]):
        s += (theta[k] - alpha * grad[k]) * zero
    if not np.isfinite(s):
        return False
    for k in range(theta.shape[0]):
        theta[k] -= alpha * grad[k]
    return True


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


@njit(cache=True)
def gather(source, order, start, stop, flat):
    # The columns order[start:stop] of source, as a C-contiguous matrix at the head of flat.
    n = source.shape[0]
    batch = matrix(flat, 0, n, stop - start)
    for j in range(n):
        for c in range(stop - start):
            batch[j, c] = source[j, order[start + c]]
    return batch
