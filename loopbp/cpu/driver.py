"""The one compiled entry point of the loops backend: a gradient, a forward pass or epochs of descent.

Every call from Python into the fast loop kernels goes through `run` (``loopbp.cpu.engine``
makes the calls; until `run` is compiled, ``loopbp.cpu.serial_driver.run`` stands in for it).
One entry point, not one per task, because each compiled function that Python calls is a
library of its own, and Numba has LLVM optimise again, inside each library, every kernel
linked into it: 4 to 10 s per library on 2 cores (the project's AMD EPYC and Intel Xeon
development machines, 2026). With one entry point, a network's kernels are typed and
optimised once per dtype and kernel set, and a `fit` or a `predict` after the first
gradient compiles nothing.

What `run` compiles is chosen by the types of two arguments, as in ``loopbp.cpu.layer_loop``:
`tile` (the register tile of the packed kernels, or None for the portable ones) and
`narrow` (True for the narrow kernels, None for those of `tile` and `plan`). Numba prunes
the branches not taken, so a narrow network never compiles the packed kernels, nor a
wide one the narrow kernels.
"""

import numpy as np
from numba import njit

from ..shuffling import shuffle
from . import layer_loop
from .training_loop import descend, gather

#: What `run` does.
GRADIENT, FORWARD, TRAIN = 0, 1, 2


@njit(cache=True)
def run(mode, theta, network, X, Y, grad, buffers, tile, narrow, plan, training, threads):
    """A checked gradient, a forward pass or epochs of gradient descent, by `mode`.

    The arguments come in groups, each made in one place: `network` by
    ``layer_loop.network_arrays``, `buffers` and (`tile`, `narrow`, `plan`) by
    ``Workspace.buffers`` and ``Workspace.kernels``, `training` by the engine's
    ``train_epochs`` (or `unused_training_arguments`). `tile`, `narrow` and `plan` stay
    apart, as Numba prunes branches on the types of arguments, not of tuple fields.

    Parameters
    ----------
    mode : int
        `GRADIENT`: E and the gradient (into `grad`), with theta, X and Y checked finite
        first and the results after. `FORWARD`: A^1..A^L into the activations (`Y`,
        `grad`, the deltas and the squares are not used and may be empty). `TRAIN`:
        epochs `first`, ..., `first` + `count` - 1 of gradient descent.
    theta, network, X, Y, grad, buffers, tile, narrow, plan, threads
        As in ``layer_loop.gradient_pass``; for `TRAIN`, X and Y are the whole training set
        and the buffers are sized for `batch_size` samples.
    training : tuple
        (alpha, first, count, history, batch_size, rng, order, X_batch, Y_batch), each
        as below.
    alpha : float of theta's dtype
        The learning rate.
    first, count : int
        The epochs to run.
    history : float64 array
        Receives E of each epoch at ``history[epoch]``: full batch, its E; mini-batches,
        their size-weighted mean.
    batch_size : int
        m for full-batch descent (X and Y are used as they are), else the size of each
        batch of a shuffled epoch (the last may be smaller).
    rng : (1,) uint64 array
        The state of the generator that shuffles `order` at the start of each epoch of
        mini-batches (``loopbp.shuffling``).
    order : (m,) int64 array
        The sample order, shuffled in place epoch after epoch.
    X_batch, Y_batch : 1-D arrays
        Room for one batch of X and of Y.

    The training arguments are not used by `GRADIENT` and `FORWARD`, which take any
    values of the same types (`unused_training_arguments`).

    Returns
    -------
    status : int
        For `GRADIENT`: ``layer_loop.FINITE``, ``layer_loop.INPUT_NOT_FINITE`` (nothing was
        computed) or ``layer_loop.RESULT_NOT_FINITE``; ``layer_loop.FINITE`` otherwise.
    E : float
        The gradient's E, accumulated in float64; 0 otherwise.
    finished : int
        For `TRAIN`: `count`, or the number of epochs finished before the one whose E,
        gradient or step was not finite (theta then holds the parameters of the last
        finite step); 0 otherwise.
    """
    alpha, first, count, history, batch_size, rng, order, X_batch, Y_batch = training
    m = X.shape[1]
    L = network[0].shape[0] - 1
    # A gradient and a forward pass are one step of one full-batch epoch, stopped early.
    stop = -1
    if mode == FORWARD:
        stop = L - 1  # after the forward pass of layer L (``layer_loop.gradient_steps``)
    if mode != TRAIN:
        first, count, batch_size = 0, 1, m
        if mode == GRADIENT and not (
            layer_loop.all_finite(theta)
            and layer_loop.all_finite(X.ravel())
            and layer_loop.all_finite(Y.ravel())
        ):
            return layer_loop.INPUT_NOT_FINITE, np.nan, 0
    full = batch_size >= m
    for epoch in range(first, first + count):
        if not full:
            shuffle(order, rng)
        E = 0.0
        for start in range(0, m, batch_size):
            end = min(start + batch_size, m)
            # A full batch is X and Y as they are; a mini-batch is gathered in the epoch's order.
            Xb = X if full else gather(X, order, start, end, X_batch)
            Yb = Y if full else gather(Y, order, start, end, Y_batch)
            # The one call site of the pass, inlined: see the end of ``loopbp.cpu.layer_loop``.
            E_b = layer_loop.gradient_pass_inline(
                theta, network, Xb, Yb, grad, buffers, tile, narrow, plan, threads, stop
            )
            if mode == FORWARD:
                return layer_loop.FINITE, 0.0, 0
            if mode == GRADIENT:
                if not (np.isfinite(E_b) and layer_loop.all_finite(grad)):
                    return layer_loop.RESULT_NOT_FINITE, E_b, 0
                return layer_loop.FINITE, E_b, 0
            if not (np.isfinite(E_b) and descend(theta, grad, alpha)):
                return layer_loop.FINITE, 0.0, epoch - first
            # Mini-batches: E is their size-weighted mean; a full batch's is its own E, as is.
            E = E_b if full else E + E_b * (end - start)
        history[epoch] = E if full else E / m
    return layer_loop.FINITE, 0.0, count


def unused_training_arguments(dtype):
    """(alpha, first, count, history, batch_size, rng, order, X_batch, Y_batch) for the modes
    that do not train: values of the types `run` is compiled for, so that every mode runs
    one compiled function."""
    empty = np.empty(0, dtype)
    return (
        dtype.type(0),
        0,
        0,
        np.empty(0, np.float64),
        0,
        np.empty(1, np.uint64),
        np.empty(0, np.int64),
        empty,
        empty,
    )
