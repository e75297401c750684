"""The cuda backend for one network: its buffers on the GPU and the order of its kernels.

`CudaEngine` is to ``loopbp.cuda.kernels`` what ``loopbp.cpu.engine.Engine`` is to the loop
kernels: it holds a network's sizes, activations and dtype, keeps device buffers for the
largest m it ran, and launches the kernels of a forward pass, an error or a gradient in the
derivation's order. The parameters live on the device as one flat buffer laid out like
theta (``loopbp.layout``), so a launch passes the buffer and an offset instead of one array
per layer. `CudaTrainer` keeps theta, X and Y on the device for a whole `Network.fit`:
between two calls from Python, which run many epochs, nothing returns to the host.
"""

from __future__ import annotations

import functools
import threading
import time
import warnings
from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from .. import layout
from ..activations import activation_code
from ..bounded_cache import BoundedCache
from ..errors import overflow_error
from ..pacing import EpochPacing
from ..shuffling import mini_batches, shuffle_state
from .kernels import DEFAULT_SHAPE, MAX_GRID_Z, KernelShape, blocks, kernels_for
from .target import require_gpu, simulator_enabled

#: The kernels' block and tile sizes for the engines `cuda_engine_for` makes.
kernel_shape = DEFAULT_SHAPE


class CudaEngine:
    """The cuda backend for one network: its sizes, activations and dtype.

    Parameters
    ----------
    sizes : sequence of int
        n^0, ..., n^L.
    activations : sequence of str
    dtype : float32 or float64
    shape : loopbp.cuda.kernels.KernelShape
        The kernels' block and tile sizes.

    Raises
    ------
    ImportError, RuntimeError
        As ``loopbp.cuda.target.require_gpu``: no CUDA package, or no GPU.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activations: Sequence[str],
        dtype: np.dtype,
        shape: KernelShape = DEFAULT_SHAPE,
    ):
        self.cuda = require_gpu()
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.kernels = kernels_for(self.dtype, shape)
        self.square = (shape.threads, shape.threads)
        self.sizes = tuple(int(n) for n in sizes)
        self.codes = tuple(activation_code(a) for a in activations)
        self.L = len(self.sizes) - 1
        sizes_array = np.array(self.sizes, dtype=np.int64)
        #: Offset of W^l in theta, for l = 1..L (index 0 unused).
        self.w_offsets = [0] + [layout.weight_offset(sizes_array, l) for l in range(1, self.L + 1)]
        self.parameter_count = layout.parameter_count(self.sizes)
        # The most elements of one layer's dE/dW^l and dE/db^l: a chunk's share of them.
        self.widest_gradient = max(self.sizes[l] * (self.sizes[l - 1] + 1) for l in range(1, self.L + 1))
        # One engine may be shared by threads; its buffers serve one call at a time.
        self.lock = threading.Lock()
        self.m = self.capacity = self._step = None
        cuda = self.cuda
        self.grad = cuda.device_array(self.parameter_count, self.dtype)
        # Room for the calls from Python: theta sent, E and its divergence mark back.
        self.theta = cuda.device_array(self.parameter_count, self.dtype)
        self.E = cuda.device_array(1, np.float64)
        self.failed = cuda.device_array(1, np.int64)

    def tiles(self, rows: int, cols: int) -> tuple[int, int]:
        """The grid of a contraction kernel whose output is rows x cols (x along the columns)."""
        return blocks(cols, self.shape.tile), blocks(rows, self.shape.tile)

    # --- buffers ---------------------------------------------------------------------

    def ready(self, m: int) -> None:
        """Make the device buffers ready for m samples.

        They are allocated for the largest m seen so far and kept: a smaller m (the last
        batch of an epoch, say) uses views of their heads, made once per m.
        """
        if self.m == m:
            return
        if self.capacity is None or m > self.capacity:
            self._allocate(m)
        if m not in self._views:
            self._views[m] = self._make_views(m)
        self.A, self.dZ, self.chunk_sums, self.squares, self.launch = self._views[m]
        self.m_real = self.dtype.type(m)
        self.m = m

    def _allocate(self, capacity: int) -> None:
        cuda, sizes, dtype = self.cuda, self.sizes, self.dtype
        self._flat = {
            # A^1..A^L, one after another; A^0 is X.
            "A": cuda.device_array(sum(sizes[1:]) * capacity, dtype),
            # dE/dZ^l for every l, alternating between two buffers as the CPU's deltas do.
            "dZ": [cuda.device_array(max(sizes[1:]) * capacity, dtype) for _ in range(2)],
            "chunks": cuda.device_array(blocks(capacity, self.shape.chunk) * self.widest_gradient, dtype),
            "squares": cuda.device_array(self._error_blocks(capacity), np.float64),
            "rooms": [None, None],  # for X and Y: `_room`
        }
        self.capacity, self._views, self.m = capacity, {}, None

    def _error_blocks(self, m: int) -> int:
        return blocks(self.sizes[-1] * m, self.shape.reduce_threads * self.shape.elements_per_thread)

    def _make_views(self, m: int):
        sizes, L, flat = self.sizes, self.L, self._flat
        A, offset = [None], 0
        for l in range(1, L + 1):
            A.append(flat["A"][offset : offset + sizes[l] * m].reshape(sizes[l], m))
            offset += sizes[l] * m
        dZ = [None] + [flat["dZ"][l % 2][: sizes[l] * m].reshape(sizes[l], m) for l in range(1, L + 1)]
        chunks = blocks(m, self.shape.chunk)
        chunk_sums = [None] + [
            flat["chunks"][: chunks * sizes[l] * (sizes[l - 1] + 1)].reshape(
                chunks, sizes[l], sizes[l - 1] + 1
            )
            for l in range(1, L + 1)
        ]
        squares = flat["squares"][: self._error_blocks(m)]
        return A, dZ, chunk_sums, squares, self._launchers(m)

    def _room(self, k: int):
        # X's room (k = 0) or Y's (k = 1) for the current m, allocated on first use: a fit
        # or ``loopbp compare`` brings its own X and Y.
        rows, flat = self.sizes[0 if k == 0 else -1], self._flat["rooms"]
        if flat[k] is None:
            flat[k] = self.cuda.device_array(rows * self.capacity, self.dtype)
        return flat[k][: rows * self.m].reshape(rows, self.m)

    # --- the launches, in the derivation's order ---------------------------------------

    def _launchers(self, m: int) -> SimpleNamespace:
        # Every kernel of a step, configured with its grid for m.
        k, sizes, L, shape, square = self.kernels, self.sizes, self.L, self.shape, self.square
        chunk_grid_z = min(blocks(m, shape.chunk), MAX_GRID_Z)
        layers = range(1, L + 1)
        return SimpleNamespace(
            forward=[None] + [configured(k.forward_layer, self.tiles(sizes[l], m), square) for l in layers],
            output_delta=configured(k.output_delta, self._error_blocks(m), shape.reduce_threads),
            add_error=configured(k.add_error, 1, shape.reduce_threads),
            weight_gradient=[None]
            + [
                configured(k.weight_gradient, (*self.tiles(sizes[l], sizes[l - 1] + 1), chunk_grid_z), square)
                for l in layers
            ],
            sum_chunks=[None]
            + [
                configured(
                    k.sum_chunks,
                    (blocks(sizes[l - 1] + 1, shape.threads), blocks(sizes[l], shape.threads)),
                    square,
                )
                for l in layers
            ],
            hidden_delta=[None, None]
            + [configured(k.hidden_delta, self.tiles(sizes[l - 1], m), square) for l in range(2, L + 1)],
            gather=[
                configured(k.gather, (blocks(m, shape.threads), blocks(n, shape.threads)), square)
                for n in (sizes[0], sizes[L])
            ],
        )

    def step_launchers(self) -> tuple:
        """`check_step` and `descend` configured for theta's length (made once)."""
        if self._step is None:
            grid, threads = blocks(self.parameter_count, self.shape.reduce_threads), self.shape.reduce_threads
            self._step = tuple(
                configured(kernel, grid, threads)
                for kernel in (self.kernels.check_step, self.kernels.descend)
            )
        return self._step

    def forward_launches(self, theta, X) -> None:
        """A^1..A^L from theta and X (device arrays); A^L is ``self.A[L]``."""
        A_prev = X
        for l in range(1, self.L + 1):
            self.launch.forward[l](theta, self.w_offsets[l], self.codes[l - 1], A_prev, self.A[l])
            A_prev = self.A[l]

    def error_launches(self, Y, history, slot, weight, failed, epoch, delta: bool) -> None:
        """history[slot] += weight E; with `delta`, dE/dZ^L too. After `forward_launches`."""
        A, dZ, L = self.A, self.dZ, self.L
        self.launch.output_delta(A[L], Y, self.codes[L - 1], self.m_real, delta, dZ[L], self.squares)
        self.launch.add_error(self.squares, 2.0 * self.m, weight, history, slot, failed, epoch)

    def backward_launches(self, theta, X) -> None:
        """The gradient into ``self.grad``, layer L down to 1. After `error_launches` with `delta`."""
        launch = self.launch
        for l in range(self.L, 0, -1):
            A_prev = X if l == 1 else self.A[l - 1]
            launch.weight_gradient[l](self.dZ[l], A_prev, self.chunk_sums[l])
            launch.sum_chunks[l](self.chunk_sums[l], self.grad, self.w_offsets[l])
            if l > 1:
                launch.hidden_delta[l](
                    theta, self.w_offsets[l], self.codes[l - 2], self.dZ[l], self.A[l - 1], self.dZ[l - 1]
                )

    # --- the calls from Python ---------------------------------------------------------

    def _upload(self, theta, *arrays):
        # Into the engine's own device buffers, allocated once per m: theta, then X and Y
        # (arrays already on the device, as ``loopbp compare`` passes X and Y, as they are).
        self.theta.copy_to_device(theta)
        uploaded = [self.theta]
        for k, a in enumerate(arrays):
            if not hasattr(a, "copy_to_host"):
                room = self._room(k)
                room.copy_to_device(a)
                a = room
            uploaded.append(a)
        return uploaded

    def _clear_error(self):
        # E is added into its slot, and the divergence mark kept once set: both start at 0.
        self.E.copy_to_device(np.zeros(1))
        self.failed.copy_to_device(np.zeros(1, np.int64))

    def gradient(self, theta: np.ndarray, X, Y) -> tuple[float, np.ndarray]:
        """E and the flat gradient, laid out like theta, for validated arrays (X and Y may be on the device).

        Raises
        ------
        loopbp.errors.Overflow
            If E or the gradient is not finite.
        """
        with self.lock:
            self.ready(X.shape[1])
            theta_d, X_d, Y_d = self._upload(theta, X, Y)
            self._clear_error()
            self.forward_launches(theta_d, X_d)
            self.error_launches(Y_d, self.E, 0, 1.0, self.failed, 0, delta=True)
            self.backward_launches(theta_d, X_d)
            grad = self.grad.copy_to_host()
            E = float(self.E.copy_to_host()[0])
        if not (np.isfinite(E) and np.isfinite(grad).all()):
            raise overflow_error("gradient", self.dtype)
        return E, grad

    def forward(self, theta: np.ndarray, X) -> np.ndarray:
        """A^L (a new host array) for validated arrays."""
        with self.lock:
            self.ready(X.shape[1])
            theta_d, X_d = self._upload(theta, X)
            self.forward_launches(theta_d, X_d)
            A = self.A[self.L].copy_to_host()
        if not np.isfinite(A).all():
            raise overflow_error("forward pass", self.dtype)
        return A

    def error(self, theta: np.ndarray, X, Y) -> float:
        """E for validated arrays."""
        with self.lock:
            self.ready(X.shape[1])
            theta_d, X_d, Y_d = self._upload(theta, X, Y)
            self._clear_error()
            self.forward_launches(theta_d, X_d)
            self.error_launches(Y_d, self.E, 0, 1.0, self.failed, 0, delta=False)
            E = float(self.E.copy_to_host()[0])
        if not np.isfinite(E):
            raise overflow_error("error", self.dtype)
        return E


def configured(kernel, grid, block):
    """`kernel` configured for `grid` and `block`: made once, launched many times.

    Configuring costs microseconds at each launch otherwise, and warns of grids under 128
    blocks, which the small layers' kernels and E's last sum have by design: the warning is
    silenced here, for loopbp's own launches only. The simulator configures the kernel
    object itself rather than a new one, so under it the configuration is made at each
    launch.
    """
    if simulator_enabled():
        return functools.partial(_launch, kernel, grid, block)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grid size")
        return kernel[grid, block]


def _launch(kernel, grid, block, *args):
    kernel[grid, block](*args)


#: Bounded like the CPU engines: a program that tries many shapes keeps the last few.
_engines = BoundedCache(16)
_engines_lock = threading.Lock()


def cuda_engine_for(sizes: Sequence[int], activations: Sequence[str], dtype: np.dtype) -> CudaEngine:
    """The shared `CudaEngine` of this network shape (one per sizes, activations and dtype)."""
    key = (tuple(int(n) for n in sizes), tuple(activations), np.dtype(dtype), kernel_shape)
    with _engines_lock:  # one engine per key, made once
        return _engines.get_or_make(key, lambda: CudaEngine(*key))


class CudaTrainer(EpochPacing):
    """One `Network.fit` with the cuda backend: theta, X and Y stay on the device.

    Each `run` sends theta (a callback may have changed it), launches the steps of some
    epochs (per step: the forward pass, E, the backward pass, the step's check and the
    step), then copies back what Python needs: E of each of those epochs, the divergence
    mark and theta. On Ctrl-C the network keeps the theta of the last finished call.
    Mini-batches are shuffled on the host with the loops backend's generator, so a seeded
    network draws the same orders with every backend; each epoch's order goes to the
    device once, and each batch is gathered there.

    Parameters
    ----------
    net : Network
    X, Y : arrays
        Validated, C-contiguous, in the network's dtype.
    learning_rate : float
    batch_size : int
        At most m; m means full batch.
    """

    def __init__(self, net, X: np.ndarray, Y: np.ndarray, learning_rate: float, batch_size: int):
        self.net = net
        self.engine = cuda_engine_for(net.sizes, net.activations, net.dtype)
        cuda = self.engine.cuda
        m = X.shape[1]
        self.m, self.batch_size = m, batch_size
        self.alpha = net.dtype.type(learning_rate)
        self.theta = cuda.device_array(net.theta.shape, net.dtype)  # sent by each `run`
        self.X, self.Y = cuda.to_device(X), cuda.to_device(Y)
        self.failed = cuda.to_device(np.zeros(1, np.int64))
        self.history = None
        self.full = batch_size >= m
        if not self.full:
            self.rng = shuffle_state(net.seed)
            self.order = np.arange(m, dtype=np.int64)
            self.order_d = cuda.device_array(m, np.int64)
            self.X_batch = cuda.device_array(net.sizes[0] * batch_size, net.dtype)
            self.Y_batch = cuda.device_array(net.sizes[-1] * batch_size, net.dtype)
            self.batches = {}

    def _step(self, X, Y, weight, epoch) -> None:
        engine = self.engine
        engine.ready(X.shape[1])
        engine.forward_launches(self.theta, X)
        engine.error_launches(Y, self.history, epoch, weight, self.failed, epoch, delta=True)
        engine.backward_launches(self.theta, X)
        check_step, descend = engine.step_launchers()
        check_step(self.theta, engine.grad, self.alpha, self.failed, epoch)
        descend(self.theta, engine.grad, self.alpha, self.failed)

    def _batch(self, width: int) -> tuple:
        # The (n^0, width) and (n^L, width) views of the batch buffers, made once per width.
        if width not in self.batches:
            n_in, n_out = self.net.sizes[0], self.net.sizes[-1]
            X_b = self.X_batch[: n_in * width].reshape(n_in, width)
            self.batches[width] = X_b, self.Y_batch[: n_out * width].reshape(n_out, width)
        return self.batches[width]

    def _epoch(self, epoch: int) -> None:
        if self.full:
            self._step(self.X, self.Y, 1.0, epoch)
            return
        batches = mini_batches(self.order, self.rng, self.batch_size)
        self.order_d.copy_to_device(self.order)
        engine, m = self.engine, self.m
        for start, stop in batches:
            width = stop - start
            X_b, Y_b = self._batch(width)
            engine.ready(width)
            gather_X, gather_Y = engine.launch.gather
            gather_X(self.X, self.order_d, start, X_b)
            gather_Y(self.Y, self.order_d, start, Y_b)
            self._step(X_b, Y_b, width / m, epoch)

    def run(self, first: int, count: int, history: np.ndarray) -> int:
        """Epochs first..first + count - 1; returns how many finished with finite E and steps.

        Their E go into `history`, and the network's theta is that of the last finite step.
        """
        started = time.perf_counter()
        cuda = self.engine.cuda
        with self.engine.lock:
            # theta from the host at each call, not only the first: a callback may change it.
            self.theta.copy_to_device(self.net.theta)
            self.history = cuda.to_device(np.zeros(count))
            for epoch in range(count):
                self._epoch(epoch)
            done = self.history.copy_to_host()
            failed = int(self.failed.copy_to_host()[0])
            self.net.theta[...] = self.theta.copy_to_host()
        finished = count if failed == 0 else failed - 1
        history[first : first + finished] = done[:finished]
        self.timed(started, finished)
        return finished
