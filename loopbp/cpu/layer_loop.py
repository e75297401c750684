"""The loop over the layers l: the forward pass and back-propagation, for every kernel set.

Three arguments choose the kernels of the three contractions, at compile time (Numba
prunes the branches not taken, so each compiled driver holds one kernel set alone):

- ``narrow`` True: the samples-innermost kernels of ``loopbp.cpu.narrow_kernels``, for
  networks whose layers are all narrow;
- else ``tile``, a ``simd.Tile``: the packed contractions of ``loopbp.cpu.packed_kernels``
  with the register tile of the host's vector width (``simd.tile()``), or the streaming
  kernel where ``plan`` says so, what the loops backend runs on x86 with AVX2 or AVX-512;
  None: the portable dot-product tiles of ``loopbp.cpu.tiled_kernels``.

The elementwise equations (dE/dA^L, and for the portable set dE/dZ^l = dE/dA^l g' and
dE/db^l) are the kernels of ``loopbp.cpu.kernels``, as written there. The plain loop
nests of the three contractions run in ``loopbp.cpu.serial_driver`` instead, which the
tests also hold these kernel sets to.

The buffers (theta, A^1..A^L, the deltas, the scratch) are laid out as
``loopbp.layout`` says, and a ``loopbp.cpu.workspace.Workspace`` holds them between calls.
A pass can stop after any step (`stop`): the forward mode of ``driver.run`` stops after
the forward pass, and ``loopbp.cpu.profiler`` times each kernel inside the real driver
(`gradient_steps` names the steps).
"""

import numpy as np
from numba import njit

from ..layout import activation_offset, biases, matrix, output, weights
from . import kernels, narrow_kernels, packed_kernels, tiled_kernels
from .plan import DELTA, FORWARD, STREAM, WEIGHTS
from .scratch import shared_scratch_length, split_scratch


@njit(cache=True, fastmath={"reassoc"})
def all_finite(values):
    """Whether every entry of the 1-D array `values` is finite.

    v * 0 is 0 for a finite v and NaN for an infinite or NaN one, so the sum of the
    products is finite exactly when every v is. A sum, unlike a test per value that stops
    at the first failure, vectorises (``reassoc`` lets LLVM add in vector lanes): 0.05 ms
    for theta of a 784-128-10 network became a few microseconds, a tenth of a mini-batch's
    gradient.
    """
    zero = values.dtype.type(0)
    s = zero
    for k in range(values.shape[0]):
        s += values[k] * zero
    return np.isfinite(s)


@njit(cache=True)
def sum_in_order(values):
    # A serial sum in index order, so E does not depend on the thread count.
    s = 0.0
    for i in range(values.shape[0]):
        s += values[i]
    return s


#: What ``driver.run`` found of a gradient: all finite, a non-finite input (X, Y or theta), or a
#: non-finite E or gradient from finite inputs (an overflow).
FINITE, INPUT_NOT_FINITE, RESULT_NOT_FINITE = 0, 1, 2


# Inlined into gradient_pass rather than called: a call is one more compiled level that
# re-optimises every kernel below it. Branch pruning still sees `tile` and `narrow`.
@njit(cache=True, inline="always")
def forward_pass(theta, sizes, codes, X, activations, scratch, tile, narrow, plan, threads):
    """Run the forward pass for l = 1..L, writing A^1, ..., A^L into `activations`.

    Parameters
    ----------
    theta : (p,) array
        The flat parameters, laid out as ``loopbp.layout`` says.
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
    narrow : True or None
        True runs the kernels of ``loopbp.cpu.narrow_kernels`` instead of `tile`'s, None
        those of `tile` and `plan` (`Workspace` chooses). A compile-time choice, like
        `tile`, so that a network compiles only the kernel set it runs: Numba prunes a
        branch on whether an argument is None when its type is None (not when it is a
        bool), so a narrow network's driver gets True here and None for `plan`, and any
        other network's None here and an array for `plan`.
    plan : (L, 3, 2) int64 array or None
        For the packed kernels: each contraction's kernel and whether it takes `threads`
        threads or one (``loopbp.cpu.plan``, made by `Workspace`); None with the narrow kernels.
    threads : int
        How many threads share the work (``numba.get_num_threads()``), or 1 to run in the
        calling thread (see ``threads.worth_threads``); the result is bitwise the same either way.
    """
    if narrow is not None:
        narrow_kernels.forward_pass(theta, sizes, codes, X, activations, threads)
        return
    if plan is None:
        return  # (a narrow network's driver: see `narrow`)
    L = sizes.shape[0] - 1
    m = X.shape[1]
    parallel = threads > 1
    # np.bool_(False), np.int64(0) below, not False and 0: Numba types a constant argument as
    # a literal and compiles the callee once more for each literal value.
    panels, blocks = split_scratch(scratch, shared_scratch_length(tile, sizes, m, np.bool_(False)))
    A_prev = X
    for l in range(1, L + 1):
        W = weights(theta, sizes, l)
        b = biases(theta, sizes, l)
        A = matrix(activations, activation_offset(sizes, m, l), sizes[l], m)
        if tile is None:
            tiled_kernels.forward_layer(W, b, codes[l - 1], A_prev, A, blocks, parallel)
        else:
            t = threads if plan[l - 1, FORWARD, 1] else 1
            if plan[l - 1, FORWARD, 0] == STREAM:
                narrow_kernels.forward_layer(W, b, codes[l - 1], A_prev, A, t)
            else:
                packed_kernels.forward_layer(tile, W, b, codes[l - 1], A_prev, A, panels, blocks, t)
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
        s += kernels.squared_error_row(A_L[i], Y[i])
    return s / (2.0 * m)


def network_arrays(sizes, codes) -> tuple:
    """The network as the drivers take it: (sizes, codes), two int64 arrays.

    `sizes` is n^0, ..., n^L and `codes` the activation code of each layer
    (``loopbp.validation.activation_codes``).
    """
    return np.asarray(sizes, dtype=np.int64), np.asarray(codes, dtype=np.int64)


def gradient_steps(sizes):
    """The names and GFLOP of the steps of `gradient_pass`, in the order it runs them.

    Step k of this list is the one after which ``gradient_pass(..., stop=k)`` returns
    (with any kernel set but the narrow one, whose steps are its forward pass, for any k
    before step L, and everything else).
    The three contractions count 2 n^l n^(l-1) m flop each; the other steps None.
    """

    def contraction(l):
        return lambda m: 2 * sizes[l] * sizes[l - 1] * m / 1e9

    L = len(sizes) - 1
    steps = [(f"forward l={l} ({sizes[l]}x{sizes[l - 1]})", contraction(l)) for l in range(1, L + 1)]
    steps += [("dE/dA^L, E", None), ("dE/dZ^L = dE/dA^L g'", None)]
    for l in range(L, 0, -1):
        steps.append((f"dE/dW^{l}, dE/db^{l} ({sizes[l]}x{sizes[l - 1]})", contraction(l)))
        if l > 1:
            steps.append((f"dE/dZ^{l - 1} ({sizes[l - 1]}x{sizes[l]})", contraction(l)))
    return steps


def _gradient_pass(theta, network, X, Y, grad, buffers, tile, narrow, plan, threads, stop=-1):
    """E and the whole gradient: the forward pass, then back-propagation for l = L..1.

    Parameters
    ----------
    theta, X, tile, narrow, plan, threads
        As in `forward_pass`.
    network : tuple
        (sizes, codes), as in `forward_pass` (`network_arrays`).
    Y : (n^L, m) C-contiguous array
        The targets.
    grad : (p,) array
        Output: dE/dW^l and dE/db^l, laid out like theta.
    buffers : tuple
        (activations, deltas, scratch, squares), the buffers of a `Workspace` made with
        `backward` (``Workspace.buffers``); activations and scratch as in `forward_pass`.
    stop : int
        -1 (the default) runs every step. k >= 0 returns after step k of
        `gradient_steps`, for timing each kernel where it runs; E is then 0 until
        step L (dE/dA^L, E) has run. The narrow kernels have two steps: any k < L
        runs their forward pass alone, any other k everything.

    Returns
    -------
    E : float
        The error, accumulated in float64.
    """
    sizes, codes = network
    activations, deltas, scratch, squares = buffers
    L = sizes.shape[0] - 1
    m = X.shape[1]
    if narrow is not None:
        if 0 <= stop < L:
            # The narrow kernels have no finer steps than the forward pass and the rest.
            narrow_kernels.forward_pass(theta, sizes, codes, X, activations, threads)
            return 0.0
        narrow_kernels.gradient_pass(theta, sizes, codes, X, Y, grad, activations, deltas, scratch, threads)
        # E row by row as error_from_output sums it, so that the two agree bitwise.
        A_L = output(activations, sizes, m)
        for i in range(sizes[L]):
            squares[i] = kernels.squared_error_row(A_L[i], Y[i])
        return sum_in_order(squares) / (2.0 * m)
    if plan is None:
        return 0.0  # (a narrow network's driver: see `forward_pass`)
    parallel = threads > 1
    shared = shared_scratch_length(tile, sizes, m, np.bool_(True))
    panels, blocks = split_scratch(scratch, shared)
    # Stopping inside the forward pass: the forward pass of the first layers alone is that
    # of the network cut after them, as A^l depends on the layers up to l only.
    layers = L if stop < 0 or stop >= L else stop + 1
    forward_pass(theta, sizes[: layers + 1], codes, X, activations, scratch, tile, narrow, plan, threads)
    if 0 <= stop < L:
        return 0.0

    # dE/dA^L and E, then dE/dZ^L in place.
    delta = matrix(deltas[0], np.int64(0), sizes[L], m)
    A_L = output(activations, sizes, m)
    kernels.output_delta(A_L, Y, delta, squares, parallel)
    E = sum_in_order(squares) / (2.0 * m)
    step = L
    if step == stop:
        return E
    kernels.delta_to_z(codes[L - 1], A_L, delta, parallel)
    step += 1
    if step == stop:
        return E

    for l in range(L, 0, -1):
        # delta holds dE/dZ^l; the other buffer receives dE/dZ^(l-1).
        A_prev = matrix(activations, activation_offset(sizes, m, l - 1), sizes[l - 1], m) if l > 1 else X
        delta = matrix(deltas[(L - l) % 2], np.int64(0), sizes[l], m)
        dW = weights(grad, sizes, l)
        db = biases(grad, sizes, l)
        if tile is None:
            tiled_kernels.weight_gradient(delta, A_prev, dW, parallel)
            kernels.bias_gradient(delta, db, parallel)
        else:
            t = threads if plan[l - 1, WEIGHTS, 1] else 1
            if plan[l - 1, WEIGHTS, 0] == STREAM:
                narrow_kernels.weight_gradient(delta, A_prev, dW, db, t)
            else:
                packed_kernels.weight_gradient(tile, delta, A_prev, dW, db, panels, blocks, t)
        step += 1
        if step == stop:
            return E
        if l > 1:
            W = weights(theta, sizes, l)
            previous = matrix(deltas[(L - l + 1) % 2], np.int64(0), sizes[l - 1], m)
            code = codes[l - 2]
            if tile is None:
                # (W^l)^T goes at the head of the shared scratch (`shared_scratch_length`).
                W_T = matrix(panels, np.int64(0), sizes[l - 1], sizes[l])
                tiled_kernels.transpose(W, W_T)
                tiled_kernels.hidden_delta_to_z(W_T, delta, code, A_prev, previous, blocks, parallel)
            else:
                t = threads if plan[l - 1, DELTA, 1] else 1
                if plan[l - 1, DELTA, 0] == STREAM:
                    narrow_kernels.hidden_delta_to_z(W, delta, code, A_prev, previous, t)
                else:
                    packed_kernels.hidden_delta_to_z(
                        tile, W, delta, code, A_prev, previous, panels, blocks, t
                    )
            step += 1
            if step == stop:
                return E
    return E


# Why two dispatchers of one function, and why no parallel function is cached. A cached
# library that holds parallel-region code must have been compiled in the process that
# compiled that code: Numba 0.68 saves a library linked against parallel code loaded from
# its cache in a form that crashes (a segmentation fault) when a later process loads it
# (tests/test_numba_cache.py keeps the reproducer). So every `parallel=True` kernel is
# compiled in each process that compiles a caller, never loaded from the cache, and the
# functions that Python calls (``driver.run``, and `gradient_pass` for the tests and the
# kernel profile) are cached as whole libraries. ``driver.run`` takes
# `gradient_pass_inline`, this body inlined at Numba's IR level at a single call site: a
# called function is one more compiled library, and LLVM optimises every kernel linked
# below it again in each library (4 to 6 s a library on 2 cores), while an inlined body is
# optimised once, with its caller. (Inlining costs too, about as much per copy: hence one
# call site.)
gradient_pass = njit(cache=True)(_gradient_pass)
gradient_pass_inline = njit(inline="always")(_gradient_pass)
