"""`Network`: the model, a network's sizes, activations and parameters in one object."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import distributed, gradients, layout, saving, training
from .cpu import plan as planning
from .cpu.engine import Engine, kernel_array
from .cpu.layer_loop import all_finite
from .cpu.workspace import WorkspacePool
from .validation import (
    INITS,
    check_activations,
    check_choice,
    check_dtype,
    check_parameters,
    check_positive,
    check_samples,
    check_seed,
    check_sizes,
    check_targets,
    check_theta,
)


class Network:
    """A fully connected network with L layers, its parameters held in one flat vector.

    Parameters
    ----------
    sizes : sequence of int
        n^0, n^1, ..., n^L: the number of units of each layer, input first. At least
        two entries, each at least 1.
    activations : sequence of str
        One name per layer l = 1..L, from ``loopbp.ACTIVATIONS``.
    dtype : {numpy.float64, numpy.float32}
        The dtype of the parameters, and so of every computation.
    seed : int, numpy.random.Generator or None
        Seeds the initialisation and the shuffling of `fit`; None draws fresh entropy.
    init : {"series", "glorot", "he"}
        ``"series"`` (the default) draws every weight and bias as 0.2 N(0, 1), as the
        blog series does. ``"glorot"`` draws W^l from N(0, 2 / (n^(l-1) + n^l)) and
        ``"he"`` from N(0, 2 / n^(l-1)); both set the biases to 0.

    Attributes
    ----------
    theta : (p,) array
        Every parameter: W^1, b^1, ..., W^L, b^L, each row-major, one after another.
    W : tuple of arrays
        ``W[l-1]`` is W^l, of shape (n^l, n^(l-1)): a view of `theta`, so writing into it
        changes the network.
    b : tuple of arrays
        ``b[l-1]`` is b^l, of shape (n^l,), a view of `theta` like W.
    sizes : tuple of int
    activations : tuple of str
    dtype : numpy dtype
    seed : int, numpy.random.Generator or None
    engine : loopbp.cpu.engine.Engine
        The loops backend for this network (its compiled calls and buffers).

    Notes
    -----
    The loops backend keeps its buffers (`loopbp.cpu.workspace.Workspace`) for the last m it
    was called with, so repeated calls allocate only the gradient they return. A call
    made while another thread uses those buffers gets buffers of its own
    (`loopbp.cpu.workspace.WorkspacePool`).

    Examples
    --------
    >>> import numpy as np, loopbp
    >>> net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
    >>> X = np.linspace(0, 2 * np.pi, 50)[None, :]
    >>> E, dW, db = net.gradient(X, np.sin(X))
    >>> net.n_parameters
    61
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activations: Sequence[str],
        *,
        dtype: DTypeLike = np.float64,
        seed: int | np.random.Generator | None = None,
        init: str = "series",
    ):
        sizes = check_sizes(sizes)
        activations = check_activations(activations, len(sizes) - 1, f"for sizes {sizes!r}")
        dtype = check_dtype(dtype)
        seed = check_seed(seed)
        check_choice(init, "init", INITS)

        self.sizes = sizes
        self.activations = activations
        self.dtype = dtype
        self.theta = np.empty(layout.parameter_count(sizes), dtype)
        self.seed = seed
        self._bind_views()

        rng = np.random.default_rng(seed)
        for W, b in zip(self.W, self.b):
            n_out, n_in = W.shape
            if init == "series":
                W[...] = 0.2 * rng.standard_normal((n_out, n_in))
                b[...] = 0.2 * rng.standard_normal(n_out)
            else:
                variance = 2.0 / (n_in + n_out) if init == "glorot" else 2.0 / n_in
                W[...] = np.sqrt(variance) * rng.standard_normal((n_out, n_in))
                b[...] = 0.0

    @classmethod
    def from_parameters(
        cls, W: Sequence[ArrayLike], b: Sequence[ArrayLike], activations: Sequence[str]
    ) -> Network:
        """A network holding copies of the given parameters.

        Parameters
        ----------
        W, b, activations
            As in `loopbp.gradient`; their dtype becomes the network's.

        Examples
        --------
        >>> import numpy as np, loopbp
        >>> net = loopbp.Network.from_parameters([np.ones((3, 2))], [np.zeros(3)], ["relu"])
        >>> net.sizes, net.n_parameters
        ((2, 3), 9)
        """
        W, b, names, _, dtype = check_parameters(W, b, activations)
        net = cls([W[0].shape[1]] + [w.shape[0] for w in W], names, dtype=dtype, seed=0)
        for target, source in zip(net.W + net.b, W + b):
            target[...] = source
        return net

    def __getstate__(self):
        # W and b are views of theta, which pickle and copy.deepcopy would store as
        # separate arrays, cutting the link: keep theta alone and rebuild the views. The
        # engine's buffers are scratch, made again at the next call.
        state = dict(self.__dict__)
        for name in ("W", "b", "engine"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind_views()

    def _bind_views(self):
        # W and b as views of theta, and the engine with an empty pool for the buffers of
        # the last m this network is called with (one slot, any size).
        self.engine = Engine(self.sizes, self.activations, self.dtype, WorkspacePool(slots=1))
        W, b = self.engine.unpack(self.theta)
        self.W, self.b = tuple(W), tuple(b)

    @property
    def n_parameters(self) -> int:
        """p = sum_l (n^(l-1) + 1) n^l, the number of weights and biases."""
        return self.engine.n_parameters

    def __repr__(self):
        return (
            f"Network(sizes={list(self.sizes)}, activations={list(self.activations)}, dtype=np.{self.dtype})"
        )

    def plan(self, m: int) -> str:
        """Which kernel and how many threads each contraction of a gradient over `m` samples uses, and why.

        One line per contraction of each layer (Z^l, dE/dW^l, dE/dA^(l-1)): its shape, the
        kernel (``packed``: register tiles over packed panels; ``stream``: the samples
        innermost, for layers the tile would mostly pad), the threads, and the cost
        model's reason (``loopbp.cpu.plan``). `fit` with a `batch_size` runs the plan of
        that m. The plan follows from the sizes, m, the dtype and this CPU; it never
        depends on the thread count, so the result is bitwise the same for any number of
        threads.

        Parameters
        ----------
        m : int
            The number of samples per gradient (the batch size of a fit).

        Returns
        -------
        str
        """
        m = int(check_positive(m, "m", integer=True))
        return planning.describe(self.sizes, m, self.dtype)

    def require_finite_parameters(self) -> None:
        """Raise the ``ValueError`` that names a non-finite weight or bias, if there is one.

        The parameters are writeable views: a NaN written into them is reported like a
        NaN passed to `loopbp.gradient`.
        """
        if not all_finite(self.theta):
            check_parameters(self.W, self.b, self.activations)

    def forward(self, X: ArrayLike, *, backend: str = "loops") -> np.ndarray:
        """A^L for the inputs X; see `loopbp.forward`."""
        if backend != "loops":
            return gradients.forward(self.W, self.b, X, self.activations, backend=backend)
        X = kernel_array(check_samples(X, self.sizes[0], self.dtype))
        self.require_finite_parameters()
        return self.engine.forward(self.theta, X)

    def error(self, X: ArrayLike, Y: ArrayLike, *, backend: str = "loops") -> float:
        """E for inputs X and targets Y; see `loopbp.error`."""
        if backend != "loops":
            return gradients.error(self.W, self.b, X, Y, self.activations, backend=backend)
        X = kernel_array(check_samples(X, self.sizes[0], self.dtype))
        Y = kernel_array(check_targets(Y, self.sizes[-1], X.shape[1], self.dtype))
        self.require_finite_parameters()
        return self.engine.error(self.theta, X, Y)

    def gradient(
        self, X: ArrayLike, Y: ArrayLike, *, backend: str = "loops", scheduler: Any = None
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """(E, dW, db) for inputs X and targets Y; see `loopbp.gradient` (and its `scheduler`,
        for ``dask.array`` X and Y).

        With the loops backend, dW and db are views of one new flat array laid out like
        `theta`.
        """
        if distributed.wants_chunks(X, Y, scheduler):
            self.require_finite_parameters()
            E, grad = distributed.gradient(
                self.theta, self.sizes, self.activations, X, Y, backend=backend, scheduler=scheduler
            )
            dW, db = self.engine.unpack(grad)
            return E, dW, db
        if backend != "loops":
            return gradients.gradient(self.W, self.b, X, Y, self.activations, backend=backend)
        if not self.engine.ready_samples(X, Y):
            # Anything else (other dtypes, layouts, array-likes, bad input) is checked and
            # converted here; ready arrays go straight to the kernels, which check finiteness.
            X = kernel_array(check_samples(X, self.sizes[0], self.dtype))
            Y = kernel_array(check_targets(Y, self.sizes[-1], X.shape[1], self.dtype))
        E, grad = self.engine.gradient(self.theta, X, Y, self._inputs_error)
        dW, db = self.engine.unpack(grad)
        return E, dW, db

    def _inputs_error(self, X, Y):
        # A non-finite X, Y or theta, found by the kernels: the checks name which.
        X = check_samples(X, self.sizes[0], self.dtype)
        check_targets(Y, self.sizes[-1], X.shape[1], self.dtype)
        check_parameters(self.W, self.b, self.activations)

    def fit(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        learning_rate: float,
        epochs: int,
        batch_size: int | None = None,
        backend: str = "loops",
        progress: bool = True,
        callback: Callable[[int, float], bool | None] | None = None,
        scheduler: Any = None,
    ) -> np.ndarray:
        r"""Train by gradient descent, as the series does, updating the parameters in place.

        Each step is :math:`\theta \leftarrow \theta - \alpha \nabla E`.

        Parameters
        ----------
        X : (n^0, m) array
            The inputs, one sample per column.
        Y : (n^L, m) array
            The targets.
        learning_rate : float
            alpha, positive.
        epochs : int
            Passes over the data, positive.
        batch_size : int or None
            None (the default) takes one full-batch step per epoch, as the series does. An
            int gives mini-batch SGD: each epoch shuffles the samples (with a generator
            seeded by the network's `seed`, so a seeded network trains reproducibly) and
            steps once per batch of `batch_size` samples (the last may be smaller).
        backend : {"loops", "einsum", "cuda"}
            The gradient's backend. With the loops backend the epochs run in compiled
            code (``loopbp.cpu.training_loop``), many per call from Python, about 0.05 s' worth:
            the steps, the shuffles and the gathering of batches allocate nothing and
            never return to Python in between. The einsum backend steps from Python. The
            cuda backend (the ``gpu`` extra) keeps theta, X and Y on the GPU for the whole
            fit; per call it copies back only each epoch's E and theta; mini-batches are
            shuffled on the host with the same generator as the loops backend's and
            gathered on the GPU.
        progress : bool
            Show a progress bar with the current E (needs tqdm, and only when standard
            error is a terminal).
        callback : callable or None
            ``callback(epoch, E)`` after each epoch; training stops early if it returns True.
            With a callback, the loops backend returns to Python after every epoch to
            call it.
        scheduler : None, "local", str or distributed.Client
            For ``dask.array`` X and Y, chunked along the samples (``loopbp.distributed``):
            where the chunks run (None: the current Dask client, else a local cluster).
            Each step is one reduction over the chunks, theta sent to the workers with it;
            mini-batches are made of whole chunks, in an order shuffled each epoch from the
            network's seed, until they hold at least `batch_size` samples.

        Returns
        -------
        history : (epochs_run,) float64 array
            ``history[k]`` is E in epoch k at the parameters its gradient was computed at:
            the full-batch E, or for mini-batches their size-weighted mean.

        Raises
        ------
        TrainingDiverged
            E, the gradient or a parameter became non-finite; the message names the epoch.
            The network keeps the last finite parameters.
        KeyboardInterrupt
            Ctrl-C stops training cleanly: parameters change only inside compiled steps,
            which it cannot cut short, so the network keeps those of the last finished
            step (with the loops backend, of the last finished epoch). The exception's
            ``history`` holds E of each finished epoch.

        Examples
        --------
        >>> import numpy as np, loopbp
        >>> net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
        >>> X = np.linspace(0, 2 * np.pi, 100)[None, :]
        >>> history = net.fit(X, np.sin(X), learning_rate=0.1, epochs=500, progress=False)
        >>> bool(history[-1] < history[0])
        True
        """
        return training.fit(
            self,
            X,
            Y,
            learning_rate=learning_rate,
            epochs=epochs,
            batch_size=batch_size,
            backend=backend,
            progress=progress,
            callback=callback,
            scheduler=scheduler,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the sizes, activations, dtype and parameters to `path` as a .npz file.

        The file holds plain arrays only (no pickles); `loopbp.load` reads it back bit
        for bit. `path` is used exactly as given (no ".npz" is appended).
        """
        saving.save(self, path)


def load(path: str | os.PathLike) -> Network:
    """Read a network written by `Network.save`.

    The file is opened without pickle support, so it cannot run code, and every field
    is checked as user input is: a truncated, tampered or foreign file raises a
    ``ValueError`` that names the file and says what is wrong.

    Examples
    --------
    >>> import os, tempfile, numpy as np, loopbp
    >>> net = loopbp.Network([2, 3, 1], ["tanh", "identity"], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> net.save(path)
    >>> bool(np.array_equal(loopbp.load(path).theta, net.theta))
    True
    """
    path, sizes, activations, dtype, theta = saving.read(path)
    try:
        # The network's own checks, with the file named: the field names are the arguments'.
        net = Network(sizes, activations, dtype=dtype, seed=0)
        net.theta[...] = check_theta(theta, net.n_parameters, net.dtype, net.sizes)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path!s}: {err}") from None
    return net
