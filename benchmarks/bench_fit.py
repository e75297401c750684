"""Training time: ``Network.fit`` on the sine example and on a digits-sized network.

Each sample is one ``fit`` call of full-batch gradient descent, from the same start
every time: setup puts the starting parameters back, so a sample never continues the
previous one's training. The data, the network and one warm-up ``fit`` (Numba's
compilation or cache load, the network's buffers' first allocation) are made once per
process (`_prepared`), in setup, which asv never times. Only loopbp's public API is used
(``Network``, ``Network.from_parameters``, ``fit``); commits before ``fit`` existed skip
these benchmarks.

``benchmarks/train_peers.py`` times the examples' full runs against NumPy, PyTorch and
JAX; these are short runs, under half a second each, to track loopbp's own speed.
"""

import functools

import numpy as np

import loopbp

from . import common

#: (sizes, m, epochs per timed call). "sine" is the series' example (1-20-1 on 100
#: points of [0, 2 pi]); "digits" is the digits example's shape (64-64-10, the 1,347
#: training images) on seeded N(0, 1) data from `common.problem`.
FITS = {
    "sine": ((1, 20, 1), 100, 2_000),
    "digits": ((64, 64, 10), 1_347, 50),
}

LEARNING_RATE = 0.1


@functools.cache
def _prepared(case, dtype):
    """The network, X, Y and copies of its starting W and b, after one warm-up fit."""
    if not hasattr(loopbp.Network, "fit"):
        raise NotImplementedError("this loopbp has no Network.fit")
    sizes, m, _ = FITS[case]
    dtype = np.dtype(dtype)
    if case == "sine":
        net = loopbp.Network(sizes, common.activations(len(sizes) - 1), dtype=dtype, seed=0)
        X = np.linspace(0.0, 2.0 * np.pi, m)[None, :]
        X, Y = X.astype(dtype), np.sin(X).astype(dtype)
    else:
        W, b, X, Y, acts = common.problem(sizes, m, dtype.name)
        net = loopbp.Network.from_parameters(W, b, acts)
    W0 = [w.copy() for w in net.W]
    b0 = [v.copy() for v in net.b]
    net.fit(X, Y, learning_rate=LEARNING_RATE, epochs=1, progress=False)
    return net, X, Y, W0, b0


class _Fit:
    """One ``fit`` call of the case's epochs, every Numba thread."""

    params = common.DTYPES
    param_names = ["dtype"]
    number = 1
    case = None

    def setup(self, dtype):
        self.net, self.X, self.Y, W0, b0 = _prepared(self.case, dtype)
        # W and b are views of the network's parameters: writing them resets the start.
        for target, source in zip(list(self.net.W) + list(self.net.b), W0 + b0):
            target[...] = source
        self.epochs = FITS[self.case][2]

    def time_fit(self, dtype):
        self.net.fit(self.X, self.Y, learning_rate=LEARNING_RATE, epochs=self.epochs, progress=False)


class FitSine(_Fit):
    case = "sine"


class FitDigits(_Fit):
    case = "digits"
