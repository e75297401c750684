"""Compile every CUDA kernel of loopbp, both dtypes, to PTX for a Hopper GPU, without needing one.

Run by ``tests/test_cuda.py`` with the simulator off: the simulator runs the kernels as
Python and so cannot find what only the compiler checks (types, shared-array shapes,
what the CUDA target supports). Exits 3, saying why, where no CUDA compiler (libNVVM) is
installed; 1 if a kernel fails to compile.
"""

import importlib
import sys

import numpy as np

from loopbp.cuda import target as cuda_target

cuda = cuda_target.cuda_module()
# Device functions are compiled for "the current device", which a machine without a GPU
# lacks: name one here, a Hopper (sm_90), for this check only.
for name in ("numba.cuda.dispatcher", "numba_cuda_mlir.numba_cuda.dispatcher"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    if hasattr(module, "get_current_device"):
        module.get_current_device = lambda: type("Hopper", (), {"compute_capability": (9, 0)})()
if cuda.__name__.startswith("numba_cuda_mlir"):
    types = importlib.import_module("numba_cuda_mlir.numba_cuda.types")
else:
    from numba import types

from loopbp.cuda import kernels as cuda_kernels  # noqa: E402


def probe(a):
    a[0] = 1.0


try:
    cuda.compile_ptx(probe, (types.float64[::1],), cc=(9, 0))
except Exception as err:  # no libNVVM or NVRTC: nothing to check here
    print(f"no CUDA compiler here ({type(err).__name__}: {str(err).strip().splitlines()[0]})")
    sys.exit(3)

i64, f64 = types.int64, types.float64


def array(t, ndim):
    return types.Array(t, ndim, "C")


# The shape the backend runs; the tiny one of the tests is the same code with smaller constants.
for shape in (cuda_kernels.DEFAULT_SHAPE,):
    for dtype in (np.float32, np.float64):
        kernels = cuda_kernels.kernels_for(np.dtype(dtype), shape)
        r = types.float32 if dtype == np.float32 else types.float64
        a1, a2, a3, e1, i1 = array(r, 1), array(r, 2), array(r, 3), array(f64, 1), array(i64, 1)
        # The argument types of the launches in loopbp.cuda.engine.
        signatures = {
            "forward_layer": (a1, i64, i64, a2, a2),
            "output_delta": (a2, a2, i64, r, types.boolean, a2, e1),
            "add_error": (e1, f64, f64, e1, i64, i1, i64),
            "hidden_delta": (a1, i64, i64, a2, a2, a2),
            "weight_gradient": (a2, a2, a3),
            "sum_chunks": (a3, a1, i64),
            "descend": (a1, a1, r, i1),
            "check_step": (a1, a1, r, i1, i64),
            "gather": (a2, i1, i64, a2),
        }
        assert set(signatures) == set(cuda_kernels.KERNELS)
        for name, signature in signatures.items():
            ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, signature, cc=(9, 0))
            print(f"tile {shape.tile} {np.dtype(dtype).name} {name}: {len(ptx)} chars")
