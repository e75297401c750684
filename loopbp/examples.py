"""The series' two worked examples: a sine wave, and handwritten digits.

Both train by full-batch gradient descent on E = 1/(2m) sum (A^L - Y)^2 with sigmoid
hidden layers and an identity output, as the series does.
``loopbp train sine`` and ``loopbp train digits`` run them from the command line.

The series' MNIST example cannot run here (MNIST cannot be downloaded on our machines),
so `train_digits` follows its recipe on scikit-learn's 8x8 digits, which scikit-learn
ships in its package (``pip install "loopbp[examples]"``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any

import numpy as np

from . import distributed
from .network import Network

#: The series' sine example: a 1-20-1 network, 0.2 N(0, 1) initialisation, seed 0.
SINE_SIZES = (1, 20, 1)
#: The digits example: 64 pixels, one sigmoid hidden layer, one output per digit.
DIGITS_HIDDEN = 64


@dataclasses.dataclass
class TrainingResult:
    """What an example's training produced.

    Attributes
    ----------
    network : Network
        The trained network.
    history : (epochs,) array
        E per epoch (see `Network.fit`).
    seconds : float
        Wall time of the training alone (no data loading, no evaluation, and not the
        compilation or cache load of the kernels: see `first_seconds`).
    epochs_per_second : float
        Epochs, each one full-batch step, per second of `seconds`.
    test_accuracy : float or None
        The fraction of held-out samples classified correctly (digits only).
    first_seconds : float or None
        The one epoch run first, on a copy, to compile or load the kernels.
    """

    network: Network
    history: np.ndarray
    seconds: float
    epochs_per_second: float
    test_accuracy: float = None
    first_seconds: float = None


def _timed_fit(net, X, Y, epochs, progress, **settings):
    # One epoch on a copy first, timed apart: compiling the kernels (or loading them from
    # Numba's cache, on every worker of a cluster) is paid once per process, and is not
    # training. NumPy data for a scheduler goes to its workers first.
    if settings.get("scheduler") is not None and not distributed.is_dask_array(X):
        X, Y = distributed.scatter_samples(X, Y, settings["scheduler"])
    start = time.perf_counter()
    copy.deepcopy(net).fit(X, Y, epochs=1, progress=False, **settings)
    first = time.perf_counter() - start
    start = time.perf_counter()
    history = net.fit(X, Y, epochs=epochs, progress=progress, **settings)
    seconds = time.perf_counter() - start
    return history, seconds, len(history) / seconds, first


def sine_data(m: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """m points x evenly spaced on [0, 2 pi] and y = sin(x), as (1, m) arrays."""
    X = np.linspace(0.0, 2.0 * math.pi, m)[None, :]
    return X, np.sin(X)


def train_sine(
    *,
    epochs: int = 20_000,
    learning_rate: float = 0.1,
    seed: int = 0,
    backend: str = "loops",
    progress: bool = False,
    scheduler: Any = None,
) -> TrainingResult:
    """Fit sin(x) on [0, 2 pi] with the series' 1-20-1 network (sigmoid, identity).

    The defaults are the series': weights and biases 0.2 N(0, 1) with seed 0, learning
    rate 0.1 and 20,000 full-batch steps on 100 points. A `scheduler` (see
    `loopbp.gradient`) trains on Dask workers instead, the samples split one chunk per
    worker (`loopbp.distributed.scatter_samples`).

    Returns
    -------
    TrainingResult

    Examples
    --------
    >>> from loopbp.examples import train_sine
    >>> result = train_sine(epochs=2000)
    >>> bool(result.history[-1] < result.history[0])
    True
    """
    X, Y = sine_data()
    net = Network(SINE_SIZES, ["sigmoid", "identity"], seed=seed)
    history, seconds, rate, first = _timed_fit(
        net, X, Y, epochs, progress, learning_rate=learning_rate, backend=backend, scheduler=scheduler
    )
    return TrainingResult(net, history, seconds, rate, first_seconds=first)


def digits_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, split 75% / 25% (stratified, fixed seed).

    Returns
    -------
    X_train, Y_train, X_test, labels_test
        Pixels scaled to [0, 1], one sample per column (64 x m); Y_train one-hot (10 x m);
        labels_test the digits 0-9 of the test samples.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError('the digits example needs scikit-learn: pip install "loopbp[examples]"') from None
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    Y_train = np.eye(10)[y_train].T.copy()
    return np.ascontiguousarray(X_train.T), Y_train, np.ascontiguousarray(X_test.T), y_test


def train_digits(
    *,
    hidden: int = DIGITS_HIDDEN,
    epochs: int = 10_000,
    learning_rate: float = 0.1,
    seed: int = 0,
    backend: str = "loops",
    progress: bool = False,
    scheduler: Any = None,
) -> TrainingResult:
    """The series' MNIST recipe on scikit-learn's digits: 64-hidden-10, sigmoid, identity.

    One-hot targets, squared error E, full-batch gradient descent, 0.2 N(0, 1)
    initialisation. A test sample's prediction is its largest output. The defaults are
    the series' learning rate, 0.1, and about the number of steps its MNIST run took
    (9,900): 10,000. A larger rate diverges or collapses every output to the class mean
    (E stalls at 0.45); fewer steps stop short (94% after 2,000). 64 hidden units, as
    many as there are pixels, are plenty for 8x8 images. A `scheduler` trains on Dask
    workers, as in `train_sine`.

    Returns
    -------
    TrainingResult
        With `test_accuracy` on the 25% held out by `digits_data`.
    """
    X_train, Y_train, X_test, labels_test = digits_data(seed)
    net = Network([64, hidden, 10], ["sigmoid", "identity"], seed=seed)
    history, seconds, rate, first = _timed_fit(
        net,
        X_train,
        Y_train,
        epochs,
        progress,
        learning_rate=learning_rate,
        backend=backend,
        scheduler=scheduler,
    )
    predictions = net.forward(X_test).argmax(axis=0)
    accuracy = float(np.mean(predictions == labels_test))
    return TrainingResult(net, history, seconds, rate, accuracy, first)


# --- a data set larger than a worker's memory, on disk -------------------------------


def write_regression_zarr(
    path: str,
    *,
    m: int = 10_000_000,
    n_inputs: int = 32,
    chunk: int = 250_000,
    seed: int = 0,
    dtype: Any = np.float32,
    scheduler: Any = None,
) -> tuple[str, str]:
    """Write a synthetic regression data set as two zarr stores, chunk by chunk.

    X is N(0, 1), (n_inputs, m), one sample per column; Y = sin(w^T x) for a fixed seeded
    w of norm 1, (1, m). Dask's workers draw and write each chunk of `chunk` samples where
    they run, so the whole never passes through one process: the defaults write 1.2 GiB
    of X in float32, more than a worker limited to 1 GiB holds.

    Returns
    -------
    X_path, Y_path : str
        ``path/X.zarr`` and ``path/Y.zarr``, for ``dask.array.from_zarr``.
    """
    distributed.require_dask()
    import os

    import dask.array as da

    rng = da.random.default_rng(seed)
    X = rng.standard_normal((n_inputs, m), chunks=(n_inputs, chunk), dtype=dtype)
    w = np.random.default_rng(seed).standard_normal(n_inputs)
    w = (w / np.linalg.norm(w)).astype(dtype)
    Y = da.sin(da.tensordot(w, X, axes=1))[None, :].astype(dtype)
    X_path, Y_path = os.path.join(path, "X.zarr"), os.path.join(path, "Y.zarr")
    client = distributed.client_for(scheduler)
    stored = [da.to_zarr(a, p, overwrite=True, compute=False) for a, p in ((X, X_path), (Y, Y_path))]
    client.compute(stored, sync=True)
    return X_path, Y_path


def train_from_zarr(
    path: str,
    *,
    hidden: int = 16,
    epochs: int = 20,
    learning_rate: float = 0.5,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    scheduler: Any = None,
) -> TrainingResult:
    """Train an n-`hidden`-1 network (tanh, identity) on the stores `write_regression_zarr` wrote.

    X and Y are opened with ``dask.array.from_zarr`` and never loaded whole: each step
    reads every chunk where a worker runs it (or, with `batch_size`, the chunks of each
    mini-batch), computes its sums, and the sums are added (``loopbp.distributed``).

    Returns
    -------
    TrainingResult
    """
    distributed.require_dask()
    import os

    import dask.array as da

    X = da.from_zarr(os.path.join(path, "X.zarr"))
    Y = da.from_zarr(os.path.join(path, "Y.zarr"))
    net = Network([X.shape[0], hidden, 1], ["tanh", "identity"], dtype=X.dtype, seed=seed)
    history, seconds, rate, first = _timed_fit(
        net, X, Y, epochs, progress, learning_rate=learning_rate, batch_size=batch_size, scheduler=scheduler
    )
    return TrainingResult(net, history, seconds, rate, first_seconds=first)
