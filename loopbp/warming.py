"""The first call's compile: a log message when it happens, and `warm` to do it ahead of time.

The loop kernels are compiled by Numba at their first call and kept in the cache
(``loopbp.numba_cache``), once per dtype and kernel set: the narrow kernels, for networks
whose layers are all at most ``narrow_kernels.WIDTH`` wide, and the packed and
streaming kernels for every other network. Each compiles when a network first needs
it: the gradient, `fit` and `forward` all run one compiled function (``loopbp.driver``),
so that after the first of them nothing else compiles but `error`'s small sum.

`note_first_call` logs one INFO message on the ``"loopbp"`` logger before a kernel set
compiles (how long it takes here: `COMPILE_SECONDS`); `warm` compiles (or loads) the
sets ahead of time, as ``loopbp warm`` does, e.g. in a Docker image or a CI cache step.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from . import narrow_kernels, numba_cache
from .validation import check_choice

logger = logging.getLogger("loopbp")

#: The kernel sets, and a small network that needs each.
KERNEL_SETS = {"narrow": (3, 4, 2), "wide": (narrow_kernels.WIDTH + 1, 4, 2)}

#: How long a kernel set takes to compile for one dtype, rounded up, on the project's
#: 2-core AMD EPYC (Zen 3) machine, 2026-12-07: the first `Network.gradient` in an empty
#: cache (``benchmarks/compile_profile.py``).
COMPILE_SECONDS = {"narrow": 25, "wide": 45}

_seen: set = set()
_seen_lock = threading.Lock()


def kernel_set(sizes) -> str:
    """``"narrow"`` or ``"wide"``: the kernel set that a network of these sizes runs."""
    return "narrow" if narrow_kernels.is_narrow(sizes) else "wide"


def note_first_call(sizes, dtype) -> None:
    """Log, once per process, dtype and kernel set, that the kernels are about to compile.

    Does nothing when the cache holds them already (a load takes a fraction of a second).
    """
    key = (np.dtype(dtype).name, kernel_set(sizes))
    if key in _seen:
        return
    with _seen_lock:
        if key in _seen:
            return
        _seen.add(key)
    name, kernels = key
    if not numba_cache.is_warm(name, narrow=kernels == "narrow"):
        logger.info(
            "compiling the loop kernels (the %s set) for %s: about %d s on 2 cores, once; later "
            "runs load them from the cache in %s",
            kernels,
            name,
            COMPILE_SECONDS[kernels],
            numba_cache.cache_dir(),
        )


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
