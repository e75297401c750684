"""Time ``Network.fit`` on the series' sine or digits example, compilation left out.

Usage::

    python benchmarks/fit_speed.py sine            # or digits
    PYTHONPATH=/path/to/other/checkout python benchmarks/fit_speed.py sine

It uses only what every version of loopbp since the examples has (``Network``,
``Network.fit``, ``loopbp.examples.sine_data`` and ``digits_data``), so that two versions
can be timed back to back, each in its own process: one epoch on a copy of the network
first (compiling the kernels or loading them from the cache), then the example's full
run, timed once. It prints the steps per second and the final E.
"""

import copy
import os
import sys
import time

# Time the fast kernels, compiled (or loaded) at the first call, in this process and in the
# processes it starts: never the serial loops that run while they compile (loopbp.cpu.warming).
os.environ["LOOPBP_COMPILE"] = "foreground"

import loopbp
from loopbp import examples


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["sine"], ["digits"]):
        print("usage: python benchmarks/fit_speed.py sine|digits", file=sys.stderr)
        return 2
    which = argv[0]
    if which == "sine":
        X, Y = examples.sine_data()
        net, epochs = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0), 20_000
    else:
        X, Y, _, _ = examples.digits_data(0)
        net, epochs = loopbp.Network([64, 64, 10], ["sigmoid", "identity"], seed=0), 10_000
    copy.deepcopy(net).fit(X, Y, learning_rate=0.1, epochs=1, progress=False)
    start = time.perf_counter()
    history = net.fit(X, Y, learning_rate=0.1, epochs=epochs, progress=False)
    seconds = time.perf_counter() - start
    rate = epochs / seconds
    print(f"{which}: {loopbp.__file__}: {seconds:.3f} s, {rate:.0f} steps per second, E {history[-1]:.9g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
