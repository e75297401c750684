"""Which register tile shape suits this machine: a single-core microbenchmark.

    python benchmarks/tile_shapes.py [float64|float32] [K]

Times C[p, q] = sum_k P[p, k] Q[q, k] (the dot form that ``loopbp.cpu.tiled_kernels`` uses)
on 48 x 48 outputs, for several tile shapes TR x TC, with the data in L1/L2 and one
thread. Each shape's kernel is generated from the same template. This is a tool for
choosing ``TILE_P`` and ``TILE_Q``; asv does not run it (it defines no benchmarks).
"""

import statistics
import sys
import time

import numpy as np
from numba import njit

SHAPES = [(4, 4), (3, 4), (4, 3), (2, 4), (4, 2), (3, 3), (5, 2), (2, 2)]


def tile_kernel(TR, TC):
    """A Numba kernel computing C = P Q^T in TR x TC tiles (ragged edges left out)."""
    acc = [f"a{r}{c}" for r in range(TR) for c in range(TC)]
    lines = [
        "def kernel(P, Q, C):",
        "    M, K = P.shape",
        "    N = Q.shape[0]",
        "    zero = P.dtype.type(0)",
        f"    for p in range(0, M - {TR} + 1, {TR}):",
        f"        for q in range(0, N - {TC} + 1, {TC}):",
    ]
    lines += [f"            x{r}r = P[p + {r}]" for r in range(TR)]
    lines += [f"            y{c}r = Q[q + {c}]" for c in range(TC)]
    lines.append("            " + " = ".join(acc) + " = zero")
    lines.append("            for k in range(K):")
    lines += [f"                x{r} = x{r}r[k]" for r in range(TR)]
    for c in range(TC):
        lines.append(f"                y{c} = y{c}r[k]")
        lines += [f"                a{r}{c} += x{r} * y{c}" for r in range(TR)]
    lines += [f"            C[p + {r}, q + {c}] = a{r}{c}" for r in range(TR) for c in range(TC)]
    namespace = {}
    exec("\n".join(lines), namespace)
    return njit(fastmath={"reassoc", "contract"})(namespace["kernel"])


def main(dtype="float64", K=256):
    rng = np.random.default_rng(0)
    P = rng.standard_normal((48, K)).astype(dtype)
    Q = rng.standard_normal((48, K)).astype(dtype)
    C = np.empty((48, 48), dtype)
    for TR, TC in SHAPES:
        kernel = tile_kernel(TR, TC)
        kernel(P, Q, C)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            for _ in range(20):
                kernel(P, Q, C)
            times.append(time.perf_counter() - start)
        rows, cols = 48 // TR * TR, 48 // TC * TC
        gflops = 2 * rows * cols * K * 20 / statistics.median(times) / 1e9
        error = np.abs(C[:rows, :cols] - (P @ Q.T)[:rows, :cols]).max()
        print(f"{TR}x{TC}: {gflops:5.1f} GFLOP/s on one core ({dtype}, K = {K}), max error {error:.1e}")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["float64"]), *(int(a) for a in sys.argv[2:3]))
