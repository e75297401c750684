r"""Data-parallel gradients on Dask: the sum over the samples c, chunk by chunk.

The gradient is a sum over the samples,

.. math::

    \frac{\partial E}{\partial W^l_{ij}} = \sum_c \frac{\partial E}{\partial Z^l_{ic}} A^{l-1}_{jc},
    \qquad E = \frac{1}{2m} \sum_c \sum_i (A^L_{ic} - Y_{ic})^2,

and likewise dE/db^l. So X and Y, as ``dask.array`` arrays chunked along the samples
(their columns), can be cut into chunks; each chunk's sums are computed where the chunk
lives, by loopbp's own loop kernels (`chunk_sums`), and the sums are added and divided by
the global m once. The sums are added in a binary tree fixed by the chunk index alone
(`tree_sum`), so for a given chunking the result is bitwise the same whatever the number
of workers, their threads or Numba's; it equals the single-process gradient to rounding.

Needs the ``distributed`` extra (``pip install "loopbp[distributed]"``): Dask's arrays and
its distributed scheduler. loopbp without it never imports Dask.

Which scheduler runs the chunks (`client_for`): a ``distributed.Client`` or a scheduler's
address given as ``scheduler=``; else the current client, as Dask users expect; else a
local cluster that loopbp starts once per process, with one single-threaded worker process
per core (said once, at INFO level, on the ``loopbp`` logger). Inside the workers, Numba
runs cores // (worker processes on the host) threads, so that the workers of one host
share its cores, and the kernels are compiled (or loaded from Numba's cache) on each
worker, one worker at a time, before the first step it takes part in: two processes
writing one cache file at once can crash. Several threads in one worker are safe under
any threading layer, as ``loopbp.cpu.threads`` lets one parallel region run at a time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import layout
from .bounded_cache import BoundedCache
from .cpu import engine, narrow_kernels, warming
from .cpu.workspace import WorkspacePool
from .errors import require_finite
from .validation import (
    check_backend,
    check_chunked_samples,
    check_chunked_targets,
    check_positive,
    check_samples,
    check_targets,
)

logger = logging.getLogger("loopbp")

#: What to install for this module.
EXTRA = 'pip install "loopbp[distributed]"'


def is_dask_array(a: Any) -> bool:
    """Whether `a` is a ``dask.array.Array``, found without importing Dask."""
    return type(a).__name__ == "Array" and type(a).__module__.startswith("dask.array")


def wants_chunks(X: Any, Y: Any, scheduler: Any) -> bool:
    """Whether X and Y take the chunked path: either is a dask array.

    Raises a ``ValueError`` for a `scheduler` given with neither: it would be ignored.
    """
    chunked = is_dask_array(X) or is_dask_array(Y)
    if scheduler is not None and not chunked:
        raise ValueError(
            f"scheduler applies to dask arrays X and Y (chunked along the samples), got "
            f"{type(X).__name__} and {type(Y).__name__}, which would be computed in this process; "
            f"make them dask arrays, for instance with loopbp.distributed.scatter_samples"
        )
    return chunked


def require_dask() -> None:
    """Raise an ``ImportError`` that says which extra to install, if Dask is missing."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as err:
        raise ImportError(f"data-parallel gradients need Dask ({err}): {EXTRA}") from None


def check_chunked(X: Any, Y: Any, sizes: Sequence[int], dtype: np.dtype, backend: str) -> tuple[Any, Any]:
    """X and Y checked as chunked data for the network `sizes` (integers converted lazily).

    Both must be ``dask.array`` arrays, chunked along the samples alike, their rows in one
    chunk (``validation.check_chunked_samples``, ``check_chunked_targets``); the backend
    must be the loops.
    """
    check_backend(backend)
    if backend != "loops":
        raise ValueError(
            f"backend must be 'loops' for dask arrays X and Y (the einsum reference runs in one "
            f"process), got {backend!r}"
        )
    if not (is_dask_array(X) and is_dask_array(Y)):
        raise TypeError(
            f"X and Y must both be dask arrays, or neither; got {type(X).__name__} and {type(Y).__name__}"
        )
    require_dask()
    X = check_chunked_samples(X, sizes[0], dtype)
    return X, check_chunked_targets(Y, sizes[-1], X, dtype)


def chunk_sums(
    theta: np.ndarray,
    sizes: tuple[int, ...],
    activations: tuple[str, ...],
    X: np.ndarray,
    Y: np.ndarray,
    chunk: int,
    start: int,
    processes: dict | None = None,
) -> np.ndarray:
    """The unscaled sums of one chunk of samples: run where the chunk lives.

    `chunk` and `start` (its first sample's column in the whole X) name a bad value in
    the errors; `processes` (worker processes by host) sets Numba's threads.

    Returns
    -------
    (p + 1,) float64 array
        ``sum_c sum_i (A^L_ic - Y_ic)^2`` over the chunk's samples, then
        ``m_chunk * dE/dtheta`` of the chunk, that is sum_c of each gradient term,
        laid out like theta. Added over the chunks and divided by the global m, they give
        E (halved) and the gradient.
    """
    _limit_numba_threads(processes or {})
    dtype = theta.dtype
    loops = _chunk_engine(sizes, activations, dtype)
    X, Y = engine.kernel_array(np.asarray(X)), engine.kernel_array(np.asarray(Y))

    def inputs_error(X, Y):
        # The checks of one process, told where the chunk starts, so that the message names
        # the sample as a column of the whole X or Y; the chunk is named too.
        try:
            X = check_samples(X, sizes[0], dtype, first_column=start)
            check_targets(Y, sizes[-1], X.shape[1], dtype, first_column=start)
        except ValueError as err:
            raise ValueError(f"{err} (in chunk {chunk})") from None

    E, grad = loops.gradient(theta, X, Y, inputs_error)
    m = X.shape[1]
    sums = np.empty(grad.shape[0] + 1, np.float64)
    sums[0] = 2.0 * m * E
    sums[1:] = grad
    sums[1:] *= m
    return sums


#: The buffers of the chunks a worker runs, kept between steps whatever their size (a
#: chunk's are as large as the chunk): two shapes, for a last chunk of another width.
_chunk_workspaces = WorkspacePool(slots=2)
#: One network at a time in a worker's steps.
_chunk_engines = BoundedCache(1)


def _chunk_engine(sizes, activations, dtype):
    key = (sizes, activations, dtype)
    return _chunk_engines.get_or_make(
        key, lambda: engine.Engine(sizes, activations, dtype, _chunk_workspaces)
    )


def tree_sum(parts: list) -> Any:
    """Add `parts` (Dask delayed values) pairwise in a binary tree fixed by their order."""
    from dask import delayed

    add = delayed(np.add, pure=False)
    while len(parts) > 1:
        pairs = range(0, len(parts), 2)
        parts = [add(parts[k], parts[k + 1]) if k + 1 < len(parts) else parts[k] for k in pairs]
    return parts[0]


def gradient(
    theta: np.ndarray,
    sizes: tuple[int, ...],
    activations: tuple[str, ...],
    X: Any,
    Y: Any,
    *,
    backend: str = "loops",
    scheduler: Any = None,
) -> tuple[float, np.ndarray]:
    """E and the flat gradient of chunked X and Y; theta finite and checked.

    Parameters
    ----------
    theta : (p,) array
        The parameters, laid out as ``loopbp.layout`` says.
    sizes, activations
        The network's, checked.
    X, Y : dask arrays
        (n^0, m) and (n^L, m), chunked along the samples alike, rows in one chunk.
    backend : "loops"
        The chunks run the loop kernels; the einsum reference runs in one process only.
    scheduler : None, "local", str or distributed.Client
        See `client_for`.

    Returns
    -------
    E : float
    grad : (p,) array of theta's dtype
    """
    from dask import delayed

    X, Y = check_chunked(X, Y, sizes, theta.dtype, backend)
    client = client_for(scheduler)
    processes = warm_up(client, sizes, activations, theta.dtype)
    m = X.shape[1]
    # theta goes into the graph once, as one key that every chunk's task depends on, and
    # so travels to each worker once per call.
    theta_key = delayed(theta, pure=True)
    # Not pure: a call computes its sums afresh, rather than finding a previous call's
    # result for the same theta still held by the scheduler.
    task = delayed(chunk_sums, pure=False)
    starts = np.concatenate([[0], np.cumsum(X.chunks[1])[:-1]])
    parts = [
        task(theta_key, sizes, activations, x, y, k, int(start), processes)
        for k, (x, y, start) in enumerate(zip(X.to_delayed().ravel(), Y.to_delayed().ravel(), starts))
    ]
    sums = _result(client, client.compute(tree_sum(parts)))
    E = float(sums[0]) / (2.0 * m)
    grad = (sums[1:] / m).astype(theta.dtype)
    require_finite("gradient", theta.dtype, E, grad)
    return E, grad


#: How often a step waiting for its result asks whether any worker is left.
WORKER_CHECK_SECONDS = 2.0


def _result(client, future):
    # A worker that dies is replaced by Dask, which computes its chunks again from their
    # source on the workers left; with none left the step would wait forever: say so,
    # after two checks in a row (a nanny restarting a lone worker leaves none for a moment).
    import distributed

    empty = 0
    try:
        while True:
            try:
                return future.result(timeout=WORKER_CHECK_SECONDS)
            # (distributed's TimeoutError is asyncio's, another class before Python 3.11.)
            except (TimeoutError, distributed.TimeoutError):
                empty = 0 if client.nthreads() else empty + 1
                if empty >= 2:
                    raise RuntimeError(
                        f"no Dask worker is left at {client.scheduler.address} to compute the "
                        f"gradient's chunks; start workers (or another cluster) and call again: a "
                        f"Network keeps the parameters of its last finished step"
                    ) from None
    except BaseException:
        # Ctrl-C or an error: the cluster need not finish the step.
        future.cancel()
        raise


def scatter_samples(X: Any, Y: Any, scheduler: Any = None, chunks: int | None = None) -> tuple:
    """In-memory X and Y as dask arrays held by the workers, for `Network.fit` and friends.

    Parameters
    ----------
    X, Y : 2-D arrays with as many columns (samples)
    scheduler
        As in `client_for`.
    chunks : int or None
        How many chunks of samples; None: one per worker.

    Returns
    -------
    X, Y : dask arrays
        Chunked along the samples alike, sent to the workers once and kept there
        (``Client.persist``); the graph that sends them holds the arrays until then.
    """
    require_dask()
    import dask.array as da

    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must be 2-D with as many columns, got shapes {X.shape} and {Y.shape}")
    client = client_for(scheduler)
    n = max(1, len(client.nthreads())) if chunks is None else check_positive(chunks, "chunks", integer=True)
    columns = max(1, -(-X.shape[1] // n))
    Xd = da.from_array(X, chunks=(X.shape[0], columns))
    Yd = da.from_array(Y, chunks=(Y.shape[0], columns))
    return tuple(client.persist([Xd, Yd]))


# --- the client, and Numba inside the workers ---------------------------------------

_lock = threading.Lock()
_local = {}  # the local cluster's client ("client") and clients by scheduler address
_warm = set()  # (scheduler address, worker address, dtype name) warmed up


def client_for(scheduler: Any = None) -> Any:
    """The ``distributed.Client`` that runs the chunks.

    Parameters
    ----------
    scheduler : None, "local", str or distributed.Client
        A client is used as it is, and a scheduler's address (``"tcp://host:8786"``) is
        connected to. None takes the current client (``distributed.get_client``) if there
        is one, else the local cluster; ``"local"`` the local cluster: one started by
        loopbp, once per process, with one single-threaded worker process per core.
    """
    require_dask()
    import distributed

    if isinstance(scheduler, distributed.Client):
        return scheduler
    if scheduler is None:
        try:
            return distributed.get_client()
        except ValueError:
            pass
    elif not isinstance(scheduler, str):
        raise TypeError(
            f"scheduler must be None, 'local', a scheduler address or a distributed.Client, "
            f"got {type(scheduler).__name__}"
        )
    with _lock:
        if scheduler not in (None, "local"):
            # One connection per address, kept for the next steps (a new one if it was closed).
            if scheduler not in _local or _local[scheduler].status in ("closing", "closed"):
                _local[scheduler] = distributed.Client(scheduler, set_as_default=False)
            return _local[scheduler]
        if "client" not in _local:
            cores = os.cpu_count() or 1
            cluster = distributed.LocalCluster(
                n_workers=cores,
                threads_per_worker=1,
                processes=True,
                # Each worker single-threaded in Numba too: the workers share the cores.
                env={"NUMBA_NUM_THREADS": "1"},
            )
            _local["client"] = distributed.Client(cluster, set_as_default=False)
            logger.info(
                "loopbp started a local Dask cluster for data-parallel gradients: %d single-threaded "
                "worker processes (one per core), dashboard at %s",
                cores,
                _local["client"].dashboard_link,
            )
        return _local["client"]


def close_local_cluster() -> None:
    """Close the local cluster that `client_for` started, if it started one (else nothing)."""
    with _lock:
        client = _local.pop("client", None)
    if client is not None:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _host(address):
    # "tcp://10.0.0.5:40123" -> "10.0.0.5"
    return address.split("://")[-1].rsplit(":", 1)[0]


def _limit_numba_threads(processes):
    # The worker processes of one host share its cores: each gets cores / processes Numba
    # threads. Within a process, loopbp runs one parallel region at a time
    # (thread_safety), so a worker's own threads need no share of their own.
    # set_num_threads is per calling thread, so it is set in each task.
    import numba

    try:
        from distributed import get_worker

        host = _host(get_worker().address)
    except (ImportError, ValueError):
        return
    share = max(1, _cores() // max(1, processes.get(host, 1)))
    numba.set_num_threads(min(share, numba.config.NUMBA_NUM_THREADS))


def _warm_up_here(sizes, activations, dtype, processes):
    # One tiny chunk through the same compiled call as every chunk, with the kernel set of
    # `sizes` (narrow or not: its first layer says): it compiles the fast kernels here, or
    # loads them from Numba's cache, whatever LOOPBP_COMPILE says, so that no step runs
    # the serial loops and every worker sums alike.
    first = 1 if narrow_kernels.is_narrow(sizes) else narrow_kernels.WIDTH + 1
    net_sizes = (first,) + tuple(1 for _ in sizes[1:])
    theta = np.zeros(layout.parameter_count(net_sizes), dtype)
    X, Y = np.zeros((first, 1), dtype), np.zeros((1, 1), dtype)
    with warming.foreground():
        chunk_sums(theta, net_sizes, activations, X, Y, 0, 0, processes)


def warm_up(client: Any, sizes: Sequence[int], activations: Sequence[str], dtype: np.dtype) -> dict:
    """Compile or load the kernels on each worker of `client` not yet warmed, one at a time.

    Returns
    -------
    dict
        The number of worker processes on each host, for `chunk_sums`.
    """
    dtype = np.dtype(dtype)
    scheduler = client.scheduler.address
    workers = sorted(client.nthreads())
    processes = {}
    for worker in workers:
        processes[_host(worker)] = processes.get(_host(worker), 0) + 1
    with _lock:
        for worker in workers:
            key = (scheduler, worker, dtype.name)
            if key in _warm:
                continue
            # One worker after the other: the first compiles and writes Numba's cache, the
            # others load it; two writing one cache file at once can crash (numba #4807).
            # A task, not client.run, so that compiling does not block the worker's event loop.
            task = client.submit(
                _warm_up_here,
                tuple(sizes),
                tuple(activations),
                dtype,
                processes,
                workers=[worker],
                pure=False,
            )
            task.result()
            _warm.add(key)
    return processes
