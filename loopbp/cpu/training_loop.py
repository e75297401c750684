"""Gradient descent in compiled code: the steps of the loop over epochs and batches behind `Network.fit`.

``driver.run`` runs many epochs in one call from Python: per step the gradient
(``layer_loop.gradient_pass``), then theta <- theta - alpha grad E (`descend`); per epoch of
mini-batches the shuffle (``loopbp.shuffling``) and the gathering of each batch (`gather`).
``loopbp.pacing`` decides how many epochs each call runs; ``loopbp.cpu.engine`` makes the
call.
"""

import numpy as np
from numba import njit

from ..layout import matrix


@njit(cache=True, fastmath={"reassoc"})
def descend(theta, grad, alpha):
    r"""One step theta <- theta - alpha grad E, in place, if every new value is finite.

    .. math:: \theta_k \leftarrow \theta_k - \alpha \frac{\partial E}{\partial \theta_k}

    Returns False, and leaves theta as it was, if any theta_k - alpha grad_k is not
    finite: one pass checks the step (a non-finite gradient makes a non-finite step), a
    second writes it, so no copy of theta is needed to undo a diverging step.
    """
    # The check as a sum of (theta_k - alpha grad_k) * 0, as in ``layer_loop.all_finite``: a
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


@njit(cache=True)
def gather(source, order, start, stop, flat):
    # The columns order[start:stop] of source, as a C-contiguous matrix at the head of flat.
    n = source.shape[0]
    batch = matrix(flat, 0, n, stop - start)
    for j in range(n):
        for c in range(stop - start):
            batch[j, c] = source[j, order[start + c]]
    return batch
