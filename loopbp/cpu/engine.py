"""The loops backend's engine: from arrays to the compiled drivers and back, in one place.

Everything that runs the Numba loops goes through here: `loopbp.gradient`, `forward`
and `error` (``loopbp.gradients``), `Network` and its `fit` (``loopbp.training``).

- The parameters travel as one flat vector theta, laid out as ``loopbp.layout`` says
  (`layout.pack`, `layout.unpack`).
- A `Workspace` holds the buffers of one call (A^1..A^L, the deltas, the scratch); a
  `WorkspacePool` keeps them between calls, so that repeated calls allocate only what they
  return.
- An `Engine` knows one network's sizes, activations and dtype, and makes the calls into
  the one compiled entry point, ``loopbp.cpu.driver.run``, with threads when they pay
  (`worth_threads`) and under ``loopbp.cpu.threads``'s rules; until the fast kernels are
  compiled, into ``loopbp.cpu.serial_driver.run``, which takes the same arguments
  (``loopbp.cpu.warming`` chooses).
- Finiteness is checked once per call: the gradient's inputs and results inside its
  compiled call (``driver.run``), the forward pass's and E by
  `require_finite`; `overflow_error` is the error for finite inputs with a non-finite
  result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import layout
from ..activations import ACTIVATIONS
from ..bounded_cache import BoundedCache
from ..errors import overflow_error, require_finite
from ..validation import FLOAT_DTYPES, activation_codes
from . import driver, layer_loop, threads, warming
from .workspace import Workspace, WorkspacePool, shared_workspaces


def kernel_array(a: np.ndarray) -> np.ndarray:
    """`a` itself if the kernels take it as it is, else a C-contiguous copy.

    The kernels are compiled for writeable, aligned, C-contiguous arrays only; copying the
    rare other layouts keeps one compiled version per dtype and leaves the caller's array
    untouched.
    """
    if a.flags.c_contiguous and a.flags.writeable and a.flags.aligned:
        return a
    return np.array(a, order="C")


def _ready(a, rows, cols, dtype):
    # Whether `a` can go to the kernels as it is: an ndarray of the dtype and shape, in
    # the layout the kernels are compiled for. One attribute at a time, cheapest first.
    if type(a) is not np.ndarray or a.dtype != dtype or a.ndim != 2:
        return False
    rows_a, cols_a = a.shape
    if rows_a != rows or cols_a == 0 or (cols is not None and cols_a != cols):
        return False
    flags = a.flags
    return flags.c_contiguous and flags.writeable and flags.aligned


class Engine:
    """The loops backend for one network: its sizes, activations and dtype.

    Parameters
    ----------
    sizes : tuple of int
        n^0, ..., n^L, checked.
    activations : tuple of str
        g^1, ..., g^L, checked.
    dtype : numpy dtype
        float32 or float64.
    pool : WorkspacePool
        Where the buffers of each call come from and go back to.
    lean_forward : bool
        `forward` and `error` take buffers without the backward pass's, for callers that
        seldom take a gradient with the same m (the functions); by default they take the
        gradient's, so that a `Network` keeps one workspace for all three.

    Attributes
    ----------
    sizes, activations, dtype, pool
        As given.
    network : (int64 array, int64 array)
        The sizes and the activation codes as the compiled drivers take them
        (``layer_loop.network_arrays``).
    n_parameters : int
        p, the length of theta.
    """

    def __init__(
        self,
        sizes: tuple[int, ...],
        activations: tuple[str, ...],
        dtype: np.dtype,
        pool: WorkspacePool,
        lean_forward: bool = False,
    ):
        self.sizes, self.activations, self.dtype, self.pool = sizes, activations, dtype, pool
        self._forward_backward = not lean_forward
        self.network = layer_loop.network_arrays(sizes, activation_codes(activations))
        self.n_parameters = layout.parameter_count(sizes)
        # What the modes of driver.run that do not use them get for Y, grad and the
        # training arguments: values of the same types, so that one compiled function serves.
        self._no_Y, self._no_grad = np.empty((0, 0), dtype), np.empty(0, dtype)
        self._not_training = driver.unused_training_arguments(np.dtype(dtype))
        # driver.run once this process runs the fast kernels for this network; until then
        # warming.entry_point chooses at each call (see loopbp.cpu.warming).
        self._fast_entry = None

    def ready_samples(self, X, Y) -> int:
        """m if X and Y can go to the kernels as they are (ndarrays of the dtype and shape,
        C-contiguous, writeable and aligned), else 0."""
        if _ready(X, self.sizes[0], None, self.dtype) and _ready(Y, self.sizes[-1], X.shape[1], self.dtype):
            return X.shape[1]
        return 0

    def unpack(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The views W^l and b^l of `flat`, laid out like theta."""
        return layout.unpack(flat, self.sizes)

    def _run(self, mode, X, Y, theta, grad, workspace, training=None):
        # driver.run in `mode` (or, until its kernels are compiled, serial_driver.run),
        # threaded when it pays and under thread_safety's lock.
        entry = self._fast_entry
        if entry is None:
            entry = warming.entry_point(self.sizes, self.dtype)
            if entry is driver.run:
                self._fast_entry = entry
        if not theta.flags.writeable and mode != driver.TRAIN:
            # driver.run is compiled for a writeable theta, which training writes; a read-only
            # one (a network unpickled from a read-only memory map) is read from a copy.
            # (`fit` refuses read-only parameters before it gets here.)
            theta = theta.copy()
        return threads.run(
            entry,
            mode,
            theta,
            self.network,
            X,
            Y,
            grad,
            workspace.buffers(serial=entry is not driver.run),
            *workspace.kernels(),
            self._not_training if training is None else training,
            parallel=entry is driver.run and workspace.threads_pay(),
        )

    def gradient(
        self,
        theta: np.ndarray,
        X: np.ndarray,
        Y: np.ndarray,
        inputs_error: Callable[[np.ndarray, np.ndarray], None] | None = None,
        parameters: tuple | None = None,
    ) -> tuple[float, np.ndarray]:
        """E and a new flat gradient, laid out like theta, in one compiled call.

        With `parameters`, the lists (W, b), theta is None: W and b are packed into the
        workspace's own theta buffer (`Workspace.pack`) instead of a new array.

        X and Y must be ready for the kernels (`ready_samples`). The call checks theta, X
        and Y for finiteness and the result too: on a non-finite input it calls
        ``inputs_error(X, Y)``, which should raise the error that names it; on a
        non-finite result from finite inputs it raises `overflow_error`.
        """
        workspace = self.pool.take(self.sizes, X.shape[1], self.dtype)
        try:
            if parameters is not None:
                theta = workspace.pack(*parameters, self.n_parameters)
            grad = np.empty_like(theta)
            status, E, _ = self._run(driver.GRADIENT, X, Y, theta, grad, workspace)
        finally:
            self.pool.give(workspace)
        if status == layer_loop.INPUT_NOT_FINITE and inputs_error is not None:
            inputs_error(X, Y)
        if status != layer_loop.FINITE:
            raise overflow_error("gradient", self.dtype)
        return E, grad

    def _forward(self, theta, X, workspace):
        # A^L into the workspace; returns its view.
        self._run(driver.FORWARD, X, self._no_Y, theta, self._no_grad, workspace)
        return workspace.output()

    def forward(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """A^L as a new array, for finite theta and X ready for the kernels; checked finite."""
        with self.pool.lent(self.sizes, X.shape[1], self.dtype, self._forward_backward) as workspace:
            A_L = self._forward(theta, X, workspace).copy()
        require_finite("forward pass", self.dtype, A_L)
        return A_L

    def error(self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> float:
        """E, for finite theta, X and Y ready for the kernels; checked finite."""
        with self.pool.lent(self.sizes, X.shape[1], self.dtype, self._forward_backward) as workspace:
            E = float(layer_loop.error_from_output(self._forward(theta, X, workspace), Y))
        require_finite("error", self.dtype, E)
        return E

    def train_epochs(
        self,
        theta: np.ndarray,
        X: np.ndarray,
        Y: np.ndarray,
        grad: np.ndarray,
        workspace: Workspace,
        alpha: np.floating,
        first: int,
        count: int,
        history: np.ndarray,
        batch_size: int,
        shuffling: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> int:
        """Epochs first..first + count - 1 of gradient descent, in one compiled call.

        Parameters
        ----------
        theta : (p,) array
            Updated in place, step by step.
        X, Y : arrays
            The whole training set, ready for the kernels.
        grad : (p,) array
            Room for each step's gradient.
        workspace : Workspace
            Sized for `batch_size` samples (and a smaller last batch: `Workspace.grow_scratch`).
        alpha : float of theta's dtype
            The learning rate.
        first, count : int
            The epochs to run.
        history : float64 array
            Receives E of each epoch at ``history[epoch]``.
        batch_size : int
            m for full-batch descent, else the size of each shuffled batch.
        shuffling : (rng, order, X_batch, Y_batch)
            The generator's state, the sample order and room for one batch of X and of Y
            (see ``driver.run``).

        Returns
        -------
        int
            How many epochs finished: `count`, or fewer if one was not finite (theta then
            holds the parameters of the last finite step).
        """
        return self._run(
            driver.TRAIN, X, Y, theta, grad, workspace, (alpha, first, count, history, batch_size, *shuffling)
        )[2]


#: Engines of the (sizes, activations, dtype) the functions were last called with, which
#: share `shared_workspaces`; at most `ENGINES_KEPT`, the oldest going first.
ENGINES_KEPT = 64
_engines = BoundedCache(ENGINES_KEPT)


def engine_for(sizes: tuple[int, ...], activations: tuple[str, ...], dtype: np.dtype) -> Engine:
    """The engine of `loopbp.gradient`, `forward` and `error` for checked arguments."""
    key = (sizes, activations, dtype)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines.put(key, Engine(sizes, activations, dtype, shared_workspaces, lean_forward=True))
    return engine


def ready_engine(W, b, activations) -> Engine | None:
    """The engine for W, b and activations if they need no conversion, else None.

    Ready means: lists or tuples of L ndarrays of one float dtype, 2-D W and 1-D b of
    matching shapes, and known activation names. Finiteness is left to the kernels.
    Anything else returns None, and the full checks of ``loopbp.validation`` take over.
    """
    if type(W) not in (list, tuple) or type(b) not in (list, tuple) or type(activations) not in (list, tuple):
        return None
    L = len(W)
    if L == 0 or len(b) != L or len(activations) != L:
        return None
    names = tuple(activations)
    if type(W[0]) is not np.ndarray:
        return None
    dtype = W[0].dtype
    # (np.dtype compares equal to None, so the type test above must come first.)
    if dtype not in FLOAT_DTYPES or not dtype.isnative:
        return None
    sizes = [0] * (L + 1)
    for k in range(L):
        w, v = W[k], b[k]
        if type(w) is not np.ndarray or type(v) is not np.ndarray or w.dtype != dtype or v.dtype != dtype:
            return None
        if w.ndim != 2 or v.ndim != 1:
            return None
        n_out, n_in = w.shape
        if n_out == 0 or n_in == 0 or v.shape[0] != n_out or (k and n_in != sizes[k]):
            return None
        sizes[k], sizes[k + 1] = n_in, n_out
    try:
        engine = _engines.get((tuple(sizes), names, dtype))
    except TypeError:  # an unhashable entry: not a name, and the full checks say so
        return None
    if engine is None:
        if not all(isinstance(g, str) and g in ACTIVATIONS for g in names):
            return None
        engine = engine_for(tuple(sizes), names, dtype)
    return engine
