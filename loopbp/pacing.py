"""How many epochs each call of a compiled training loop runs: about a twentieth of a second.

A trainer (the loops backend's ``loopbp.training.Trainer``, the cuda backend's
``loopbp.cuda.engine.CudaTrainer``) runs epochs in calls that return to Python between
them, for the progress bar, the callback and Ctrl-C. `EpochPacing` times each call and
sizes the next one.
"""

from __future__ import annotations

import time

#: How long one call of the compiled training loop should last: long enough that the
#: Python between calls (about 20 us) is lost in it, short enough that Ctrl-C and the
#: progress bar answer within a tenth of a second.
SECONDS_PER_CALL = 0.05


class EpochPacing:
    """The pacing of a trainer's calls: the time of an epoch, measured, and the next call's size.

    Attributes
    ----------
    seconds_per_epoch : float or None
        The time per epoch of the last call that finished an epoch; None before.
    """

    seconds_per_epoch: float | None = None

    def timed(self, started: float, finished: int) -> None:
        """Record a call that began at ``time.perf_counter()`` = `started` and finished `finished` epochs."""
        if finished:
            self.seconds_per_epoch = (time.perf_counter() - started) / finished

    def epochs_per_call(self, left: int) -> int:
        """How many epochs the next call should run: about `SECONDS_PER_CALL`, at most `left`.

        One until an epoch has been timed.
        """
        if self.seconds_per_epoch is None:
            return 1
        return int(max(1, min(left, SECONDS_PER_CALL / max(self.seconds_per_epoch, 1e-9))))
