"""The first call in a fresh interpreter: compilation with an empty Numba cache, and the
cache load with a warm one. Imports and data creation are in the untimed setup code.

Under ``LOOPBP_BENCH_SMOKE=1`` (`common.smoke`) "cold" runs as "warm" does, from the warm
cache: compiling every kernel takes half a minute or more per dtype, longer than a smoke
run of the whole suite may take.
"""

from . import common

_SETUP = """
import os, subprocess, sys, tempfile
{cache}
import numpy as np
import loopbp
net = loopbp.Network((64, 128, 128, 10), ("sigmoid", "sigmoid", "identity"), dtype=np.{dtype}, seed=0)
X = np.ones((64, 100), np.{dtype})
Y = np.zeros((10, 100), np.{dtype})
"""

# A fresh, empty cache directory for every sample: the call compiles every kernel.
# NUMBA_CACHE_DIR for commits before loopbp's own cache locator, LOOPBP_CACHE_DIR (which
# takes precedence) for those after it.
_COLD = 'os.environ["NUMBA_CACHE_DIR"] = os.environ["LOOPBP_CACHE_DIR"] = tempfile.mkdtemp()'

# One call of the same network in another interpreter first, so that the cache is warm
# whatever ran before (loopbp compiles the kernel set that a network runs, and this
# network's is not a tiny one's).
_WARM = (
    "subprocess.run([sys.executable, '-c', 'import numpy as np, loopbp; "
    'net = loopbp.Network((64, 128, 128, 10), ("sigmoid", "sigmoid", "identity"), dtype=np.{dtype}); '
    "net.gradient(np.ones((64, 1), np.{dtype}), np.ones((10, 1), np.{dtype}))'], check=True)"
)


class FirstCall:
    params = (["cold", "warm"], ["float64", "float32"])
    param_names = ["cache", "dtype"]
    repeat = (3, 5, 120.0)
    timeout = 600

    def timeraw_first_gradient(self, cache, dtype):
        prepare = _COLD if cache == "cold" and not common.smoke() else _WARM.format(dtype=dtype)
        return "net.gradient(X, Y)", _SETUP.format(cache=prepare, dtype=dtype)
