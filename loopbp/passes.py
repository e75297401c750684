"""The loop over the layers l: the forward pass and back-propagation, for every kernel set.

Two arguments choose the kernels of the three contractions, both at compile time (Numba
prunes the branches not taken, so each compiled driver holds one kernel set alone):

- ``tile``, a ``simd.Tile``: the packed contractions of ``loopbp.packed_kernels``, with
  the register tile of the host's vector width (``simd.tile()``), what the loops backend
  runs on x86 with AVX2 or AVX-512; None: the portable dot-product tiles of
  ``loopbp.tiled_kernels``;
- ``plain=True``: the plain loop nests of ``loopbp.kernels`` instead (the seed's
  equations as written, kept as a second reference for the tests).

The elementwise equations (dE/dA^L, and for the portable and plain sets dE/dZ^l =
dE/dA^l g' and dE/db^l) are the plain kernels.

Storage, shared by the drivers and by ``loopbp.gradients``:

- the parameters live in one flat vector theta holding, for l = 1..L, W^l
  (n^l x n^(l-1), row-major) followed by b^l (n^l);
- A^0 = X and Y are (n^0, m) and (n^L, m), C-contiguous, one sample per column;
- A^1..A^L live one after another in one flat buffer; the forward pass writes
  Z^l there and overwrites it with A^l = g^l(Z^l), because every g' is computed
  from A^l (see ``loopbp.activations``);
- the backward pass alternates between two delta buffers of max_l n^l x m: each
  holds dE/dA^l and is turned in place into dE/dZ^l;
- a scratch buffer holds a part shared by all threads (`shared_scratch_length`): the
  packed panels of each contraction's left operand, or (W^l)^T for the portable
  dE/dA^(l-1); then each thread's packed block.

A `Workspace` holds these buffers, so that repeated calls with one network and one m
(``Network`` and its ``fit``) allocate nothing.
"""

import contextlib

import numba
import numpy as np
from numba import njit

from . import kernels, narrow_kernels, packed_kernels, simd, thread_safety, tiled_kernels

#: Below this many multiply-adds per gradient the tiled path runs in the calling thread:
#: starting a parallel region costs about 3 us here, and a tiny network's gradient takes
#: about a dozen of them. Serial and parallel runs give bitwise the same result.
SERIAL_BELOW = 250_000


@njit(cache=True)
def _matrix(buffer, offset, rows, cols):
    """The (rows, cols) C-ordered view of `buffer` starting at `offset`."""
    return buffer[offset : offset + rows * cols].reshape((rows, cols))


@njit(cache=True)
def _weight_offset(sizes, l):
    """Offset of W^l in theta; b^l follows it, n^l n^(l-1) further on."""
    # Recomputed on each use rather than tabulated: a table would be an allocation per call.
    offset = 0
    for k in range(1, l):
        offset += (sizes[k - 1] + 1) * sizes[k]
    return offset


@njit(cache=True)
def _activation_offset(sizes, m, l):
    """Offset of A^l in the activation buffer."""
    offset = 0
    for k in range(1, l):
        offset += sizes[k] * m
    return offset


@njit(cache=True)
def _weights(theta, sizes, l):
    """W^l, a view of theta."""
    return _matrix(theta, _weight_offset(sizes, l), sizes[l], sizes[l - 1])


@njit(cache=True)
def _biases(theta, sizes, l):
    """b^l, a view of theta."""
    start = _weight_offset(sizes, l) + sizes[l] * sizes[l - 1]
    return theta[start : start + sizes[l]]


@njit(cache=True)
def shared_scratch_length(tile, sizes, m, backward):
    """Length of the part of the scratch that all threads share.

    With a tile: the largest left operand packed in panels of MR rows, W^l (forward),
    dE/dZ^l (dE/dW^l) or (W^(l+1))^T (dE/dA^l). Without (the portable kernels): the
    largest (W^l)^T for l >= 2, for dE/dA^(l-1); nothing for the forward pass alone.
    """
    L = sizes.shape[0] - 1
    n = 0
    if tile is None:
        if backward:
            for l in range(2, L + 1):
                n = max(n, sizes[l] * sizes[l - 1])
    else:
        mr = simd.tile_shape(tile)[0]
        for l in range(1, L + 1):
            rows = (sizes[l] + mr - 1) // mr * mr
            n = max(n, rows * sizes[l - 1])
            if backward:
                n = max(n, rows * m)
                if l < L:
                    n = max(n, rows * sizes[l + 1])
    return n


def scratch_length(tile, sizes, m, backward, threads):
    """Length of the whole scratch buffer: the shared part, then `threads` threads' blocks."""
    shared = shared_scratch_length(tile, np.asarray(sizes, np.int64), m, backward)
    if tile is None:
        return shared + tiled_kernels.scratch_length(max(sizes), threads)
    # (K, columns of C): the forward pass, then dE/dA^(l-1) and dE/dW^l.
    contractions = [(n, m) for n in sizes[:-1]]
    if backward:
        contractions += [(n, m) for n in sizes[2:]] + [(m, n) for n in sizes[:-1]]
    return shared + packed_kernels.scratch_length(tile, threads, contractions)


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
        `gradient_pass`.
    tile : simd.Tile or None, optional
        The kernels the scratch is sized for (see the module docstring); the default is
        ``simd.tile(dtype)``, the host's.
    narrow : bool or None, optional
        Run the kernels of ``loopbp.narrow_kernels`` instead of `tile`'s; None (the
        default) takes them when every layer is at most ``narrow_kernels.WIDTH`` wide.

    Attributes
    ----------
    activations : 1-D array
        A^1..A^L, one after another.
    deltas : (2, max_l n^l m) array
        The two delta buffers (empty without `backward`).
    squares : (n^L,) float64 array
        sum_c (A^L_ic - Y_ic)^2 for each i, the terms of E (empty without `backward`).
    scratch : 1-D array
        The shared part (`shared_scratch_length`), then one packed block per thread.
    """

    _HOST = object()

    def __init__(self, sizes, m, dtype, backward=True, tile=_HOST, narrow=None):
        sizes = [int(n) for n in sizes]
        self.sizes, self.m, self.dtype, self.backward = tuple(sizes), int(m), np.dtype(dtype), backward
        self.tile = simd.tile(self.dtype) if tile is Workspace._HOST else tile
        self.narrow = narrow_kernels.is_narrow(sizes) if narrow is None else bool(narrow)
        self._big_enough = _big_enough(sizes, m)
        self.activations = np.empty(sum(sizes[1:]) * m, dtype)
        self.deltas = np.empty((2, max(sizes[1:]) * m if backward else 0), dtype)
        self.squares = np.empty(sizes[-1] if backward else 0, np.float64)
        self.scratch = np.empty(self._scratch_length(m), dtype)

    def threads_pay(self):
        """Whether calls with this workspace should start parallel regions (`worth_threads`)."""
        # Whether the process may start them is asked at each call: it changes in a forked child.
        return self._big_enough and thread_safety.threads_allowed()

    def _scratch_length(self, m):
        if self.narrow:
            return narrow_kernels.scratch_length(self.sizes, m, self.backward)
        # Sized for the most threads Numba can ever run, so set_num_threads cannot outgrow it.
        threads = numba.config.NUMBA_NUM_THREADS
        return scratch_length(self.tile, self.sizes, m, self.backward, threads)

    def grow_scratch(self, m):
        """Make the scratch large enough for `m` samples as well (a smaller last batch)."""
        length = self._scratch_length(m)
        if length > self.scratch.shape[0]:
            self.scratch = np.empty(length, self.dtype)


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
    """

    def __init__(self, slots, max_bytes=None):
        self.slots, self.max_bytes = slots, max_bytes
        self.kept = {}

    def take(self, sizes, m, dtype, backward=True):
        """A workspace for these arguments, out of the pool or new; hand it back with `give`.

        `sizes` must be a tuple of Python ints and `dtype` a numpy dtype (as `Network`
        keeps them): the key is built without converting them, as this runs on every call.
        """
        workspace = self.kept.pop((sizes, m, dtype, backward), None)
        if workspace is None:
            workspace = Workspace(sizes, m, dtype, backward)
        return workspace

    def give(self, workspace):
        """Keep `workspace` for the next call, if it is small enough."""
        w = workspace
        if (
            self.max_bytes is None
            or w.activations.nbytes + w.deltas.nbytes + w.scratch.nbytes <= self.max_bytes
        ):
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


@njit(cache=True)
def all_finite(values):
    """Whether every entry of the 1-D array `values` is finite."""
    for k in range(values.shape[0]):
        if not np.isfinite(values[k]):
            return False
    return True


@njit(cache=True)
def _sum_in_order(values):
    # A serial sum in index order, so E does not depend on the thread count.
    s = 0.0
    for i in range(values.shape[0]):
        s += values[i]
    return s


def _big_enough(sizes, m):
    return sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:])) * m >= SERIAL_BELOW


def worth_threads(sizes, m):
    """Whether the network is big enough for parallel regions to pay (see SERIAL_BELOW)."""
    return _big_enough(sizes, m) and thread_safety.threads_allowed()


def run_forward(theta, sizes, codes, X, workspace):
    """`forward_pass` with the workspace's kernels into `workspace`, threaded when it pays."""
    w = workspace
    thread_safety.run(
        forward_pass,
        theta,
        sizes,
        codes,
        X,
        w.activations,
        w.scratch,
        w.tile,
        w.narrow,
        parallel=w.threads_pay(),
    )


#: What `checked_gradient` found: all finite, a non-finite input (X, Y or theta), or a
#: non-finite E or gradient from finite inputs (an overflow).
FINITE, INPUT_NOT_FINITE, RESULT_NOT_FINITE = 0, 1, 2


@njit(cache=True)
def checked_gradient(
    theta, sizes, codes, X, Y, grad, activations, deltas, scratch, squares, tile, narrow, threads
):
    """`gradient_pass`, with the finiteness of its inputs and results checked in the same call.

    Returns
    -------
    status : int
        `FINITE`, `INPUT_NOT_FINITE` (nothing was computed) or `RESULT_NOT_FINITE`.
    E : float
    """
    if not (all_finite(theta) and all_finite(X.ravel()) and all_finite(Y.ravel())):
        return INPUT_NOT_FINITE, np.nan
    E = gradient_pass_in_process(
        theta, sizes, codes, X, Y, grad, activations, deltas, scratch, squares, tile, narrow, threads
    )
    if not (np.isfinite(E) and all_finite(grad)):
        return RESULT_NOT_FINITE, E
    return FINITE, E


def _run_backward(kernel, theta, sizes, codes, X, Y, grad, workspace):
    # kernel(theta, ..., the workspace's buffers and kernels, threads), threaded when it pays.
    w = workspace
    return thread_safety.run(
        kernel,
        theta,
        sizes,
        codes,
        X,
        Y,
        grad,
        w.activations,
        w.deltas,
        w.scratch,
        w.squares,
        w.tile,
        w.narrow,
        parallel=w.threads_pay(),
    )


def run_checked_gradient(theta, sizes, codes, X, Y, grad, workspace):
    """`checked_gradient` with the workspace's kernels, threaded when it pays."""
    return _run_backward(checked_gradient, theta, sizes, codes, X, Y, grad, workspace)


def run_gradient(theta, sizes, codes, X, Y, grad, workspace):
    """`gradient_pass` with the workspace's kernels, threaded when it pays; returns E."""
    return _run_backward(gradient_pass, theta, sizes, codes, X, Y, grad, workspace)


# Inlined into gradient_pass rather than called: a call is one more compiled level that
# re-optimises every kernel below it. Branch pruning still sees `tile` and `plain`.
@njit(cache=True, inline="always")
def forward_pass(theta, sizes, codes, X, activations, scratch, tile, narrow, threads, plain=None):
    """Run the forward pass for l = 1..L, writing A^1, ..., A^L into `activations`.

    Parameters
    ----------
    theta : (p,) array
        The flat parameters (see the module docstring).
    sizes : (L+1,) int64 array
        n^0, ..., n^L.
    codes : (L,) int64 array
        The activation code of each layer.
    X : (n^0, m) C-contiguous array
        A^0.
    activations : 1-D array
        Output: A^1, ..., A^L one after another (`Workspace.activations`).
    scratch : 1-D array
        The workspace's scratch (`Workspace.scratch`), sized for `tile`.
    tile : simd.Tile or None
        The packed kernels with this register tile, or None for the portable ones.
    narrow : bool
        Run the kernels of ``loopbp.narrow_kernels`` instead of `tile`'s (a runtime
        choice, made by `Workspace`).
    threads : int
        How many threads share the work (``numba.get_num_threads()``), or 1 to run in the
        calling thread (see `worth_threads`); the result is bitwise the same either way.
    plain : None or True
        Left out (None), `tile` chooses the kernels, and Numba prunes the other branches
        before typing, so that only one kernel set is compiled. True runs the plain loop
        nests of ``loopbp.kernels`` instead, as the tests do to check one kernel set
        against the other.
    """
    if plain is None and narrow:
        narrow_kernels.forward_pass(theta, sizes, codes, X, activations, threads)
        return
    L = sizes.shape[0] - 1
    m = X.shape[1]
    parallel = threads > 1
    shared = shared_scratch_length(tile, sizes, m, False)
    A_prev = X
    for l in range(1, L + 1):
        W = _weights(theta, sizes, l)
        b = _biases(theta, sizes, l)
        A = _matrix(activations, _activation_offset(sizes, m, l), sizes[l], m)
        if plain is not None:
            kernels.forward_layer(W, b, codes[l - 1], A_prev, A)
        elif tile is None:
            tiled_kernels.forward_layer(W, b, codes[l - 1], A_prev, A, scratch[shared:], parallel)
        else:
            packed_kernels.forward_layer(
                tile, W, b, codes[l - 1], A_prev, A, scratch[:shared], scratch[shared:], threads
            )
        A_prev = A


@njit(cache=True)
def error_from_output(A_L, Y):
    r"""E for the output A^L and targets Y, as float64.

    .. math:: E = \frac{1}{2m} \sum_{c=1}^m \sum_{i=1}^{n^L} (A^L_{ic} - Y_{ic})^2

    Summed row by row in the order of ``kernels.output_delta``, so that E is bitwise the
    same as the one `gradient_pass` returns.
    """
    n, m = A_L.shape
    s = 0.0
    for i in range(n):
        s += kernels._squared_error_row(A_L[i], Y[i])
    return s / (2.0 * m)


def _gradient_pass(
    theta, sizes, codes, X, Y, grad, activations, deltas, scratch, squares, tile, narrow, threads, plain=None
):
    """E and the whole gradient: the forward pass, then back-propagation for l = L..1.

    Parameters
    ----------
    theta, sizes, codes, X, activations, scratch, tile, narrow, threads, plain
        As in `forward_pass`.
    Y : (n^L, m) C-contiguous array
        The targets.
    grad : (p,) array
        Output: dE/dW^l and dE/db^l, laid out like theta.
    deltas, squares
        The buffers of a `Workspace` made with `backward`.

    Returns
    -------
    E : float
        The error, accumulated in float64.
    """
    L = sizes.shape[0] - 1
    m = X.shape[1]
    if plain is None and narrow:
        narrow_kernels.gradient_pass(theta, sizes, codes, X, Y, grad, activations, deltas, scratch, threads)
        # E row by row as error_from_output sums it, so that the two agree bitwise.
        A_L = _matrix(activations, _activation_offset(sizes, m, L), sizes[L], m)
        for i in range(sizes[L]):
            squares[i] = kernels._squared_error_row(A_L[i], Y[i])
        return _sum_in_order(squares) / (2.0 * m)
    parallel = threads > 1
    shared = shared_scratch_length(tile, sizes, m, True)
    # `plain` is passed on only when given, so that the callee prunes its branch too.
    if plain is None:
        forward_pass(theta, sizes, codes, X, activations, scratch, tile, narrow, threads)
    else:
        forward_pass(theta, sizes, codes, X, activations, scratch, tile, narrow, threads, plain)

    # dE/dA^L and E, then dE/dZ^L in place.
    delta = _matrix(deltas[0], 0, sizes[L], m)
    A_L = _matrix(activations, _activation_offset(sizes, m, L), sizes[L], m)
    kernels.output_delta(A_L, Y, delta, squares, parallel)
    E = _sum_in_order(squares) / (2.0 * m)
    kernels.delta_to_z(codes[L - 1], A_L, delta, parallel)

    for l in range(L, 0, -1):
        # delta holds dE/dZ^l; the other buffer receives dE/dZ^(l-1).
        A_prev = _matrix(activations, _activation_offset(sizes, m, l - 1), sizes[l - 1], m) if l > 1 else X
        delta = _matrix(deltas[(L - l) % 2], 0, sizes[l], m)
        dW = _weights(grad, sizes, l)
        db = _biases(grad, sizes, l)
        if plain is not None:
            kernels.weight_gradient(delta, A_prev, dW)
            kernels.bias_gradient(delta, db, parallel)
        elif tile is None:
            tiled_kernels.weight_gradient(delta, A_prev, dW, parallel)
            kernels.bias_gradient(delta, db, parallel)
        else:
            packed_kernels.weight_gradient(
                tile, delta, A_prev, dW, db, scratch[:shared], scratch[shared:], threads
            )
        if l > 1:
            W = _weights(theta, sizes, l)
            previous = _matrix(deltas[(L - l + 1) % 2], 0, sizes[l - 1], m)
            code = codes[l - 2]
            if plain is not None:
                kernels.hidden_delta(W, delta, previous)
                kernels.delta_to_z(code, A_prev, previous, parallel)
            elif tile is None:
                W_T = _matrix(scratch, 0, sizes[l - 1], sizes[l])
                tiled_kernels.transpose(W, W_T)
                tiled_kernels.hidden_delta_to_z(
                    W_T, delta, code, A_prev, previous, scratch[shared:], parallel
                )
            else:
                packed_kernels.hidden_delta_to_z(
                    tile, W, delta, code, A_prev, previous, scratch[:shared], scratch[shared:], threads
                )
    return E


# Why two dispatchers of one function, and why no parallel function is cached. A cached
# library that holds parallel-region code must have been compiled in the process that
# compiled that code: Numba 0.68 saves a library linked against parallel code loaded from
# its cache in a form that crashes (a segmentation fault) when a later process loads it.
# Reproduced with three functions (a cached caller, a cached callee with a prange loop,
# compiled in different processes). So every `parallel=True` kernel is compiled in each
# process that compiles a caller, never loaded from the cache, and the drivers that
# Python calls (this one, `checked_gradient`, `training.train_epochs`) are cached as
# whole libraries; those that call the gradient call `gradient_pass_in_process`, so that
# they never link `gradient_pass` as loaded from the cache.
gradient_pass = njit(cache=True)(_gradient_pass)
gradient_pass_in_process = njit(_gradient_pass)
