"""Print the worst loops-vs-einsum difference over the test table, per dtype, and the worst
finite-difference check: the numbers the tests hold to their tolerances.

    python tests/agreement_report.py
"""

import numpy as np
from problems import DTYPES, PATTERNS, SHAPES, activations_for, make_problem
from test_finite_differences import FD_SHAPES

import loopbp
from loopbp.agreement import TOLERANCE, gradient_difference


def main():
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
            for backend in loopbp.BACKENDS:
                worst = max(worst, loopbp.check_gradient(W, b, X, Y, acts, backend=backend))
    print(
        f"float64: worst check_gradient over both backends and "
        f"{len(FD_SHAPES) * len(PATTERNS)} cases: {worst:.1e}"
    )


if __name__ == "__main__":
    main()
