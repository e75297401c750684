"""The history subset: a few benchmarks that make walking many commits practical.

``asv run --bench History HEAD~5..HEAD`` runs only the classes here (asv's ``--bench``
is a regular expression matched against benchmark names). They cover what a commit is
most likely to move: the gradient of the toy case (Python overhead), the small case
(kernels, one thread's worth of work) and the mnist case (large contractions), with the
loops and NumPy ``@`` (the BLAS baseline, which no commit of loopbp touches), in
float64; the first call with a warm cache; and the machine control. Each is sampled 3 to
5 times in each of two rounds (two processes), instead of asv's default of up to ten per
round. Two rounds let ``asv continuous --interleave-rounds`` alternate between the two
commits it compares, so that a spell of machine noise falls on both.

The whole suite stays the thorough option (docs/user-guide/asv.md). Under
``LOOPBP_BENCH_SMOKE=1`` (`common.smoke`) the gradients run a tiny stand-in network.
"""

from . import bench_gradient, common
from .bench_compile import _SETUP, _WARM


class _HistoryGradient:
    """One full gradient in float64, all Numba threads (calls per sample as in bench_gradient)."""

    params = ["loops", "matmul"]
    param_names = ["backend"]
    repeat = (3, 5, 5.0)
    rounds = 2
    case = None

    def setup(self, backend):
        sizes, m = common.case(self.case)
        self.run = common.prepared("gradient", sizes, m, "float64", backend)

    def time_gradient(self, backend):
        self.run()


class HistoryGradientToy(_HistoryGradient):
    case = "toy"
    number = 200


class HistoryGradientSmall(_HistoryGradient):
    case = "small"
    number = 5


class HistoryGradientMnist(_HistoryGradient):
    case = "mnist"
    number = 1


class HistoryFirstCall:
    """The first gradient in a fresh interpreter, kernels loaded from a warm cache (float64)."""

    repeat = (3, 3, 30.0)
    rounds = 1

    def timeraw_first_gradient(self):
        return "net.gradient(X, Y)", _SETUP.format(cache=_WARM.format(dtype="float64"), dtype="float64")


# Subclassed through the module: a class imported by name would be found a second time
# by asv, as bench_history.Control.
class HistoryControl(bench_gradient.Control):
    """`bench_gradient.Control`, sampled as the history's other benchmarks are."""

    repeat = (3, 5, 5.0)
    rounds = 2
