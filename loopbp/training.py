"""Training: `Network.fit`'s loop over epochs, its stepping, `TrainingDiverged` and the progress bar.

With the loops backend the epochs run in compiled code (``loopbp.cpu.training_loop``), many
per call from Python (with the cuda backend, on the GPU: ``cuda_engine.CudaTrainer``):
`Trainer` holds what the loop needs (buffers, the generator's state) and chooses how
many epochs each call runs, so that Python, re-entered between
calls for the progress bar, the callback and Ctrl-C, costs well under 1% of the run. With
the einsum backend each step is made from Python (`EinsumStepper`), as the reference is
NumPy code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import distributed, gradients
from .cpu.engine import kernel_array
from .cpu.training_loop import descend
from .cpu.workspace import Workspace
from .errors import DIVERGENCE_FACTOR, Overflow, TrainingDiverged
from .pacing import EpochPacing
from .shuffling import mini_batches, shuffle, shuffle_state
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


def _ceiling(history: np.ndarray, eps: float) -> float:
    # The largest E allowed in an epoch: DIVERGENCE_FACTOR times the first epoch's, or
    # times the dtype's resolution `eps` when that is larger (a fit that starts converged,
    # E at rounding level, must not stop on rounding noise).
    return DIVERGENCE_FACTOR * max(float(history[0]), eps)


def _grew(history: np.ndarray, start: int, stop: int, eps: float) -> int | None:
    # The first epoch in start..stop - 1 whose E exceeds the ceiling, or None.
    if start == 0 and stop <= 1:
        return None
    above = np.flatnonzero(history[start:stop] > _ceiling(history, eps))
    return start + int(above[0]) if above.size else None


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
    scheduler: Any = None,
) -> np.ndarray:
    """`Network.fit`: train `net` in place; see its docstring."""
    check_backend(backend)
    learning_rate = check_positive(learning_rate, "learning_rate", integer=False)
    epochs = int(check_positive(epochs, "epochs", integer=True))
    chunked = distributed.wants_chunks(X, Y, scheduler)
    if chunked:
        X, Y = distributed.check_chunked(X, Y, net.sizes, net.dtype, backend)
    else:
        X = kernel_array(check_samples(X, net.sizes[0], net.dtype))
        Y = kernel_array(check_targets(Y, net.sizes[-1], X.shape[1], net.dtype))
    m = X.shape[1]
    if batch_size is not None:
        batch_size = int(check_positive(batch_size, "batch_size", integer=True))
    if batch_size is None or batch_size >= m:
        batch_size = m
    check_flag(progress, "progress")
    check_callback(callback)
    net.require_finite_parameters()
    if not net.theta.flags.writeable:
        raise ValueError(
            "fit changes the parameters in place, but this network's are read-only (a read-only "
            "memory map?); train a copy: loopbp.Network.from_parameters(net.W, net.b, net.activations)"
        )
    # Last: finding the client may start a local cluster.
    client = distributed.client_for(scheduler) if chunked else None

    # NaN until an epoch finishes: on Ctrl-C the finite head is what was done.
    history = np.full(epochs, np.nan)
    bar = progress_bar(epochs) if progress else None
    try:
        if backend in ("loops", "cuda") and not chunked:
            if backend == "cuda":
                from .cuda.engine import CudaTrainer  # needs the gpu extra: imported on first use

                trainer = CudaTrainer(net, X, Y, learning_rate, batch_size)
            else:
                trainer = Trainer(net, X, Y, learning_rate, batch_size)
            epochs_run = _fit_compiled(trainer, learning_rate, epochs, history, bar, callback)
        else:
            if chunked:
                step = ChunkedStepper(net, X, Y, learning_rate, batch_size, client)
            else:
                step = EinsumStepper(net, learning_rate, m, batch_size)
            epochs_run = _fit_stepwise(step, X, Y, epochs, history, bar, callback)
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


def _fit_compiled(trainer, learning_rate, epochs, history, bar, callback):
    # Epochs run in compiled code (Trainer) or on the GPU (cuda_engine.CudaTrainer), many
    # per call (the trainer chooses how many); a callback, called after every epoch,
    # brings Python back every epoch.
    epoch = 0
    net = trainer.net
    # The parameters before the call, and before the call before it, kept in case E grows
    # too large (an epoch's E is measured on the parameters it starts from): two buffers
    # made once, so that no call allocates.
    before, previous = np.empty_like(net.theta), np.empty_like(net.theta)
    eps = np.finfo(net.dtype).eps
    while epoch < epochs:
        count = 1 if callback is not None else trainer.epochs_per_call(epochs - epoch)
        np.copyto(before, net.theta)
        finished = trainer.run(epoch, count, history)
        grew = _grew(history, epoch, epoch + finished, eps)
        if grew is not None:
            net.theta[...] = previous if grew == epoch else before
            raise TrainingDiverged(grew, learning_rate, float(history[grew]), float(history[0]))
        before, previous = previous, before
        if bar is not None and finished:
            bar.set_postfix(E=f"{history[epoch + finished - 1]:.4g}", refresh=False)
            bar.update(finished)
        if finished < count:
            raise TrainingDiverged(epoch + finished, learning_rate)
        epoch += count
        if callback is not None and callback(epoch - 1, float(history[epoch - 1])) is True:
            break
    return epoch


def _fit_stepwise(step, X, Y, epochs, history, bar, callback):
    # Epochs from Python, through `step.epoch`: the einsum backend (the reference is NumPy
    # code, `EinsumStepper`) and chunked data (one reduction per step, `ChunkedStepper`).
    every = max(1, epochs // 200)
    net = step.net
    before, previous = np.empty_like(net.theta), np.empty_like(net.theta)
    eps = np.finfo(net.dtype).eps
    for epoch in range(epochs):
        # As in _fit_compiled: the parameters of the epoch before are the last good ones.
        before, previous = previous, before
        np.copyto(before, net.theta)
        E = step.epoch(X, Y, epoch)
        history[epoch] = E
        if _grew(history, epoch, epoch + 1, eps) is not None:
            net.theta[...] = previous
            raise TrainingDiverged(epoch, step.learning_rate, E, float(history[0]))
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
    """The steps of `Network.fit` with the einsum backend: E, then theta in place, batch by batch.

    Each epoch of mini-batches shuffles the samples with ``shuffling.shuffle``, seeded
    from the network's seed, as the compiled loop does.
    """

    def __init__(self, net: Network, learning_rate: float, m: int, batch_size: int):
        self.net, self.learning_rate, self.batch_size = net, learning_rate, batch_size
        self.grad = np.empty_like(net.theta)
        self.grad_W, self.grad_b = net.engine.unpack(self.grad)
        # The step size in the parameters' dtype, so float32 training stays float32.
        self.alpha = net.dtype.type(learning_rate)
        # The sample order, shuffled in place epoch after epoch, as the compiled loop does.
        self.state = shuffle_state(net.seed)
        self.order = np.arange(m, dtype=np.int64)

    def epoch(self, X: np.ndarray, Y: np.ndarray, epoch: int) -> float:
        """One epoch: E of its full batch, or the size-weighted mean E of its mini-batches."""
        m, batch_size = X.shape[1], self.batch_size
        if batch_size >= m:
            return self(X, Y, epoch)
        E = 0.0
        for start, stop in mini_batches(self.order, self.state, batch_size):
            columns = self.order[start:stop]
            E += self(X[:, columns], Y[:, columns], epoch) * columns.shape[0]
        return E / m

    def __call__(self, X: np.ndarray, Y: np.ndarray, epoch: int) -> float:
        net = self.net
        try:
            E, dW, db = gradients.gradient(net.W, net.b, X, Y, net.activations, backend="einsum")
        except Overflow:
            raise TrainingDiverged(epoch, self.learning_rate) from None
        for target, source in zip(self.grad_W + self.grad_b, dW + db):
            target[...] = source
        if not descend(net.theta, self.grad, self.alpha):
            raise TrainingDiverged(epoch, self.learning_rate)
        return E


class ChunkedStepper:
    """The steps of `Network.fit` on chunked (``dask.array``) data: one reduction per step.

    Each step sends theta to the workers (as one key of the step's graph: the parameters
    are small next to the data) and gets E and the gradient back (``loopbp.distributed``).
    A full batch is every chunk. Mini-batches are made of whole chunks: each epoch shuffles
    the chunks' order with ``shuffling.shuffle``, seeded from the network's seed, and
    each step takes the next chunks in that order until they hold at least `batch_size`
    samples, so a seeded network trains reproducibly for a given chunking.
    """

    def __init__(self, net: Network, X, Y, learning_rate: float, batch_size: int, client):
        self.net, self.learning_rate, self.batch_size, self.client = net, learning_rate, batch_size, client
        self.alpha = net.dtype.type(learning_rate)
        self.state = shuffle_state(net.seed)
        self.order = np.arange(len(X.chunks[1]), dtype=np.int64)

    def _batches(self, X):
        # Lists of chunk indices, each holding at least batch_size samples (the last may hold fewer).
        shuffle(self.order, self.state)
        widths, batches, batch, held = X.chunks[1], [], [], 0
        for k in self.order:
            batch.append(int(k))
            held += widths[k]
            if held >= self.batch_size:
                batches.append(batch)
                batch, held = [], 0
        return batches + ([batch] if batch else [])

    def epoch(self, X, Y, epoch: int) -> float:
        """One epoch: E of the full batch, or the size-weighted mean E of the mini-batches."""
        m = X.shape[1]
        if self.batch_size >= m:
            return self(X, Y, epoch)
        import dask.array as da

        E = 0.0
        for batch in self._batches(X):
            Xb = da.concatenate([X.blocks[0, k] for k in batch], axis=1)
            Yb = da.concatenate([Y.blocks[0, k] for k in batch], axis=1)
            E += self(Xb, Yb, epoch) * Xb.shape[1]
        return E / m

    def __call__(self, X, Y, epoch: int) -> float:
        net = self.net
        try:
            E, grad = distributed.gradient(net.theta, net.sizes, net.activations, X, Y, scheduler=self.client)
        except Overflow:  # not a bad value in the data, which its chunk names
            raise TrainingDiverged(epoch, self.learning_rate) from None
        if not descend(net.theta, grad, self.alpha):
            raise TrainingDiverged(epoch, self.learning_rate)
        return E


class Trainer(EpochPacing):
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
        self.timed(started, finished)
        return finished
