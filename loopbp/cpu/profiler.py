"""The time of each step of one gradient, measured inside the real driver: `kernel_times`.

For ``benchmarks/kernel_profile.py``: where a gradient's time goes, step by step, on the
kernels and threads that the engine's calls use.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

import numpy as np

from . import layer_loop, narrow_kernels, threads
from .workspace import Workspace

if TYPE_CHECKING:
    from .engine import Engine


def kernel_times(
    engine: Engine, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, repeat: int = 5, narrow: bool = False
) -> list[tuple[str, float, float | None]]:
    """The median seconds of each step of one gradient, timed inside the real driver.

    ``layer_loop.gradient_pass`` can stop after any step (``layer_loop.gradient_steps``): step
    k's time is the median of runs that stop after it, less the median of runs that
    stop before it. The steps' times add up to a whole gradient's; each is as noisy as
    the difference of two medians.

    Parameters
    ----------
    engine : Engine
        The network's engine (``Network.engine``).
    theta, X, Y
        As in ``Engine.gradient``.
    repeat : int
        Runs per step.
    narrow : bool
        Time the narrow kernels (one step, the whole network) if they suit the
        network; by default the packed or portable kernels, step by step.

    Returns
    -------
    list of (name, seconds, GFLOP or None)
    """
    sizes, m = engine.sizes, X.shape[1]
    workspace = Workspace(sizes, m, engine.dtype, narrow=narrow and narrow_kernels.is_narrow(sizes))
    grad = np.empty_like(theta)

    def gradient(threads, stop):
        args = (theta, engine.network, X, Y, grad, workspace.buffers(), *workspace.kernels())
        return layer_loop.gradient_pass(*args, threads, stop)

    def median(stop):
        def run():
            threads.run(lambda threads: gradient(threads, stop), parallel=workspace.threads_pay())

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
    for k, (name, gflop) in enumerate(layer_loop.gradient_steps(sizes)):
        until = median(k)
        times.append((name, until - before, gflop(m) if gflop else None))
        before = until
    return times
