"""loopbp: the back-propagation derivation as Numba loops, checked against NumPy einsum.

The public API:

- `gradient`, `forward`, `error`: E, its gradient, and the forward pass for lists of
  weights W and biases b, by backend (``"loops"``, the default, ``"einsum"``, or
  ``"cuda"`` on a GPU with the ``gpu`` extra).
- `Network`: sizes, activations and parameters in one object, with the same methods,
  `fit` (gradient descent) and `save`; `load` reads a saved network back.
- `check_gradient`: the gradient against central finite differences.
- `warm`: compile the loop kernels ahead of their first call (they are cached).
- `ACTIVATIONS`: the names of the activation functions.
- `loopbp.sklearn`: scikit-learn estimators (samples as rows), with the ``sklearn`` extra.
- `loopbp.examples`: the series' sine and digits examples.
"""

import importlib
import importlib.metadata

from . import numba_cache

# Numba picks a kernel's cache locator when the kernel is decorated, so loopbp's own
# locator (a per-user cache directory, never site-packages) goes in before any kernel
# module is imported.
numba_cache.install()

from .activations import ACTIVATIONS  # noqa: E402
from .errors import TrainingDiverged  # noqa: E402
from .gradient_check import check_gradient  # noqa: E402
from .gradients import error, forward, gradient  # noqa: E402
from .network import Network, load  # noqa: E402
from .precompile import warm  # noqa: E402
from .validation import BACKENDS  # noqa: E402

try:
    # One place for the version: the installed distribution's metadata (pyproject.toml).
    __version__ = importlib.metadata.version("loopbp")
except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, never installed
    __version__ = "0+unknown"

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
    "warm",
    "__version__",
]

# Submodules that are part of the API but imported only when asked for: `sklearn` needs
# the optional scikit-learn, and neither belongs in a plain ``import loopbp``.
_LAZY_SUBMODULES = ("examples", "sklearn")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ImportError as err:
            # An AttributeError, so that hasattr, help() and inspect see a missing
            # attribute, not a crash; the message says what to install.
            raise AttributeError(f"loopbp.{name} is not available: {err}") from err
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    # The public API only: the internal modules (kernels, passes, ...) stay importable
    # by name but out of tab completion.
    return sorted([*__all__, *_LAZY_SUBMODULES])
