"""The errors loopbp raises beyond ``TypeError`` and ``ValueError`` for bad arguments.

- `TrainingDiverged`: `Network.fit` stopped because E grew far above its start or stopped
  being finite;
- `Overflow`: a non-finite result (E, A^L or the gradient) from finite inputs;
- `NoGPU`: ``backend="cuda"`` found a CUDA package but no usable GPU.
"""

from __future__ import annotations

import numpy as np

#: `Network.fit` stops when an epoch's E exceeds this multiple of the first epoch's E
#: (`TrainingDiverged`). Gradient descent that converges keeps E at or below its first
#: value, give or take the noise of mini-batches, so the rule cannot fire on it; a
#: learning rate too large for the problem grows E geometrically, and the rule stops it
#: within a few epochs of starting to grow, long before E overflows.
DIVERGENCE_FACTOR = 1e4


class TrainingDiverged(FloatingPointError):
    """`Network.fit` met a non-finite E, gradient or parameter, or E grew far above its start.

    Raised when a step's E, gradient or new parameters are not finite, or when an epoch's
    E exceeds `DIVERGENCE_FACTOR` times the first epoch's.

    Attributes
    ----------
    epoch : int
        The epoch (counted from 0) in which it happened. The network keeps the last
        parameters that were finite, or, when E grew too large, parameters whose E was
        still in bounds: those it had a little before (at most about a tenth of a second
        of epochs earlier, and one epoch earlier with a callback).
    """

    def __init__(
        self, epoch: int, learning_rate: float, E: float | None = None, first_E: float | None = None
    ):
        self.epoch = epoch
        if E is None:
            what = "E, the gradient or a parameter is no longer finite"
            kept = "the last finite parameters"
        else:
            what = f"E = {E:.4g}, more than {DIVERGENCE_FACTOR:g} times the first epoch's E = {first_E:.4g},"
            kept = "the parameters from before the epochs in which E grew"
        super().__init__(
            f"training diverged in epoch {epoch}: {what} with learning_rate = {learning_rate!r}; "
            f"try a smaller learning rate. The network keeps {kept}."
        )


class Overflow(ValueError):
    """A non-finite result (E, A^L or the gradient) from finite inputs."""


def overflow_error(what: str, dtype: np.dtype) -> Overflow:
    """The error for a non-finite result from finite inputs."""
    # Finite inputs can still overflow (huge weights, identity layers); say so rather
    # than hand back inf or NaN.
    return Overflow(
        f"the {what} overflowed in {dtype}: W, b, X or Y are too large in magnitude for this "
        f"dtype, and the result is not finite"
    )


def require_finite(what: str, dtype: np.dtype, *values) -> None:
    """Raise `overflow_error` unless every value (array or float) is finite."""
    for v in values:
        if not np.all(np.isfinite(v)):
            raise overflow_error(what, dtype)


class NoGPU(RuntimeError):
    """``backend="cuda"`` found a CUDA package but no usable GPU (and the simulator is off)."""
