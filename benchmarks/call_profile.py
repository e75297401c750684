"""Where a small network's gradient and training step spend their time: kernels, sigmoid, Python.

Usage::

    python benchmarks/call_profile.py toy            # or narrow, or any case of common.CASES
    python benchmarks/call_profile.py toy --dtype float32

Each line times one layer of a call, in this process, after a first call that compiles or
loads it, as the median of 7 samples of many calls:

- the kernels alone: ``driver.run`` (a checked gradient) called 1,000 times from a compiled loop, so
  that no Python and no Numba dispatch is counted; then the forward pass alone, and sigmoid
  alone on as many values as the network's sigmoid layers hold;
- the same kernel called from Python (the difference is Numba's dispatch of its arguments);
- ``Network.gradient`` and ``loopbp.gradient``, the whole call;
- one step of ``Network.fit`` (a long full-batch fit divided by its epochs).

It is a profile by subtraction: each layer's cost is its time less the one above it.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402  (benchmarks/common.py: the seeded reference cases)

import loopbp  # noqa: E402
from loopbp.activations import activation_code  # noqa: E402
from loopbp.cpu import driver, workspace  # noqa: E402
from loopbp.cpu.activation_rows import activate_row  # noqa: E402

REPEAT = 1_000


@njit
def _runs(mode, args, unused, repeat):
    for _ in range(repeat):
        driver.run(mode, *args, unused, 1)


@njit
def _sigmoids(code, z, repeat):
    for _ in range(repeat):
        activate_row(code, z)


def _per_call(run, calls):
    run()
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(common.CASES))
    parser.add_argument("--dtype", default="float64", choices=common.DTYPES)
    args = parser.parse_args(argv)
    sizes, m = common.CASES[args.case]
    W, b, X, Y, acts = common.problem(sizes, m, args.dtype)
    net = loopbp.Network.from_parameters(W, b, acts)
    work = workspace.Workspace(net.sizes, m, net.dtype)
    grad = np.empty_like(net.theta)
    run_args = (net.theta, net.engine.network, X, Y, grad, work.buffers(), *work.kernels())
    unused = driver.unused_training_arguments(net.dtype)
    calls = max(1, int(2e-3 / max(common.gflop(sizes, m) / 50, 1e-9)))  # about 2 ms a sample at 50 GFLOP/s

    kernels = _per_call(lambda: _runs(driver.GRADIENT, run_args, unused, REPEAT), 3) / REPEAT
    forward = _per_call(lambda: _runs(driver.FORWARD, run_args, unused, REPEAT), 3) / REPEAT
    n_sigmoid = sum(n for n, g in zip(sizes[1:], acts) if g == "sigmoid") * m
    z = np.linspace(-4, 4, max(n_sigmoid, 1)).astype(args.dtype)
    sigmoid = _per_call(lambda: _sigmoids(activation_code("sigmoid"), z, REPEAT), 3) / REPEAT
    direct = _per_call(lambda: driver.run(driver.GRADIENT, *run_args, unused, 1), calls)
    network = _per_call(lambda: net.gradient(X, Y), calls)
    function = _per_call(lambda: loopbp.gradient(W, b, X, Y, acts), calls)
    epochs = max(10, int(0.5 / max(network, 1e-7)))
    fit_net = loopbp.Network.from_parameters(W, b, acts)
    fit_net.fit(X, Y, learning_rate=1e-3, epochs=1, progress=False)
    start = time.perf_counter()
    fit_net.fit(X, Y, learning_rate=1e-3, epochs=epochs, progress=False)
    step = (time.perf_counter() - start) / epochs

    path = "narrow kernels" if work.narrow else f"packed kernels, path {loopbp.cpu.simd.PATH}"
    print(f"loopbp call profile: {args.case} {sizes}, m = {m}, {args.dtype}, one thread, {path}")
    rows = [
        ("kernels, from a compiled loop", kernels, ""),
        ("  of which the forward pass", forward, ""),
        (f"  sigmoid alone on {n_sigmoid} values", sigmoid, ""),
        ("kernels called from Python", direct, f"dispatch +{(direct - kernels) * 1e6:.2f} us"),
        ("Network.gradient", network, f"+{(network - direct) * 1e6:.2f} us around the kernels' call"),
        ("loopbp.gradient", function, f"+{(function - direct) * 1e6:.2f} us around the kernels' call"),
        (f"one step of Network.fit ({epochs} epochs)", step, ""),
    ]
    for name, seconds, note in rows:
        print(f"{name:<42} {seconds * 1e6:9.2f} us   {note}".rstrip())
    print("(the kernel lines run on one thread; Network.gradient and fit use threads where they pay)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
