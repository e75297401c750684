"""Gradient and forward-pass time, peak memory and GFLOP/s on the reference cases.

Pattern for honest timings (asv_runner 0.3): every class here has a ``setup`` that
only looks up a prepared call (`common.prepared`, cached per process), so that data
creation and Numba's compilation always happen in setup, which asv never times. With a
setup, asv_runner 0.3 times each call on its own; each class therefore sets
``number`` for its case explicitly, and asv re-runs the (trivial) setup between calls
and adds up only the calls. A setup that does no work between calls keeps the caches
as warm as a timeit loop would, so microsecond calls are not overstated.

Every network comes from ``common.case`` (or ``common.run_sizes``), so that under
``LOOPBP_BENCH_SMOKE=1`` (`common.smoke`) each benchmark runs on a tiny stand-in and the
micro-kernel's peak is measured for a moment instead of a second.
"""

import math
import statistics
import time

import numpy as np

from . import common


class _Gradient:
    """Time, peak memory and GFLOP/s of one full gradient (forward pass, E, every dW and db)."""

    params = (common.DTYPES, common.BACKENDS, common.THREADS)
    param_names = ["dtype", "backend", "threads"]
    case = None

    def setup(self, dtype, backend, threads):
        sizes, m = common.case(self.case)
        self.run = common.prepared("gradient", sizes, m, dtype, backend, threads)

    def time_gradient(self, dtype, backend, threads):
        self.run()

    def peakmem_gradient(self, dtype, backend, threads):
        self.run()


class GradientToy(_Gradient):
    case = "toy"
    number = 200


class GradientSmall(_Gradient):
    case = "small"
    number = 5


class GradientMnist(_Gradient):
    case = "mnist"
    number = 1


class GradientWide(_Gradient):
    """The wide case takes seconds per call: sampled less, one round."""

    case = "wide"
    number = 1
    repeat = (1, 3, 60.0)
    rounds = 1
    timeout = 600


class _Forward:
    """Time of the forward pass alone, A^L from X."""

    params = (common.DTYPES, common.BACKENDS)
    param_names = ["dtype", "backend"]
    case = None

    def setup(self, dtype, backend):
        sizes, m = common.case(self.case)
        self.run = common.prepared("forward", sizes, m, dtype, backend)

    def time_forward(self, dtype, backend):
        self.run()


class ForwardToy(_Forward):
    case = "toy"
    number = 200


class ForwardSmall(_Forward):
    case = "small"
    number = 10


class ForwardMnist(_Forward):
    case = "mnist"
    number = 1


def gflops_calls(gflop):
    """How many calls `GflopsLoops` times for a gradient of `gflop` GFLOP: 8 / sqrt(GFLOP), 1 to 2,000.

    Many where a call takes microseconds and its time is mostly overhead and noise, one
    where it takes seconds; derived from the size so that any case of ``common.CASES``
    has a count: toy 1,136, narrow 82, small 22, mnist 3, wide 1.
    """
    return min(2000, math.ceil(8 / math.sqrt(gflop)))


class GflopsLoops:
    """GFLOP/s of the loop backend's gradient: the median of timed calls after a warm-up."""

    params = (list(common.CASES), common.DTYPES)
    param_names = ["case", "dtype"]
    unit = "GFLOP/s"
    timeout = 600

    def track_gflops(self, case, dtype):
        sizes, m = common.case(case)
        run = common.prepared("gradient", sizes, m, dtype, "loops")
        times = []
        for _ in range(gflops_calls(common.gflop(sizes, m))):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return common.gflop(sizes, m) / statistics.median(times)


class PeakShareLoops:
    """The loop backend's gradient as a share of the machine's measured FMA peak, in %.

    The peak is loopbp's own register micro-kernel with its operands in L1, on every
    thread at once (``common.micro_kernel_peak``): what is left between the two is
    packing, cache misses, edges and the elementwise work. Skipped where the loops run
    the portable kernels, and for commits before the micro-kernel.
    """

    params = (list(common.CASES), common.DTYPES)
    param_names = ["case", "dtype"]
    unit = "%"
    timeout = 600

    def track_share_of_peak(self, case, dtype):
        gflops = GflopsLoops().track_gflops(case, dtype)  # with every thread ("all")
        # A smoke run's numbers are never read: there the peak is measured for a moment, not a second.
        brief = {"seconds": 0.01} if common.smoke() else {}
        return 100 * gflops / common.micro_kernel_peak(dtype, **brief)


class Control:
    """A plain NumPy product of two 512 x 512 float64 matrices, through BLAS.

    loopbp's code does not touch it: when it moves, the machine was slow or busy.
    """

    number = 20

    def setup(self):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((512, 512))
        self.b = rng.standard_normal((512, 512))

    def time_matmul_512(self):
        self.a @ self.b
