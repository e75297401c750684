"""Training: `Network.fit`'s loop over epochs, its stepping, `TrainingDiverged` and the progress bar.

With the loops backend the epochs run in compiled code (``loopbp.training_loop``), many
per call from Python: `Trainer` holds what the loop needs (buffers, the generator's
state) and chooses how many epochs each call runs, so that Python, re-entered between
calls for the progress bar, the callback and Ctrl-C, costs well under 1% of the run. With
the einsum backend each step is made from Python (`EinsumStepper`), as the reference is
NumPy code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import gradients
from .engine import Workspace, kernel_array
from .training_loop import descend, shuffle, shuffle_state
from .validation import (
    check_backend,
    check_callback,
    check_flag,
    check_positive,
    check_samples,
    check_targets,
)

if TYPE_CHECKING:
    from .network import Network

#: How long one call of the compiled training loop should last: long enough that the
#: Python between calls (about 20 us) is lost in it, short enough that Ctrl-C and the
#: progress bar answer within a tenth of a second.
SECONDS_PER_CALL = 0.05


class TrainingDiverged(FloatingPointError):
    """`Network.fit` met a non-finite E, gradient or parameter.

    Attributes
    ----------
    epoch : int
        The epoch (counted from 0) in which it happened. The network keeps the last
        parameters that were finite.
    """

    def __init__(self, epoch: int, learning_rate: float):
        self.epoch = epoch
        super().__init__(
            f"training diverged in epoch {epoch}: E, the gradient or a parameter is no longer finite "
            f"with learning_rate = {learning_rate!r}; try a smaller learning rate. The network keeps "
            f"the last finite parameters."
        )


def fit(
    net: Network,
    X,
    Y,
    *,
    learning_rate: float,
    epochs: int,
    batch_size: int | None = None,
    backend: str = "loops",
    progress: bool = True,
    callback: Callable[[int, float], bool | None] | None = None,
) -> np.ndarray:
    """`Network.fit`: train `net` in place; see its docstring."""
    check_backend(backend)
    learning_rate = check_positive(learning_rate, "learning_rate", integer=False)
    epochs = int(check_positive(epochs, "epochs", integer=True))
    X = kernel_array(check_samples(X, net.sizes[0], net.dtype))
    m = X.shape[1]
    Y = kernel_array(check_targets(Y, net.sizes[-1], m, net.dtype))
    if batch_size is not None:
        batch_size = int(check_positive(batch_size, "batch_size", integer=True))
    if batch_size is None or batch_size >= m:
        batch_size = m
    check_flag(progress, "progress")
    check_callback(callback)
    net.require_finite_parameters()

    # NaN until an epoch finishes: on Ctrl-C the finite head is what was done.
    history = np.full(epochs, np.nan)
    bar = progress_bar(epochs) if progress else None
    try:
        run = _fit_compiled if backend == "loops" else _fit_python
        epochs_run = run(net, X, Y, learning_rate, epochs, batch_size, history, bar, callback)
    except KeyboardInterrupt as interrupt:
        # Steps change theta inside compiled code only, which Ctrl-C cannot cut short:
        # the parameters are those of the last finished step.
        finished = int(np.argmin(np.isfinite(history))) if not np.isfinite(history).all() else epochs
        interrupt.history = history[:finished]
        if hasattr(interrupt, "add_note"):  # Python 3.11+
            interrupt.add_note(
                f"loopbp: Network.fit was interrupted after {finished} finished epochs; the network "
                f"holds the parameters of the last finished step, and this exception's .history "
                f"the E of each finished epoch"
            )
        raise
    finally:
        if bar is not None:
            bar.close()
    return history[:epochs_run]


def _fit_compiled(net, X, Y, learning_rate, epochs, batch_size, history, bar, callback):
    # Epochs run in compiled code, many per call (Trainer chooses how many); a callback,
    # called after every epoch, brings Python back every epoch.
    trainer = Trainer(net, X, Y, learning_rate, batch_size)
    epoch = 0
    while epoch < epochs:
        count = 1 if callback is not None else trainer.epochs_per_call(epochs - epoch)
        finished = trainer.run(epoch, count, history)
        if bar is not None and finished:
            bar.set_postfix(E=f"{history[epoch + finished - 1]:.4g}", refresh=False)
            bar.update(finished)
        if finished < count:
            raise TrainingDiverged(epoch + finished, learning_rate)
        epoch += count
        if callback is not None and callback(epoch - 1, float(history[epoch - 1])) is True:
            break
    return epoch


def _fit_python(net, X, Y, learning_rate, epochs, batch_size, history, bar, callback):
    # The einsum backend: one step per Python iteration, as the reference is NumPy code.
    m = X.shape[1]
    step = EinsumStepper(net, learning_rate)
    bounds = [(start, min(start + batch_size, m)) for start in range(0, m, batch_size)]
    state = shuffle_state(net.seed)
    order = np.arange(m, dtype=np.int64)
    every = max(1, epochs // 200)
    for epoch in range(epochs):
        if len(bounds) == 1:
            E = step(X, Y, epoch)
        else:
            shuffle(order, state)
            E = 0.0
            for start, stop in bounds:
                columns = order[start:stop]
                E += step(X[:, columns], Y[:, columns], epoch) * (stop - start)
            E /= m
        history[epoch] = E
        if bar is not None and (epoch + 1) % every == 0:
            bar.set_postfix(E=f"{E:.4g}", refresh=False)
            bar.update(every)
        if callback is not None and callback(epoch, E) is True:
            return epoch + 1
    return epochs


def progress_bar(epochs: int):
    """A tqdm bar over `epochs`, or None when standard error is not a terminal or tqdm is missing."""
    # A bar only for a person watching: not in logs, pipes or tests.
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, unit="epoch", leave=True)


class EinsumStepper:
    """One gradient-descent step of `Network.fit` with the einsum backend: E, then theta in place."""

    def __init__(self, net: Network, learning_rate: float):
        self.net, self.learning_rate = net, learning_rate
        self.grad = np.empty_like(net.theta)
        self.grad_W, self.grad_b = net.engine.unpack(self.grad)
        # The step size in the parameters' dtype, so float32 training stays float32.
        self.alpha = net.dtype.type(learning_rate)

    def __call__(self, X: np.ndarray, Y: np.ndarray, epoch: int) -> float:
        net = self.net
        try:
            E, dW, db = gradients.gradient(net.W, net.b, X, Y, net.activations, backend="einsum")
        except ValueError:  # the overflow check: the inputs were validated already
            raise TrainingDiverged(epoch, self.learning_rate) from None
        for target, source in zip(self.grad_W + self.grad_b, dW + db):
            target[...] = source
        if not descend(net.theta, self.grad, self.alpha):
            raise TrainingDiverged(epoch, self.learning_rate)
        return E


class Trainer:
    """The state of one `Network.fit` with the loops backend, and its calls into the compiled loop.

    Parameters
    ----------
    net : Network
    X, Y : arrays
        Validated, C-contiguous, in the network's dtype.
    learning_rate : float
    batch_size : int
        At most m; m means full batch.
    """

    def __init__(self, net: Network, X: np.ndarray, Y: np.ndarray, learning_rate: float, batch_size: int):
        m = X.shape[1]
        self.net, self.X, self.Y, self.batch_size = net, X, Y, batch_size
        self.alpha = net.dtype.type(learning_rate)
        self.grad = np.empty_like(net.theta)
        # One workspace for the largest batch; a smaller last batch uses the head of its buffers.
        self.work = Workspace(net.sizes, batch_size, net.dtype)
        last = m % batch_size
        if last:
            self.work.grow_scratch(last)
        self.rng = shuffle_state(net.seed)
        self.order = np.arange(m, dtype=np.int64)
        # Room to gather one batch, for mini-batches only: a full batch is X and Y as they are.
        room = batch_size if batch_size < m else 0
        self.X_batch = np.empty(net.sizes[0] * room, net.dtype)
        self.Y_batch = np.empty(net.sizes[-1] * room, net.dtype)
        self.seconds_per_epoch = None

    def run(self, first: int, count: int, history: np.ndarray) -> int:
        """Epochs first..first + count - 1 in one compiled call; returns how many finished."""
        started = time.perf_counter()
        finished = self.net.engine.train_epochs(
            self.net.theta,
            self.X,
            self.Y,
            self.grad,
            self.work,
            self.alpha,
            first,
            count,
            history,
            self.batch_size,
            (self.rng, self.order, self.X_batch, self.Y_batch),
        )
        if finished:
            self.seconds_per_epoch = (time.perf_counter() - started) / finished
        return finished

    def epochs_per_call(self, left: int) -> int:
        """How many epochs the next call should run: about `SECONDS_PER_CALL`, at most `left`."""
        if self.seconds_per_epoch is None:
            return 1
        return int(max(1, min(left, SECONDS_PER_CALL / max(self.seconds_per_epoch, 1e-9))))
