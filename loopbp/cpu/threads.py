"""When the loop kernels may start parallel regions, and how concurrent callers are kept apart.

Numba runs ``prange`` loops on one of three threading layers, chosen when the first
parallel region starts (TBB if installed, else OpenMP, else its own "workqueue"; the
environment variable ``NUMBA_THREADING_LAYER`` overrides the choice). loopbp works under
each of them, by two rules:

- **One parallel call at a time.** The workqueue layer aborts the process if two Python
  threads start parallel regions at once. loopbp therefore holds a process-wide lock
  while a call of its runs with threads; under OpenMP and TBB this also keeps two
  callers from each starting a full team of threads on the same cores. Tiny networks,
  which run in the calling thread (``engine.SERIAL_BELOW``), take no lock and run
  concurrently.
- **Serial after fork.** GNU OpenMP cannot start threads in a child forked from a
  process that has used it (Numba terminates such a child). In a child forked after the
  OpenMP layer started, loopbp runs every call in the calling thread. The results are
  bitwise the same, since the serial and parallel paths do the same arithmetic.
"""

import os
import threading
from collections.abc import Sequence

import numba

_lock = threading.Lock()
_serial_only = False


def threads_allowed():
    """Whether this process may start parallel regions (False in a child forked after OpenMP)."""
    return not _serial_only


def run(kernel, *args, parallel):
    """kernel(*args, threads), under the process-wide lock when `parallel`.

    `threads` is ``numba.get_num_threads()`` when `parallel`, else 1 (the calling thread).
    """
    if not parallel:
        return kernel(*args, 1)
    with _lock:
        return kernel(*args, numba.get_num_threads())


def after_fork_in_child():
    """In a forked child (``os.register_at_fork``): a new lock, and no parallel regions after OpenMP's.

    The parent's lock may be held by a thread that the child does not have, and GNU
    OpenMP cannot start threads in a child of a process that has used it.
    """
    global _lock, _serial_only
    _lock = threading.Lock()
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet: the child may start them
        return
    if layer == "omp":
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork_in_child)


#: Below this many multiply-adds in the forward pass (m times the number of weights; a whole
#: gradient has about three times as many) the loops run in the calling thread:
#: starting a parallel region costs about 3 us on 2 cores (the development machines, 2026),
#: and a tiny network's gradient takes
#: about a dozen of them. Serial and parallel runs give bitwise the same result.
SERIAL_BELOW = 250_000


def enough_work(sizes: Sequence[int], m: int) -> bool:
    """Whether the forward pass of the network on m samples has `SERIAL_BELOW` multiply-adds or more."""
    return sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:])) * m >= SERIAL_BELOW


def worth_threads(sizes: Sequence[int], m: int) -> bool:
    """Whether the network is big enough for parallel regions to pay (see `SERIAL_BELOW`)."""
    return enough_work(sizes, m) and threads_allowed()
