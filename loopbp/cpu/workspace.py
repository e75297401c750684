"""The buffers of one call of the loops backend, and a pool that keeps them between calls.

A `Workspace` holds A^1..A^L, the deltas and the scratch of one forward pass or gradient,
laid out as ``loopbp.layout`` and ``loopbp.cpu.scratch`` say, with the plan of its
contractions (``loopbp.cpu.plan``); a `WorkspacePool` keeps workspaces between calls, so
that repeated calls allocate only what they return.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np

from .. import layout
from ..bounded_cache import BoundedCache
from . import narrow_kernels, simd, threads
from . import plan as planning
from .scratch import scratch_length


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
        ``layer_loop.gradient_pass``.
    tile : simd.Tile or None, optional
        The kernels the scratch is sized for (see ``loopbp.cpu.layer_loop``); the default is
        ``simd.tile(dtype)``, the host's.
    narrow : bool or None, optional
        Run the kernels of ``loopbp.cpu.narrow_kernels`` instead of `tile`'s; None (the
        default) takes them when every layer is at most ``narrow_kernels.WIDTH`` wide.
        Kept as True or None (the drivers' compile-time switch: see ``layer_loop.forward_pass``).
    plan : (L, 3, 2) int64 array or None, optional
        Each contraction's kernel and threads (``loopbp.cpu.plan``); None (the default)
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
        The shared part, then one packed block per thread (see ``loopbp.cpu.scratch``), made
        at its first use.
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
        self._big_enough = threads.enough_work(sizes, m)
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
        return self._big_enough and threads.threads_allowed()

    def _scratch_length(self, m):
        if self.narrow:
            return narrow_kernels.scratch_length(self.sizes, m, self.backward)
        # Sized for the most threads Numba can ever run, so set_num_threads cannot outgrow it.
        threads = numba.config.NUMBA_NUM_THREADS
        return scratch_length(self.tile, self.sizes, m, self.backward, threads)

    @property
    def scratch(self) -> np.ndarray:
        """The scratch: the shared part, then one packed block per thread (``loopbp.cpu.scratch``)."""
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
        """(activations, deltas, scratch, squares): the `buffers` argument of every driver.

        With `serial`, for ``serial_driver.run``, an empty scratch.
        """
        scratch = self._no_scratch if serial else self.scratch
        return self.activations, self.deltas, scratch, self.squares

    def kernels(self) -> tuple:
        """(tile, narrow, plan): the drivers' arguments that choose the kernels.

        A narrow network's plan goes as None: with `narrow` None for the others, each
        driver compiles one kernel set alone (see ``layer_loop.forward_pass``).
        """
        return self.tile, self.narrow, None if self.narrow else self.plan

    def output(self) -> np.ndarray:
        """A^L, the (n^L, m) view of `activations`."""
        return layout.output(self.activations, self.sizes, self.m)


class WorkspacePool:
    """Workspaces kept between calls, each lent to one caller at a time.

    `lent` takes a kept workspace out of the pool (or makes a new one) for the length of
    a ``with`` block, so two threads never share one, and keeps it afterwards if it is at
    most `max_bytes` and one of at most `slots` (a `BoundedCache`). Taking and keeping
    are a few dict operations each, which the GIL keeps whole: no lock is needed.

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
        self._cache = BoundedCache(slots)

    def take(self, sizes: tuple[int, ...], m: int, dtype: np.dtype, backward: bool = True) -> Workspace:
        """A workspace for these arguments, out of the pool or new; hand it back with `give`.

        `sizes` must be a tuple of Python ints and `dtype` a numpy dtype (as `Engine`
        keeps them): the key is built without converting them, as this runs on every call.
        """
        workspace = self._cache.pop((sizes, m, dtype, backward))
        if workspace is None:
            workspace = Workspace(sizes, m, dtype, backward)
        return workspace

    def give(self, workspace: Workspace) -> None:
        """Keep `workspace` for the next call, if it is small enough."""
        w = workspace
        if self.max_bytes is None or w.nbytes <= self.max_bytes:
            self._cache.put((w.sizes, w.m, w.dtype, w.backward), w)

    @property
    def kept(self) -> dict:
        """The workspaces kept, by (sizes, m, dtype, backward), oldest first."""
        return self._cache.kept

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
