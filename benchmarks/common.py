"""Seeded data and shared helpers for the asv suite.

This module is only ever appended to: a change to an existing case or seed would
silently change what every earlier result in the history measured.

The benchmarks use only loopbp's public API (``Network``, ``gradient``, ``forward``),
so that the same suite runs against every commit in the history.
"""

import functools
import importlib
import time

import numba
import numpy as np

import loopbp

#: The project's reference cases (its performance notes; docs/performance.md):
#: (sizes n^0..n^L, m).
CASES = {
    "toy": ((2, 8, 8, 1), 100),
    "small": ((64, 128, 128, 10), 1_000),
    "mnist": ((784, 256, 128, 10), 10_000),
    "wide": ((1024, 1024, 1024, 1024), 4_096),
}

#: Narrow layers of odd widths, appended after the reference cases.
CASES["narrow"] = ((13, 37, 29, 7), 999)

DTYPES = ["float64", "float32"]

#: loopbp's two backends and NumPy ``@``, the BLAS baseline.
BACKENDS = ["loops", "einsum", "matmul"]

#: Numba threads for the loop backend: one, or all that Numba was started with.
THREADS = ["1", "all"]


def activations(L):
    """Sigmoid hidden layers and an identity output, as in the reference cases."""
    return ("sigmoid",) * (L - 1) + ("identity",)


@functools.cache
def problem(sizes, m, dtype, seed=0):
    """W, b, X, Y and activations for a network, from loopbp's seeded builder.

    Parameters follow the series' 0.2 N(0, 1) initialisation; X and Y are N(0, 1).
    """
    acts = activations(len(sizes) - 1)
    try:
        from loopbp.problems import seeded_problem
    except ImportError:  # a loopbp older than 0.3.0 (asv's history): its public API, as it was
        net = loopbp.Network(sizes, acts, dtype=np.dtype(dtype), seed=seed)
        rng = np.random.default_rng(seed + 1)
        X = rng.standard_normal((sizes[0], m)).astype(dtype)
        Y = rng.standard_normal((sizes[-1], m)).astype(dtype)
    else:
        net, X, Y = seeded_problem(sizes, m, acts, np.dtype(dtype), seed)
    return net.W, net.b, X, Y, net.activations


def gflop(sizes, m):
    """GFLOP in one gradient: 2 n^l n^(l-1) m for each of forward, dW and dA (no dA for l = 1)."""
    return sum((3 if l > 1 else 2) * 2 * sizes[l] * sizes[l - 1] * m for l in range(1, len(sizes))) / 1e9


# --- NumPy @, the BLAS baseline ----------------------------------------------------


def _sigmoid(Z):
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def _check_activations(acts):
    unsupported = set(acts) - {"sigmoid", "identity"}
    if unsupported:
        raise ValueError(f"the @ baseline knows sigmoid and identity only, got {sorted(unsupported)}")


def matmul_forward(W, b, X, acts):
    """A^0..A^L with NumPy ``@``; sigmoid or identity layers only."""
    _check_activations(acts)
    A = [X]
    for W_l, b_l, g in zip(W, b, acts):
        Z = W_l @ A[-1] + b_l[:, None]
        A.append(_sigmoid(Z) if g == "sigmoid" else Z)
    return A


def matmul_gradient(W, b, X, Y, acts):
    """E, dW, db with NumPy ``@``, the matrix form of the series' matrix-style post."""
    A = matmul_forward(W, b, X, acts)
    L, m = len(W), X.shape[1]
    R = A[L] - Y
    E = float(np.sum(R.astype(np.float64) ** 2)) / (2 * m)
    dW, db = [None] * L, [None] * L
    dA = R / m
    for l in range(L, 0, -1):
        dZ = dA * (A[l] * (1 - A[l])) if acts[l - 1] == "sigmoid" else dA
        dW[l - 1] = dZ @ A[l - 1].T
        db[l - 1] = dZ.sum(axis=1)
        if l > 1:
            dA = W[l - 1].T @ dZ
    return E, dW, db


# --- prepared calls ------------------------------------------------------------------


def set_threads(threads):
    """Set Numba's thread count for the loop backend ("1" or "all")."""
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if threads == "all" else int(threads))


@functools.cache
def prepared(kind, sizes, m, dtype, backend, threads="all"):
    """A zero-argument callable that runs one gradient or forward pass.

    It builds the data and makes one warm-up call, so that Numba's compilation (or
    its cache load) and the data's creation happen here, outside any timed call.
    Threads other than "all" exist for the loop backend only; for the others they
    raise NotImplementedError, which asv reports as a skipped combination.
    """
    if backend != "loops" and threads != "all":
        raise NotImplementedError("the thread count is a loop-backend parameter")
    W, b, X, Y, acts = problem(sizes, m, dtype)
    if backend == "loops":
        set_threads(threads)
    if kind == "gradient":
        if backend == "matmul":

            def run():
                return matmul_gradient(W, b, X, Y, acts)
        else:

            def run():
                return loopbp.gradient(W, b, X, Y, acts, backend=backend)
    else:
        if backend == "matmul":

            def run():
                return matmul_forward(W, b, X, acts)[-1]
        else:

            def run():
                return loopbp.forward(W, b, X, acts, backend=backend)

    run()
    return run


# --- the ceiling the contractions are held against ---------------------------------


@functools.cache
def _module(name):
    """The module `name`, or None where this loopbp has none by that name."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def micro_kernel_peak(dtype, threads=None, seconds=1.0):
    """GFLOP/s of loopbp's register micro-kernel on `threads` threads at once, operands in L1.

    Nothing but the MR x NR block's fused multiply-adds and the loads that feed them:
    no packing and no cache misses, so this is the machine's FMA peak as the loops can
    reach it, and the contractions' GFLOP/s are quoted as a share of it. The threads run
    together (default: Numba's current count), because two busy cores of a virtual
    machine need not reach twice one (135, not 2 x 84, GFLOP/s in float64 here).
    Raises NotImplementedError where the loops run the portable kernels (no micro-kernel)
    or in a loopbp that predates it, which asv reports as a skipped benchmark.
    """
    # loopbp.cpu.simd, or loopbp.simd in the flat package of the history's older commits.
    simd = _module("loopbp.cpu.simd") or _module("loopbp.simd")
    if simd is None:
        raise NotImplementedError("this loopbp has no register micro-kernel")
    tile = simd.tile(dtype)
    if tile is None:
        raise NotImplementedError("the portable path has no register micro-kernel")
    threads = numba.get_num_threads() if threads is None else threads
    mr, nr = tile.shape
    kc = _PEAK_KC
    P = np.ones((threads, kc * mr), dtype)
    Q = np.ones((threads, kc * nr), dtype)
    C = np.zeros((threads, mr, nr), dtype)
    calls = 1000
    repeat = _peak_loop(simd, tile)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        repeat(tile, P, Q, C, 1)
        best = 0.0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            repeat(tile, P, Q, C, calls)
            elapsed = time.perf_counter() - start
            best = max(best, threads * 2 * mr * nr * kc * calls / elapsed / 1e9)
    finally:
        numba.set_num_threads(previous)
    return best


#: Steps of k of `micro_kernel_peak`'s blocks: both panels, 64 x (MR + NR) values, fit in any L1.
_PEAK_KC = 64


@functools.cache
def _peak_loop(simd, tile):
    # The compiled loop of `micro_kernel_peak`, once per tile in a process: a smoke run
    # asks for the peak once per case, and each new closure would compile again (a second).
    mr, nr = tile.shape
    kc = _PEAK_KC

    @numba.njit(parallel=True)
    def repeat(tile, P, Q, C, calls):
        for thread in numba.prange(P.shape[0]):
            for _ in range(calls):
                simd.register_block(tile, kc, P[thread], 0, Q[thread], 0, C[thread], 0, 0, mr, nr, True)

    return repeat


# --- the sweep: shapes people train, beside the reference cases ------------------

#: A grid of networks of the kinds people train, for ``benchmarks/peers.py --sweep``:
#: (sizes n^0..n^L, m). Widths 8 to 1024, m 16 to 10,000, depths 1 to 8. Every kind
#: has several points, so that a change tuned for one point shows on its neighbours.
GRID = {
    # Mini-batches: one step of stochastic gradient descent.
    "mb-784-128-10": ((784, 128, 10), 32),
    "mb-784-256-10": ((784, 256, 10), 64),
    "mb-64-64-10": ((64, 64, 10), 16),
    "mb-100-200-200-10": ((100, 200, 200, 10), 128),
    "mb-300-100-10": ((300, 100, 10), 256),
    "mb-32-300-300-1": ((32, 300, 300, 1), 64),
    # Mid widths, full batch.
    "digits-64-30-10": ((64, 30, 10), 1_400),
    "reg-32-64-64-1": ((32, 64, 64, 1), 5_000),
    "clf-784-30-10": ((784, 30, 10), 2_000),
    "mid-20-150-150-3": ((20, 150, 150, 3), 1_000),
    # Bottlenecks.
    "bneck-512-16-512": ((512, 16, 512), 1_000),
    "bneck-256-64-8-64-256": ((256, 64, 8, 64, 256), 500),
    "bneck-1024-32-1024": ((1024, 32, 1024), 256),
    # Deep stacks of equal width.
    "deep-16x8": ((16,) * 9, 5_000),
    "deep-50x8": ((50,) * 9, 1_000),
    "deep-100x6": ((100,) * 7, 256),
    "deep-200x4": ((200,) * 5, 2_000),
    # Narrow outputs, one layer, extremes of width and m.
    "out-128-256-1": ((128, 256, 1), 4_000),
    "out-200-100-2": ((200, 100, 2), 10_000),
    "out-8-8-1": ((8, 8, 1), 10_000),
    "out-16-1024-1": ((16, 1024, 1), 1_000),
    "one-100-10": ((100, 10), 10_000),
    "one-1024-1024": ((1024, 1024), 256),
    "wide-1024-512-10": ((1024, 512, 10), 512),
}


def sweep_cases():
    """The sweep's points: `GRID`, then the reference cases of `CASES`, by name."""
    return {**GRID, **CASES}


# --- the smoke run: every benchmark once, on tiny sizes ------------------------------

#: The stand-in (sizes n^0..n^L, m) for every network of the suite in a smoke run: small
#: enough that a gradient takes microseconds, with hidden layers like the cases'.
SMOKE_CASE = ((3, 5, 4, 2), 7)


def smoke():
    """Whether ``LOOPBP_BENCH_SMOKE`` asks for a smoke run (set, and not "0").

    In a smoke run every benchmark keeps its name and parameters, but its network is
    `SMOKE_CASE` (`case`, `run_sizes`), the micro-kernel's peak is measured for a moment
    and the first call never compiles into an empty cache (bench_gradient, bench_compile),
    so that the whole suite runs in a minute or two (``tests/test_benchmarks.py`` dry-runs
    it so): it shows that each benchmark runs, and its numbers mean nothing. Unset, or
    "0", nothing changes.
    """
    import os  # here rather than with the imports above: this module is only appended to

    return os.environ.get("LOOPBP_BENCH_SMOKE", "") not in ("", "0")


def run_sizes(sizes, m):
    """The (sizes, m) a benchmark runs: these, or `SMOKE_CASE` in a smoke run."""
    return SMOKE_CASE if smoke() else (sizes, m)


def case(name):
    """The (sizes, m) that a benchmark of case `name` runs: ``CASES[name]``, through `run_sizes`.

    The name is looked up in a smoke run too, so that an unknown one fails there as well.
    """
    return run_sizes(*CASES[name])


# Every benchmark times the fast kernels: the first call compiles them in the benchmark's
# process (or loads them), never the serial loops that run while a background process
# compiles them (``loopbp.cpu.warming``). Set at import, before any call.
import os  # noqa: E402  (here, not with the imports above: this module is only appended to)

os.environ["LOOPBP_COMPILE"] = "foreground"
