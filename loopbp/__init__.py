"""loopbp: the back-propagation derivation as Numba loops, checked against NumPy einsum.

The public API:

- `gradient`, `forward`, `error`: E, its gradient, and the forward pass for lists of
  weights W and biases b, by backend (``"loops"``, the default, or ``"einsum"``).
- `Network`: sizes, activations and parameters in one object, with the same methods,
  `fit` (gradient descent) and `save`; `load` reads a saved network back.
- `check_gradient`: the gradient against central finite differences.
- `ACTIVATIONS`: the names of the activation functions.
"""

from . import numba_cache
from .activations import ACTIVATIONS
from .gradient_check import check_gradient
from .gradients import error, forward, gradient
from .network import Network, TrainingDiverged, load
from .validation import BACKENDS

# Numba reads its cache at a kernel's first call, not at import: clearing a cache built
# from other versions of some of these files here, before any call, is in time.
numba_cache.keep_consistent()

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "BACKENDS",
    "Network",
    "TrainingDiverged",
    "check_gradient",
    "error",
    "forward",
    "gradient",
    "load",
    "__version__",
]
