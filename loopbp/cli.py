"""The ``loopbp`` command line: ``loopbp compare`` times the backends on one network.

``loopbp compare`` builds one seeded network and data set, runs every backend on it,
and prints, per backend, the first-call time (for the loops, Numba's compile or cache
load), the median time per gradient, GFLOP/s, the speed-up against einsum and the
largest relative difference from the einsum gradient. It exits with status 1 if the
loops and einsum disagree beyond the dtype's tolerance (``loopbp.agreement``).
"""

import argparse
import statistics
import sys
import time

import numpy as np

from .activations import ACTIVATIONS
from .agreement import TOLERANCE, gradient_difference
from .network import Network

DEFAULT_SIZES = (64, 128, 128, 10)
DEFAULT_M = 1000


def gradient_gflop(sizes, m):
    """GFLOP in one gradient: 2 n^l n^(l-1) m for each of forward, dW and dA (no dA for l = 1)."""
    flop = 0
    for l in range(1, len(sizes)):
        products = 3 if l > 1 else 2
        flop += products * 2 * sizes[l] * sizes[l - 1] * m
    return flop / 1e9


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 784,256,10, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two widths, each >= 1, got {text!r}")
    return sizes


def _integer_at_least(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive = _integer_at_least(1, "a positive integer")
_seed = _integer_at_least(0, "a non-negative integer")


def _activations(text):
    names = tuple(text.split(","))
    for name in names:
        if name not in ACTIVATIONS:
            raise argparse.ArgumentTypeError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return names


def _parser():
    parser = argparse.ArgumentParser(prog="loopbp", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="time loops against einsum on one network and check they agree"
    )
    compare.add_argument(
        "--sizes",
        type=_sizes,
        default=DEFAULT_SIZES,
        help="layer widths n^0,...,n^L (default: 64,128,128,10)",
    )
    compare.add_argument(
        "--m", type=_positive, default=DEFAULT_M, help=f"number of samples (default: {DEFAULT_M})"
    )
    compare.add_argument(
        "--activations",
        type=_activations,
        default=None,
        help="one name per layer, comma-separated (default: sigmoid hidden layers, identity output)",
    )
    compare.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    compare.add_argument("--repeat", type=_positive, default=20, help="timed calls per backend (default: 20)")
    compare.add_argument("--seed", type=_seed, default=0, help="seeds the network and the data (default: 0)")
    return parser


def _time_backend(net, X, Y, backend, repeat):
    start = time.perf_counter()
    result = net.gradient(X, Y, backend=backend)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        net.gradient(X, Y, backend=backend)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), result


def compare(args):
    """Run ``loopbp compare`` for parsed `args`; return the exit status."""
    L = len(args.sizes) - 1
    activations = args.activations or ("sigmoid",) * (L - 1) + ("identity",)
    if len(activations) != L:
        print(
            f"loopbp compare: error: --activations needs {L} names for --sizes "
            f"{','.join(map(str, args.sizes))}, got {len(activations)}",
            file=sys.stderr,
        )
        return 2
    dtype = np.dtype(args.dtype)
    net = Network(args.sizes, activations, dtype=dtype, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    X = rng.standard_normal((args.sizes[0], args.m)).astype(dtype)
    Y = rng.standard_normal((args.sizes[-1], args.m)).astype(dtype)
    gflop = gradient_gflop(args.sizes, args.m)

    # einsum first: Numba's OpenMP threads keep spinning after a parallel region and
    # would slow the BLAS calls that einsum makes in this process.
    rows = {}
    for backend in ("einsum", "loops"):
        rows[backend] = _time_backend(net, X, Y, backend, args.repeat)
    reference = rows["einsum"][2]

    print(
        f"loopbp compare: sizes {','.join(map(str, args.sizes))}, m = {args.m}, {args.dtype}, "
        f"activations {','.join(activations)}, {gflop:.4g} GFLOP per gradient, median of {args.repeat}",
    )
    print(
        f"{'backend':<8} {'first call':>12} {'median':>12} {'GFLOP/s':>9} {'vs einsum':>10} "
        f"{'max rel diff':>13}",
    )
    for backend, (first, median, result) in rows.items():
        difference = gradient_difference(result, reference)
        print(
            f"{backend:<8} {first * 1e3:>10.3f}ms {median * 1e3:>10.3f}ms {gflop / median:>9.2f} "
            f"{rows['einsum'][1] / median:>9.2f}x {difference:>13.2e}",
        )
    difference = gradient_difference(rows["loops"][2], reference)
    if difference > TOLERANCE[dtype]:
        print(
            f"loopbp compare: FAIL: loops and einsum differ by {difference:.2e}, more than the "
            f"{args.dtype} tolerance {TOLERANCE[dtype]:.0e}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv=None):
    """Entry point of the ``loopbp`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "compare":
        return compare(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
