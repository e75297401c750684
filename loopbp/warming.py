"""The first call's compile: the serial loops while the fast kernels compile, and `warm`.

The fast loop kernels (``loopbp.driver``) are compiled by Numba at their first call and
kept in the cache (``loopbp.numba_cache``), once per dtype and kernel set: the narrow
kernels, for networks whose layers are all at most ``narrow_kernels.WIDTH`` wide, and
the packed and streaming kernels for every other network. Each set takes 25 to 50 s to
compile on 2 cores (`COMPILE_SECONDS`); a later process loads it in a fraction of a
second. The gradient, `fit` and `forward` all run that one compiled function.

`entry_point` chooses, at each call, which compiled function runs it. When the cache
holds the network's set, the fast kernels. When it does not, by default
(``LOOPBP_COMPILE=background``), it starts a background process that compiles the set
into the cache (``python -m loopbp warm``) and, until that process is done, runs the
calls on the plain loops in this process's thread (``loopbp.serial_driver``), which
compile in seconds; the first call after the background process ends loads the fast
kernels. Results from the two agree to rounding error, not bitwise: for results that
are bitwise the same from the first call on, compile first (`warm`, ``loopbp warm``) or
set ``LOOPBP_COMPILE=foreground``, which compiles the fast kernels in the calling
process at the first call, as every call then waits for them. Either way one INFO
message on the ``"loopbp"`` logger says what is compiling and for how long.

`warm` compiles (or loads) the sets ahead of time, in this process, as ``loopbp warm``
does, e.g. in a Docker image or a CI cache step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np

from . import driver, narrow_kernels, numba_cache, serial_driver
from .validation import check_choice

logger = logging.getLogger("loopbp")

#: The kernel sets, and a small network that needs each.
KERNEL_SETS = {"narrow": (3, 4, 2), "wide": (narrow_kernels.WIDTH + 1, 4, 2)}

#: How long a kernel set takes to compile for one dtype, rounded up, on the project's
#: 2-core AMD EPYC (Zen 3) machine, 2026-12-07: the first `Network.gradient` in an empty
#: cache (``benchmarks/compile_profile.py``).
COMPILE_SECONDS = {"narrow": 25, "wide": 45}

#: The values of the environment variable ``LOOPBP_COMPILE``, the first the default.
COMPILE_MODES = ("background", "foreground")

#: The niceness the background compile runs at (Unix), added to this process's.
BACKGROUND_NICENESS = 10

_lock = threading.RLock()
#: The (dtype, kernel set) pairs whose fast kernels this process runs.
_fast: set = set()
#: The background compiles this process started, by (dtype, kernel set): (pid, Popen).
_jobs: dict = {}
#: Set inside `foreground`: compile in this process whatever ``LOOPBP_COMPILE`` says.
_forced = threading.local()


def kernel_set(sizes) -> str:
    """``"narrow"`` or ``"wide"``: the kernel set that a network of these sizes runs."""
    return "narrow" if narrow_kernels.is_narrow(sizes) else "wide"


def compile_mode() -> str:
    """``"background"`` or ``"foreground"``: ``LOOPBP_COMPILE``, or the default (background)."""
    if getattr(_forced, "on", False):
        return "foreground"
    asked = os.environ.get("LOOPBP_COMPILE", "").strip().lower() or COMPILE_MODES[0]
    if asked not in COMPILE_MODES:
        raise ValueError(f"LOOPBP_COMPILE must be one of {', '.join(COMPILE_MODES)} or unset, got {asked!r}")
    return asked


@contextlib.contextmanager
def foreground():
    """Inside this ``with`` block, this thread's calls compile the fast kernels themselves."""
    before = getattr(_forced, "on", False)
    _forced.on = True
    try:
        yield
    finally:
        _forced.on = before


def entry_point(sizes, dtype):
    """The compiled function that runs a call for a network of these sizes and dtype.

    ``driver.run`` (the fast kernels) when this process runs them already, when the cache
    holds them, or in the foreground mode; otherwise ``serial_driver.run``, while a
    background process compiles the fast kernels (started at the first such call). Both
    take the same arguments. Logs one INFO message when a compile starts.
    """
    key = (np.dtype(dtype).name, kernel_set(sizes))
    if key in _fast:
        return driver.run
    with _lock:
        if key in _fast:
            return driver.run
        job = _jobs.get(key)
        if job is not None and job[0] == os.getpid():
            if job[1].poll() is None:
                return serial_driver.run
            del _jobs[key]
            if job[1].returncode != 0 or not _cached(key):
                logger.warning(
                    "the background compile of the loop kernels (the %s set, %s) failed (exit status %s): "
                    "compiling them in this process",
                    key[1],
                    key[0],
                    job[1].returncode,
                )
                return _compile_here(key)
            _fast.add(key)
            return driver.run
        # (A job of another process is that of the parent this process was forked from.)
        _jobs.pop(key, None)
        if _cached(key):
            _fast.add(key)
            return driver.run
        if compile_mode() == "foreground":
            return _compile_here(key)
        try:
            _jobs[key] = (os.getpid(), _start_background_compile(key))
        except OSError as e:
            logger.warning("could not start a background compile (%s): compiling in this process", e)
            return _compile_here(key)
        logger.info(
            "compiling the fast loop kernels (the %s set) for %s in a background process: about %d s "
            "on 2 cores, once; until then loopbp runs the plain loops in this thread, slower but "
            "compiled in seconds (LOOPBP_COMPILE=foreground waits for the fast kernels instead); "
            "later runs load them from the cache in %s",
            key[1],
            key[0],
            COMPILE_SECONDS[key[1]],
            numba_cache.cache_dir(),
        )
        return serial_driver.run


def _cached(key) -> bool:
    return numba_cache.is_warm(key[0], narrow=key[1] == "narrow")


def _compile_here(key):
    # The calling process compiles the fast kernels at the call about to be made.
    logger.info(
        "compiling the loop kernels (the %s set) for %s: about %d s on 2 cores, once; later "
        "runs load them from the cache in %s",
        key[1],
        key[0],
        COMPILE_SECONDS[key[1]],
        numba_cache.cache_dir(),
    )
    _fast.add(key)
    return driver.run


def _start_background_compile(key) -> subprocess.Popen:
    # ``python -m loopbp warm`` for this dtype and set, with this copy of loopbp first on
    # the path and this process's cache root, so that it fills the cache this process reads.
    package_parent = os.path.dirname(numba_cache.PACKAGE_DIR)
    path = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "LOOPBP_COMPILE": "foreground",
        "LOOPBP_CACHE_DIR": numba_cache.cache_root(),
        "PYTHONPATH": package_parent + (os.pathsep + path if path else ""),
    }
    command = [sys.executable, "-m", "loopbp", "warm", "--dtype", key[0], "--kernels", key[1]]
    # It keeps running if this process ends first, so that the next run finds the kernels.
    job = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # At a lower priority than this process, whose own calls (and their compile) come first.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, job.pid, BACKGROUND_NICENESS)
    return job


def wait_for_background_compiles(timeout: float | None = None) -> bool:
    """Wait until the background compiles this process started have ended.

    Parameters
    ----------
    timeout : float or None
        Seconds to wait at most (None: as long as they take).

    Returns
    -------
    bool
        True when none is running any more.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    for pid, job in list(_jobs.values()):
        if pid != os.getpid():
            continue
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            job.wait(left)
        except subprocess.TimeoutExpired:
            return False
    return True


def warm(dtypes=("float64", "float32"), kernels=("narrow", "wide")) -> list[tuple[str, str, bool, float]]:
    """Compile, or load from the cache, the loop kernels for these dtypes and kernel sets.

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}
    kernels : sequence of {"narrow", "wide"}
        The narrow kernels (networks whose layers are all at most 40 wide) and those of
        every other network.

    Returns
    -------
    list of (dtype, kernel set, was in the cache, seconds)
    """
    from .network import Network

    done = []
    # The point is the fast kernels in the cache: compile them here, whatever LOOPBP_COMPILE says.
    with foreground():
        for dtype in dtypes:
            dtype = np.dtype(dtype)
            for name in kernels:
                sizes = KERNEL_SETS[check_choice(name, "kernels", tuple(KERNEL_SETS))]
                cached = numba_cache.is_warm(dtype.name, narrow=name == "narrow")
                net = Network(sizes, ("sigmoid", "identity"), dtype=dtype, seed=0)
                start = time.perf_counter()
                net.gradient(np.zeros((sizes[0], 2), dtype), np.zeros((sizes[-1], 2), dtype))
                done.append((dtype.name, name, cached, time.perf_counter() - start))
    return done
