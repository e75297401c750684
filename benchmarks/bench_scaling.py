"""Scaling series: gradient time against m and against width, per backend, so that the
crossover where one backend overtakes the other shows in asv's graphs.

Sizes span microseconds to seconds, so each call is timed on its own (``number = 1``)
after the untimed setup that prepares it; see bench_gradient for the pattern. Under
``LOOPBP_BENCH_SMOKE=1`` (`common.smoke`) every point runs the tiny stand-in network.
"""

from . import common


class ScalingSamples:
    """The small network (64, 128, 128, 10) with m from 10 to 100,000 samples."""

    params = ([10, 100, 1_000, 10_000, 100_000], common.BACKENDS)
    param_names = ["m", "backend"]
    number = 1
    repeat = (5, 20, 10.0)

    def setup(self, m, backend):
        sizes, m = common.run_sizes((64, 128, 128, 10), m)
        self.run = common.prepared("gradient", sizes, m, "float64", backend)

    def time_gradient(self, m, backend):
        self.run()


class ScalingWidth:
    """Three layers of equal width n (n, n, n, n) from 4 to 1024 units, m = 1,000."""

    params = ([4, 16, 64, 256, 1024], common.BACKENDS)
    param_names = ["width", "backend"]
    number = 1
    repeat = (5, 20, 10.0)
    timeout = 300

    def setup(self, width, backend):
        sizes, m = common.run_sizes((width,) * 4, 1_000)
        self.run = common.prepared("gradient", sizes, m, "float64", backend)

    def time_gradient(self, width, backend):
        self.run()
