"""The first call's compile: the serial loops run while the fast kernels compile.

The fast loop kernels (``loopbp.cpu.driver``) are compiled by Numba at their first call and
kept in the cache (``loopbp.numba_cache``), once per dtype and kernel set: the narrow
kernels, for networks whose layers are all at most ``narrow_kernels.WIDTH`` wide, and
the packed and streaming kernels for every other network. Each set takes 20 to 50 s to
compile on 2 cores (`COMPILE_SECONDS`); a later process loads it in a fraction of a
second. The gradient, `fit` and `forward` all run that one compiled function.

`entry_point` chooses, at each call, which compiled function runs it. When the cache
holds the network's set, the fast kernels. When it does not, by default
(``LOOPBP_COMPILE=background``), it starts a background process that compiles the set
into the cache (``loopbp warm``, at a lower priority, in a session of its own so that it
outlives the calling process) and, until that process has ended, runs the calls on the
plain loops in the calling thread (``loopbp.cpu.serial_driver``), which compile in seconds;
the first call after that loads the fast kernels. One process compiles each set at a
time: it holds a lock file in the cache folder, and other processes that need the set run
the plain loops and look in the cache every `POLL_SECONDS`. Where a second process cannot
help (one core, a frozen application, no cache folder) the calling process compiles.

Results from the two agree to rounding error, not bitwise, and a `fit` that starts on the
plain loops goes on with the fast kernels between two steps, when they are ready: for
results that do not depend on when a compile ends, compile first (`loopbp.warm`,
``loopbp warm``) or set ``LOOPBP_COMPILE=foreground``, which compiles the fast kernels in
the calling process at the first call, and every call waits for them. INFO messages on the
``"loopbp"`` logger say what is compiling, for how long, and when the fast kernels take
over; a warning, when a background compile fails (its output is kept in the cache folder).

`loopbp.warm` (``loopbp.precompile``) compiles (or loads) the sets ahead of time, in the
calling process, as ``loopbp warm`` does, e.g. in a Docker image or a CI cache step.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np

from .. import numba_cache
from . import driver, narrow_kernels, serial_driver

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

#: A background compile still running after this many times `COMPILE_SECONDS` is taken
#: for hung: it is stopped, and the calling process compiles the kernels itself.
PATIENCE = 10

#: How often, in seconds at most, a process whose kernels another process is compiling
#: looks in the cache for them.
POLL_SECONDS = 2.0

_lock = threading.RLock()
#: The (dtype, kernel set) pairs whose fast kernels this process runs.
_fast: set = set()
#: The background compiles this process started, by (dtype, kernel set): `_Job`.
_jobs: dict = {}
#: The pairs that another process is compiling, and when to look in the cache next.
_awaited: dict = {}
#: Set inside `foreground`: compile in this process whatever ``LOOPBP_COMPILE`` says.
_forced = threading.local()


def _after_fork_in_child():
    global _lock
    # The parent's lock may have been held by a thread that does not exist here; the
    # parent's background compiles are not this process's children.
    _lock = threading.RLock()
    _jobs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def kernel_set(sizes) -> str:
    """``"narrow"`` or ``"wide"``: the kernel set that a network of these sizes runs."""
    return "narrow" if narrow_kernels.is_narrow(sizes) else "wide"


def compile_mode() -> str:
    """``"background"`` or ``"foreground"``: ``LOOPBP_COMPILE``, or the default (background).

    Inside `foreground`, always ``"foreground"``.
    """
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


class _Job:
    """A background compile this process started: the process, its lock file and deadline."""

    def __init__(self, process, lock, log, deadline):
        self.process, self.lock, self.log, self.deadline = process, lock, log, deadline


def entry_point(sizes, dtype):
    """The compiled function that runs a call for a network of these sizes and dtype.

    ``driver.run`` (the fast kernels) when this process runs them already, when the cache
    holds them, or in the foreground mode; otherwise ``serial_driver.run``, while a
    background process compiles the fast kernels: one started by the first such call, or
    by another process (found by its lock file in the cache folder). Both take the same
    arguments. Logs an INFO message when a compile starts and when the fast kernels take
    over, and a warning when a background compile fails.
    """
    key = (np.dtype(dtype).name, kernel_set(sizes))
    if key in _fast:
        return driver.run
    mode = compile_mode()  # checked first, so that a wrong value fails warm or cold alike
    with _lock:
        if key in _fast:
            return driver.run
        job = _jobs.get(key)
        if job is not None:
            return _follow(key, job, mode)
        if key in _awaited:
            return _await(key, mode)
        if _cached(key):
            _fast.add(key)
            return driver.run
        if mode == "foreground" or not _background_possible():
            return _compile_here(key)
        return _start(key)


def _follow(key, job, mode):
    # The background compile of `key` that this process started.
    state = job.process.poll()
    if state is None and mode == "foreground":
        return _compile_here(key)  # (the background process goes on, and finds it done)
    if state is None and time.monotonic() < job.deadline:
        return serial_driver.run
    del _jobs[key]
    _release(job.lock, job.process.pid)
    if state is None:
        job.process.kill()
        logger.warning(
            "the background compile of the loop kernels (the %s set, %s) took over %d s and was "
            "stopped: compiling them in this process",
            key[1],
            key[0],
            PATIENCE * COMPILE_SECONDS[key[1]],
        )
        return _compile_here(key)
    if state != 0 or not _cached(key):
        why = f"failed (exit status {state}; its output is in {job.log})" if state else "ended without them"
        logger.warning(
            "the background compile of the loop kernels (the %s set, %s) %s: compiling them in this process",
            key[1],
            key[0],
            why,
        )
        return _compile_here(key)
    return _take_over(key)


def _await(key, mode):
    # The background compile of `key` that another process holds the lock of.
    if mode == "foreground":
        del _awaited[key]
        return _compile_here(key)
    if time.monotonic() < _awaited[key]:
        return serial_driver.run
    if _cached(key):
        del _awaited[key]
        return _take_over(key)
    if _lock_holder(_lock_path(key)) is None:
        del _awaited[key]  # that process is gone without the kernels: compile them anew
        return _start(key)
    _awaited[key] = time.monotonic() + POLL_SECONDS
    return serial_driver.run


def _take_over(key):
    _fast.add(key)
    logger.info("the fast loop kernels (the %s set) for %s are ready: loopbp runs them now", key[1], key[0])
    return driver.run


def compiles_in_background() -> bool:
    """Whether a kernel set missing from the cache would be compiled by a background process.

    True in the background mode (`compile_mode`) where a second process can help: not
    with one core, in a frozen application, or without a cache folder.
    """
    return compile_mode() == "background" and _background_possible()


def _background_possible() -> bool:
    # A second process needs a Python to start, a cache both can reach, and a second core;
    # and there is nothing to compile where Numba's JIT is off (NUMBA_DISABLE_JIT=1).
    if getattr(sys, "frozen", False) or not sys.executable or numba_cache.kernel_folder() is None:
        return False
    if numba.config.DISABLE_JIT:
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) > 1


def is_warm(dtype, narrow=None, folder=None) -> bool:
    """Whether the cache holds the fast kernels (``driver.run``) compiled for `dtype` from these sources.

    Parameters
    ----------
    dtype : str or numpy.dtype
        ``"float64"`` or ``"float32"``.
    narrow : bool or None
        Whether the kernel set asked for is the narrow kernels' (True) or the packed and
        streaming kernels' (False); each is compiled when a network first needs it.
        None: either.
    folder : str or None
        The cache folder to look in; by default ``numba_cache.cache_dir()``.

    Returns
    -------
    bool
    """
    position = list(inspect.signature(driver.run.py_func).parameters).index("narrow")
    for types in numba_cache.cached_signatures("driver.run", folder):
        # theta, the first array argument, has the dtype (run's float64 buffers do not tell).
        theta = next((t for t in types if isinstance(t, numba.types.Array)), None)
        if theta is None or str(theta.dtype) != str(dtype):
            continue
        # The type of run's `narrow`: bool for the narrow kernels, none for the others.
        if narrow is None or str(types[position]) == ("bool" if narrow else "none"):
            return True
    return False


def _cached(key) -> bool:
    return is_warm(key[0], narrow=key[1] == "narrow", folder=numba_cache.kernel_folder())


def _compile_here(key):
    # The calling process compiles the fast kernels at the call about to be made.
    logger.info(
        "compiling the loop kernels (the %s set) for %s: about %d s on 2 cores, once; later "
        "runs load them from the cache in %s",
        key[1],
        key[0],
        COMPILE_SECONDS[key[1]],
        numba_cache.kernel_folder() or numba_cache.cache_dir(),
    )
    _fast.add(key)
    return driver.run


def _lock_path(key):
    return os.path.join(numba_cache.kernel_folder(), f"compiling-{key[0]}-{key[1]}.lock")


def _lock_holder(path):
    """The pid in the lock file at `path` while it holds; None once its process is gone.

    A lock holds until the deadline written in it, while its process lives (where that
    can be asked: not on Windows, where signal 0 means something else); a file still
    being written, for a minute.
    """
    try:
        with open(path) as f:
            text = f.read()
        written = os.stat(path).st_mtime
    except OSError:
        return None
    try:
        pid, deadline = text.split()
        pid, deadline = int(pid), float(deadline)
    except ValueError:
        return -1 if time.time() - written < 60 else None
    if time.time() > deadline:
        return None
    if os.name != "nt":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:  # alive, but another user's
            pass
    return pid


def _release(path, pid):
    # Remove the lock file if it is still that of process `pid`.
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            if int(float(f.read().split()[0])) == pid:
                os.remove(path)


def _start(key):
    # Start the background compile of `key`, unless another process holds its lock.
    path = _lock_path(key)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if _lock_holder(path) is not None:
            _awaited[key] = time.monotonic() + POLL_SECONDS
            logger.info(
                "another process is compiling the fast loop kernels (the %s set) for %s: until they "
                "are in the cache, loopbp runs the plain loops in the calling thread",
                key[1],
                key[0],
            )
            return serial_driver.run
        with contextlib.suppress(OSError):
            os.remove(path)  # a stale lock: its process is gone
        if not os.path.exists(path):
            return _start(key)
        _awaited[key] = time.monotonic() + POLL_SECONDS  # it could not be removed: look again later
        return serial_driver.run
    except OSError:
        return _compile_here(key)
    log = os.path.join(numba_cache.kernel_folder(), f"compiling-{key[0]}-{key[1]}.log")
    try:
        process = _start_background_compile(key, log)
    except OSError as e:
        os.close(descriptor)
        with contextlib.suppress(OSError):
            os.remove(path)
        logger.warning("could not start a background compile (%s): compiling in this process", e)
        return _compile_here(key)
    seconds = PATIENCE * COMPILE_SECONDS[key[1]]
    with os.fdopen(descriptor, "w") as f:
        f.write(f"{process.pid} {time.time() + seconds}\n")
    _jobs[key] = _Job(process, path, log, time.monotonic() + seconds)
    logger.info(
        "compiling the fast loop kernels (the %s set) for %s in a background process: about %d s "
        "on 2 cores, once; until then loopbp runs the plain loops in the calling thread, slower but "
        "compiled in seconds (LOOPBP_COMPILE=foreground waits for the fast kernels instead); "
        "later runs load them from the cache in %s",
        key[1],
        key[0],
        COMPILE_SECONDS[key[1]],
        numba_cache.kernel_folder(),
    )
    return serial_driver.run


#: What the background process runs: this copy of loopbp (its folder first on the path
#: while loopbp is imported, as the current directory may hold another), then ``loopbp warm``.
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); import loopbp.cli; del sys.path[0]; "
    "sys.exit(loopbp.cli.main(sys.argv[2:]))"
)


def _start_background_compile(key, log) -> subprocess.Popen:
    # ``loopbp warm`` for this dtype and set, into the cache root this process's kernels
    # use, in a session of its own: it keeps running if this process ends or is
    # interrupted first, so that the next run finds the kernels.
    env = {
        **os.environ,
        "LOOPBP_COMPILE": "foreground",
        "LOOPBP_CACHE_DIR": os.path.dirname(numba_cache.kernel_folder()),
    }
    package_parent = os.path.dirname(numba_cache.PACKAGE_DIR)
    arguments = ["warm", "--dtype", key[0], "--kernels", key[1]]
    command = [sys.executable, "-c", _BOOTSTRAP, package_parent, *arguments]
    with open(log, "w") as output:
        job = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # At a lower priority than this process, whose own calls (and their compile) come first.
    niceness = BACKGROUND_NICENESS
    with contextlib.suppress(AttributeError, OSError):
        niceness += os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, job.pid, niceness)
    # Where Linux schedules each session as a group of its own (autogroup), the group's
    # niceness is what counts against this process's.
    with contextlib.suppress(OSError), open(f"/proc/{job.pid}/autogroup", "w") as f:
        f.write(str(min(niceness, 19)))
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
    for job in list(_jobs.values()):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            job.process.wait(left)
        except subprocess.TimeoutExpired:
            return False
    return True
