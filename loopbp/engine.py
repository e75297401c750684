"""The loops backend's engine: from arrays to the compiled drivers and back, in one place.

Everything that runs the Numba loops goes through here: `loopbp.gradient`, `forward`
and `error` (``loopbp.gradients``), `Network`, its `fit` (``loopbp.training``) and the
kernel profiler (``benchmarks/kernel_profile.py``, through `Engine.kernel_times`).

- The parameters travel as one flat vector theta, laid out as ``loopbp.layout`` says
  (`layout.pack`, `layout.unpack`).
- A `Workspace` holds the buffers of one call (A^1..A^L, the deltas, the scratch); a
  `WorkspacePool` keeps them between calls, so that repeated calls allocate only what they
  return.
- An `Engine` knows one network's sizes, activations and dtype, and makes the calls into
  the one compiled entry point, ``loopbp.driver.run``, with threads when they pay
  (`worth_threads`) and under ``loopbp.thread_safety``'s rules; until the fast kernels are
  compiled, into ``loopbp.serial_driver.run``, which takes the same arguments
  (``loopbp.warming`` chooses).
- Finiteness is checked once per call: the gradient's inputs and results inside its
  compiled call (``driver.run``), the forward pass's and E by
  `require_finite`; `overflow_error` is the error for finite inputs with a non-finite
  result.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence

import numba
import numpy as np

from . import driver, layout, narrow_kernels, passes, simd, thread_safety, warming
from . import plan as planning
from .activations import ACTIVATIONS
from .validation import FLOAT_DTYPES, activation_codes

#: Below this many multiply-adds per gradient the loops run in the calling thread:
#: starting a parallel region costs about 3 us here, and a tiny network's gradient takes
#: about a dozen of them. Serial and parallel runs give bitwise the same result.
SERIAL_BELOW = 250_000


def _big_enough(sizes, m):
    return sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:])) * m >= SERIAL_BELOW


def worth_threads(sizes: Sequence[int], m: int) -> bool:
    """Whether the network is big enough for parallel regions to pay (see `SERIAL_BELOW`)."""
    return _big_enough(sizes, m) and thread_safety.threads_allowed()


class Workspace:
    """The buffers one forward pass or gradient needs, reused across calls.

    Parameters
    ----------
    sizes : sequence of int
        n^0, ..., n^L.
    m : int
        The number of samples.
    dtype : numpy dtype
        float32 or float64.
    backward : bool
        Also hold the delta buffers and the scratch of the backward pass, for
        ``passes.gradient_pass``.
    tile : simd.Tile or None, optional
        The kernels the scratch is sized for (see ``loopbp.passes``); the default is
        ``simd.tile(dtype)``, the host's.
    narrow : bool or None, optional
        Run the kernels of ``loopbp.narrow_kernels`` instead of `tile`'s; None (the
        default) takes them when every layer is at most ``narrow_kernels.WIDTH`` wide.
        Kept as True or None (the drivers' compile-time switch: see ``passes.forward_pass``).
    plan : (L, 3, 2) int64 array or None, optional
        Each contraction's kernel and threads (``loopbp.plan``); None (the default)
        makes the plan for these sizes, m and dtype on this host.

    Attributes
    ----------
    activations : 1-D array
        A^1..A^L, one after another.
    deltas : (2, max_l n^l m) array
        The two delta buffers (empty without `backward`).
    squares : (n^L,) float64 array
        sum_c (A^L_ic - Y_ic)^2 for each i, the terms of E (empty without `backward`).
    scratch : 1-D array
        The shared part, then one packed block per thread (see ``loopbp.layout``), made at
        its first use.
    plan : (L, 3, 2) int64 array
        As given or made.
    """

    _HOST = object()

    def __init__(self, sizes, m, dtype, backward=True, tile=_HOST, narrow=None, plan=None):
        sizes = [int(n) for n in sizes]
        self.sizes, self.m, self.dtype, self.backward = tuple(sizes), int(m), np.dtype(dtype), backward
        self.tile = simd.tile(self.dtype) if tile is Workspace._HOST else tile
        narrow = narrow_kernels.is_narrow(sizes) if narrow is None else bool(narrow)
        # True or None, not a bool: the drivers prune the kernel set not taken at compile time.
        self.narrow = True if narrow else None
        self._big_enough = _big_enough(sizes, m)
        if plan is None:
            plan = planning.make(sizes, m, self.dtype, self.tile, numba.config.NUMBA_NUM_THREADS)
        self.plan = plan
        self.activations = np.empty(sum(sizes[1:]) * m, dtype)
        self.deltas = np.empty((2, max(sizes[1:]) * m if backward else 0), dtype)
        self.squares = np.empty(sizes[-1] if backward else 0, np.float64)
        # The scratch is made at its first use: the serial loops, which run while the fast
        # kernels compile, need none (and its size takes a compiled function to work out).
        self._scratch = None
        self._no_scratch = np.empty(0, dtype)
        # Room for theta, for callers that hand W and b as lists (`pack`).
        self.theta = np.empty(0, dtype)

    def pack(self, W, b, p: int) -> np.ndarray:
        """W^1, b^1, ..., W^L, b^L copied into this workspace's theta buffer (p values).

        `loopbp.gradient` packs its lists into the same buffer call after call: a new
        array for theta (800 KB for a 784-128-10 network in float64) came back from the
        system at each call with every page to be faulted in again, which took longer than
        a mini-batch's gradient.
        """
        if self.theta.shape[0] != p:
            self.theta = np.empty(p, self.dtype)
        np.concatenate([a.ravel() for pair in zip(W, b) for a in pair], out=self.theta)
        return self.theta

    def threads_pay(self) -> bool:
        """Whether calls with this workspace should start parallel regions (`worth_threads`)."""
        # Whether the process may start them is asked at each call: it changes in a forked child.
        return self._big_enough and thread_safety.threads_allowed()

    def _scratch_length(self, m):
        if self.narrow:
            return narrow_kernels.scratch_length(self.sizes, m, self.backward)
        # Sized for the most threads Numba can ever run, so set_num_threads cannot outgrow it.
        threads = numba.config.NUMBA_NUM_THREADS
        return layout.scratch_length(self.tile, self.sizes, m, self.backward, threads)

    @property
    def scratch(self) -> np.ndarray:
        """The scratch: the shared part, then one packed block per thread (see ``loopbp.layout``)."""
        if self._scratch is None:
            self._scratch = np.empty(self._scratch_length(self.m), self.dtype)
        return self._scratch

    def grow_scratch(self, m: int) -> None:
        """Make the scratch large enough for `m` samples as well (a smaller last batch)."""
        length = self._scratch_length(m)
        if length > self.scratch.shape[0]:
            self._scratch = np.empty(length, self.dtype)

    @property
    def nbytes(self) -> int:
        """The bytes of all its buffers."""
        return (
            self.activations.nbytes
            + self.deltas.nbytes
            + self.squares.nbytes
            + (0 if self._scratch is None else self._scratch.nbytes)
            + self.theta.nbytes
        )

    def buffers(self, serial: bool = False) -> tuple:
        """(activations, deltas, scratch, squares, tile, narrow, plan), as every driver takes them.

        A narrow network's plan goes as None: with `narrow` None for the others, each
        driver compiles one kernel set alone (see ``passes.forward_pass``). With `serial`,
        for ``serial_driver.run``, an empty scratch.
        """
        plan = None if self.narrow else self.plan
        scratch = self._no_scratch if serial else self.scratch
        return self.activations, self.deltas, scratch, self.squares, self.tile, self.narrow, plan

    def output(self) -> np.ndarray:
        """A^L, the (n^L, m) view of `activations`."""
        return layout.output(self.activations, self.sizes, self.m)


class WorkspacePool:
    """Workspaces kept between calls, each lent to one caller at a time.

    `lent` takes a kept workspace out of the pool (or makes a new one) for the length of
    a ``with`` block, so two threads never share one, and keeps it afterwards if it is at
    most `max_bytes` and one of at most `slots`. Taking and keeping are a single dict
    operation each, which the GIL makes atomic: no lock is needed.

    Parameters
    ----------
    slots : int
        How many workspaces to keep; the oldest goes first.
    max_bytes : int or None
        Keep none larger than this (None: any size).

    Attributes
    ----------
    kept : dict
        The workspaces kept, by (sizes, m, dtype, backward).
    """

    def __init__(self, slots: int, max_bytes: int | None = None):
        self.slots, self.max_bytes = slots, max_bytes
        self.kept = {}

    def take(self, sizes: tuple[int, ...], m: int, dtype: np.dtype, backward: bool = True) -> Workspace:
        """A workspace for these arguments, out of the pool or new; hand it back with `give`.

        `sizes` must be a tuple of Python ints and `dtype` a numpy dtype (as `Engine`
        keeps them): the key is built without converting them, as this runs on every call.
        """
        workspace = self.kept.pop((sizes, m, dtype, backward), None)
        if workspace is None:
            workspace = Workspace(sizes, m, dtype, backward)
        return workspace

    def give(self, workspace: Workspace) -> None:
        """Keep `workspace` for the next call, if it is small enough."""
        w = workspace
        if self.max_bytes is None or w.nbytes <= self.max_bytes:
            while len(self.kept) >= self.slots:
                try:
                    self.kept.pop(next(iter(self.kept)), None)
                except (StopIteration, RuntimeError):  # another thread emptied or changed it
                    break
            self.kept[(w.sizes, w.m, w.dtype, w.backward)] = w

    @contextlib.contextmanager
    def lent(self, sizes, m, dtype, backward=True):
        """`take` and `give` around a ``with`` block."""
        workspace = self.take(tuple(int(n) for n in sizes), int(m), np.dtype(dtype), backward)
        try:
            yield workspace
        finally:
            self.give(workspace)


#: The workspaces of `loopbp.gradient`, `forward` and `error`: up to 8 of at most 32 MiB
#: are kept between calls, because fresh buffers cost a page fault per 4 KiB on first
#: touch, most of a small network's time (a 16-1024-1 network at m = 1,000, float64,
#: whose workspace is 24 MiB: 13.5 ms a call when it was made afresh, 10.6 ms kept).
#: Larger ones are made for each call.
shared_workspaces = WorkspacePool(slots=8, max_bytes=32 * 2**20)


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
    sizes_array, codes : int64 arrays
        The sizes and the activation codes as the compiled drivers take them.
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
        self.sizes_array = np.array(sizes, dtype=np.int64)
        self.codes = activation_codes(activations)
        self.n_parameters = layout.parameter_count(sizes)
        # What the modes of driver.run that do not use them get for Y, grad and the
        # training arguments: values of the same types, so that one compiled function serves.
        self._no_Y, self._no_grad = np.empty((0, 0), dtype), np.empty(0, dtype)
        self._not_training = driver.unused_training_arguments(np.dtype(dtype))
        # driver.run once this process runs the fast kernels for this network; until then
        # warming.entry_point chooses at each call (see loopbp.warming).
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
        return thread_safety.run(
            entry,
            mode,
            theta,
            self.sizes_array,
            self.codes,
            X,
            Y,
            grad,
            *workspace.buffers(serial=entry is not driver.run),
            *(self._not_training if training is None else training),
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
        if status == passes.INPUT_NOT_FINITE and inputs_error is not None:
            inputs_error(X, Y)
        if status != passes.FINITE:
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
            E = float(passes.error_from_output(self._forward(theta, X, workspace), Y))
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

    def kernel_times(
        self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, repeat: int = 5, narrow: bool = False
    ) -> list[tuple[str, float, float | None]]:
        """The median seconds of each step of one gradient, timed inside the real driver.

        ``passes.gradient_pass`` can stop after any step (``passes.gradient_steps``): step
        k's time is the median of runs that stop after it, less the median of runs that
        stop before it. The steps' times add up to a whole gradient's; each is as noisy as
        the difference of two medians.

        Parameters
        ----------
        theta, X, Y
            As in `gradient`.
        repeat : int
            Runs per step.
        narrow : bool
            Time the narrow kernels (one step, the whole network) if they suit the
            network; by default the packed or portable kernels, step by step.

        Returns
        -------
        list of (name, seconds, GFLOP or None)
        """
        sizes, m = self.sizes, X.shape[1]
        workspace = Workspace(sizes, m, self.dtype, narrow=narrow and narrow_kernels.is_narrow(sizes))
        grad = np.empty_like(theta)

        def gradient(threads, stop):
            args = (theta, self.sizes_array, self.codes, X, Y, grad, *workspace.buffers())
            return passes.gradient_pass(*args, threads, None, stop)

        def median(stop):
            def run():
                thread_safety.run(lambda threads: gradient(threads, stop), parallel=workspace.threads_pay())

            run()
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            return statistics.median(samples)

        if workspace.narrow:
            return [("narrow kernels, the whole gradient", median(-1), None)]
        times, before = [], 0.0
        for k, (name, gflop) in enumerate(passes.gradient_steps(sizes)):
            until = median(k)
            times.append((name, until - before, gflop(m) if gflop else None))
            before = until
        return times


#: Engines of the (sizes, activations, dtype) the functions were last called with, which
#: share `shared_workspaces`; at most `ENGINES_KEPT`, the oldest going first.
_engines: dict = {}
ENGINES_KEPT = 64


def engine_for(sizes: tuple[int, ...], activations: tuple[str, ...], dtype: np.dtype) -> Engine:
    """The engine of `loopbp.gradient`, `forward` and `error` for checked arguments."""
    key = (sizes, activations, dtype)
    engine = _engines.get(key)
    if engine is None:
        while len(_engines) >= ENGINES_KEPT:
            try:
                _engines.pop(next(iter(_engines)), None)
            except (StopIteration, RuntimeError):  # another thread emptied or changed it
                break
        engine = _engines[key] = Engine(sizes, activations, dtype, shared_workspaces, lean_forward=True)
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
