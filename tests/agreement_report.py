"""Print the worst loops-vs-einsum difference over the test table, per dtype, and the worst
finite-difference check: the numbers the tests hold to their tolerances. With --random N,
also the worst over N networks drawn from the property tests' ranges (L 1-6, widths 1-64,
m 1-300, any activations), per dtype, on both scales of ``agreement.gradient_difference``.

    python tests/agreement_report.py [--random 2000]
"""

import argparse

import numpy as np
from problems import CPU_BACKENDS, DTYPES, PATTERNS, SHAPES, activations_for, make_problem
from test_finite_differences import FD_SHAPES

import loopbp
from loopbp.agreement import TOLERANCE, gradient_difference


def random_networks(count, seed=0):
    rng = np.random.default_rng(seed)
    for dtype in DTYPES:
        worst_array = worst_whole = 0.0
        for _ in range(count):
            L = int(rng.integers(1, 7))
            sizes = [int(n) for n in rng.integers(1, 65, L + 1)]
            m = int(rng.integers(1, 301))
            acts = [str(a) for a in rng.choice(loopbp.ACTIVATIONS, L)]
            net = loopbp.Network(sizes, acts, dtype=dtype, seed=int(rng.integers(2**31)))
            X = rng.standard_normal((sizes[0], m)).astype(dtype)
            Y = rng.standard_normal((sizes[-1], m)).astype(dtype)
            loops, einsum = net.gradient(X, Y), net.gradient(X, Y, backend="einsum")
            worst_array = max(worst_array, gradient_difference(loops, einsum))
            worst_whole = max(worst_whole, gradient_difference(loops, einsum, per_array=False))
        print(
            f"{np.dtype(dtype).name}: worst loops-vs-einsum over {count} random networks: "
            f"{worst_array:.1e} per array, {worst_whole:.1e} on the whole gradient's scale "
            f"(tolerance {TOLERANCE[np.dtype(dtype)]:.0e})"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=0, help="also draw this many random networks")
    args = parser.parse_args()
    for dtype in DTYPES:
        worst = 0.0
        for _, sizes, m in SHAPES:
            for pattern in PATTERNS:
                W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), dtype)
                loops = loopbp.gradient(W, b, X, Y, acts)
                einsum = loopbp.gradient(W, b, X, Y, acts, backend="einsum")
                worst = max(worst, gradient_difference(loops, einsum))
        print(
            f"{np.dtype(dtype).name}: worst loops-vs-einsum relative difference over "
            f"{len(SHAPES) * len(PATTERNS)} cases: {worst:.1e} (tolerance {TOLERANCE[np.dtype(dtype)]:.0e})"
        )
    worst = 0.0
    for sizes, m in FD_SHAPES:
        for pattern in PATTERNS:
            W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), seed=3)
            for backend in CPU_BACKENDS:
                worst = max(worst, loopbp.check_gradient(W, b, X, Y, acts, backend=backend))
    print(
        f"float64: worst check_gradient over both backends and "
        f"{len(FD_SHAPES) * len(PATTERNS)} cases: {worst:.1e}"
    )
    if args.random:
        random_networks(args.random)


if __name__ == "__main__":
    main()
