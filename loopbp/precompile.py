"""Compiling the loop kernels ahead of their first call: `warm`.

The fast loop kernels compile at the first call that needs them, once per dtype and
kernel set, and stay in the cache (``loopbp.cpu.warming`` says what runs meanwhile).
`warm` compiles them beforehand, for a Docker image, a CI cache step or a benchmark;
``loopbp warm`` is the same from the command line.
"""

from __future__ import annotations

import time

import numpy as np

from .cpu import warming
from .network import Network
from .validation import check_choice


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
    done = []
    # The point is the fast kernels in the cache: compile them here, whatever LOOPBP_COMPILE says.
    with warming.foreground():
        for dtype in dtypes:
            dtype = np.dtype(dtype)
            for name in kernels:
                sizes = warming.KERNEL_SETS[check_choice(name, "kernels", tuple(warming.KERNEL_SETS))]
                cached = warming.is_warm(dtype.name, narrow=name == "narrow")
                net = Network(sizes, ("sigmoid", "identity"), dtype=dtype, seed=0)
                start = time.perf_counter()
                net.gradient(np.zeros((sizes[0], 2), dtype), np.zeros((sizes[-1], 2), dtype))
                done.append((dtype.name, name, cached, time.perf_counter() - start))
    return done
