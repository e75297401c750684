"""Which package gives loopbp Numba's CUDA target, and whether a GPU (or the simulator) is there.

Numba's CUDA target has moved out of numba, and no one package serves every machine
(late 2026):

- ``numba-cuda-mlir`` (NVIDIA, ``from numba_cuda_mlir import cuda``) compiles for real GPUs
  and works with NumPy 2.5, but has no CUDA simulator;
- ``numba-cuda`` (NVIDIA, in maintenance mode; it makes ``numba.cuda`` its own) has the
  simulator, but its compiler registers an overload of ``np.row_stack``, which NumPy 2.5
  removed, so with NumPy 2.5 it fails when its first kernel compiles;
- numba's own, deprecated ``numba.cuda`` still has the simulator too.

So `cuda_module` takes, in this order:

1. with ``NUMBA_ENABLE_CUDASIM=1`` (read by numba when it is imported): the simulator of
   ``numba.cuda``, whichever of numba and numba-cuda provides it. This is how the tests
   run without a GPU;
2. ``numba_cuda_mlir.cuda`` if it is installed (the ``gpu`` extra);
3. ``numba.cuda`` (numba-cuda, as GPU images ship it), under NumPy 2.5 with ``np.row_stack``
   defined as ``np.vstack`` while its array functions are registered, and removed again.

The kernels (``loopbp.cuda.kernels``) use only what all three share: ``cuda.jit``,
``cuda.grid``, shared and local arrays, ``cuda.syncthreads`` and device arrays.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from types import ModuleType

import numpy as np

from ..errors import NoGPU

#: What to install for the cuda backend.
GPU_EXTRA = 'pip install "loopbp[gpu]"'

_lock = threading.Lock()


_found: ModuleType | None = None


def installed() -> bool:
    """Whether a CUDA package is installed (numba-cuda-mlir, or a ``numba.cuda``), without importing it."""
    return any(importlib.util.find_spec(name) is not None for name in ("numba_cuda_mlir", "numba.cuda"))


def simulator_enabled() -> bool:
    """Whether numba was imported with ``NUMBA_ENABLE_CUDASIM=1`` (the CUDA simulator)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


#: The name NumPy 2.5 removed and numba-cuda still registers an overload for. Held as a
#: string: linters rewrite ``np.row_stack`` to ``np.vstack``, which here would delete vstack.
ROW_STACK = "row_stack"


def numba_cuda() -> ModuleType:
    # numba-cuda registers np.row_stack's overload when its array functions are first
    # imported; NumPy 2.5 has no np.row_stack. The alias lives only while they load.
    with _lock:
        added = not hasattr(np, ROW_STACK)
        if added:
            setattr(np, ROW_STACK, np.vstack)
        try:
            cuda = importlib.import_module("numba.cuda")
            if not simulator_enabled():
                try:
                    importlib.import_module("numba.cuda.np.arrayobj")
                except ImportError:  # numba's own numba.cuda has no such module
                    pass
        finally:
            if added:
                delattr(np, ROW_STACK)
    return cuda


def cuda_module() -> ModuleType:
    """The ``cuda`` module that the kernels are written against (see the module docstring).

    Raises
    ------
    ImportError
        If no CUDA package is installed; the message says what to install.
    """
    global _found
    if _found is not None:
        return _found
    if simulator_enabled():
        try:
            _found = numba_cuda()
        except ImportError as err:
            raise ImportError(
                f"NUMBA_ENABLE_CUDASIM=1 asks for Numba's CUDA simulator, which this numba lacks ({err}): "
                f"pip install numba-cuda"
            ) from None
        return _found
    try:
        _found = importlib.import_module("numba_cuda_mlir.cuda")
        return _found
    except ImportError:
        pass
    try:
        _found = numba_cuda()
    except ImportError as err:
        raise ImportError(f"backend='cuda' needs Numba's CUDA target ({err}): {GPU_EXTRA}") from None
    return _found


def require_gpu() -> ModuleType:
    """`cuda_module`, checked to have a GPU to run on (or the simulator).

    Raises
    ------
    ImportError
        If no CUDA package is installed.
    loopbp.errors.NoGPU
        A RuntimeError: the package finds no usable GPU; the message says how to test
        without one.
    """
    cuda = cuda_module()
    if simulator_enabled():
        return cuda
    try:
        available = cuda.is_available()
    except Exception as err:  # a driver that cannot be loaded raises instead of answering
        available, why = False, f": {err}"
    else:
        why = ""
    if not available:
        raise NoGPU(
            f"backend='cuda' found no usable CUDA GPU{why}. Without a GPU, Numba's CUDA simulator runs "
            f"the same kernels (slowly): set NUMBA_ENABLE_CUDASIM=1 before Python imports numba."
        )
    return cuda
