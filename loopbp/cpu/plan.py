"""The plan of a gradient: which kernel and how many threads each contraction of each layer uses.

Each layer l has three contractions, each a sum C[p, q] = sum_k P[p, k] Q[k, q] with the
rows p, the summed index k and the columns q below (n^l is the width of layer l, m the
number of samples):

==============  ==========  ==============  ==========
contraction     rows p      summed k        columns q
==============  ==========  ==============  ==========
Z^l (forward)   n^l         n^(l-1)         m
dE/dW^l         n^l         m               n^(l-1)
dE/dA^(l-1)     n^(l-1)     n^l             m
==============  ==========  ==============  ==========

and for each the plan picks one of two kernels:

- ``packed``: ``loopbp.cpu.packed_kernels``, panels of P and Q and the host's register tile
  of MR x NR (``loopbp.cpu.simd``). Its time is the tile's: a layer of 1 unit fills 1 row of
  the MR, a sum over 2 terms pays a whole write-back of the tile for 2 steps of k;
- ``stream``: ``loopbp.cpu.narrow_kernels``' loops, the samples innermost and contiguous,
  four rows of the summed index at a time; no padding, no packing, but about half the
  multiply-adds per load of the packed tile.

The choice is a cost model, not a measurement, so that building a network stays
instant: the share of the packed tile's multiply-adds that do useful work (`packed_share`:
the rows and columns that fill MR and NR, and k against the write-back) is set against the
streaming loops' share (`stream_share`), and the larger wins. Both depend on the shapes,
the dtype and the host's tile alone, never on the thread count: a plan gives bitwise the
same result for every thread count and every run. Changing the kernel of a contraction
changes the order of its sums, and so the last bits of the result: a network whose plan
differs (another host's tile, another m that tips a choice) can differ in the last bits,
as the agreement tests allow (``loopbp.agreement.TOLERANCE``).

Threads: a contraction runs on every thread when it has at least `PARALLEL_FLOP`
multiply-adds and work for more than one thread, else in the calling thread: starting a
parallel region costs a few microseconds, which a small contraction does not repay.

Networks whose layers are all at most ``narrow_kernels.WIDTH`` wide run the narrow kernels
instead, the whole network one block of samples at a time (`describe` says so).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import narrow_kernels, packed_kernels, simd
from .threads import SERIAL_BELOW, worth_threads

#: Columns of a plan array: the contraction's kernel and whether it runs on every thread.
FORWARD, WEIGHTS, DELTA = 0, 1, 2
#: The kernels.
PACKED, STREAM = 0, 1
KERNELS = ("packed", "stream")
CONTRACTIONS = ("Z^l", "dE/dW^l", "dE/dA^(l-1)")

#: Steps of k that one write-back of the packed tile costs: 2 MR x VECTORS loads and
#: stores against MR x VECTORS fused multiply-adds per step, at two of each per cycle.
WRITE_BACK_STEPS = 4
#: The streaming loops' share of the multiply-add peak: four rows of the summed index per
#: pass over the output row, so four fused multiply-adds for five loads and a store.
STREAM_SHARE = 0.45
#: Fewest multiply-adds worth a parallel region: a region costs about 5 us to start and
#: to join, 100,000 multiply-adds on one core of the 2-core development machines (2026), so a contraction
#: this size gains at most a few tens of per cent from a second thread.
PARALLEL_FLOP = 400_000


def _filled(n, block):
    # The share of whole blocks of `block` that n fills.
    return n / (-(-n // block) * block)


def packed_share(tile: simd.Tile, rows: int, depth: int, columns: int) -> float:
    """The share of the packed kernel's multiply-adds that are useful for this contraction."""
    mr, nr = tile.shape
    return _filled(rows, mr) * _filled(columns, nr) * depth / (depth + WRITE_BACK_STEPS)


def stream_share(rows: int, depth: int, columns: int) -> float:
    """The streaming loops' share of the peak: lower when k has fewer than four terms."""
    return STREAM_SHARE * min(depth, 4) / 4


def contractions(sizes, m):
    """(layer l, contraction, rows, summed, columns) for every contraction of one gradient."""
    L = len(sizes) - 1
    for l in range(1, L + 1):
        yield l, FORWARD, sizes[l], sizes[l - 1], m
        yield l, WEIGHTS, sizes[l], m, sizes[l - 1]
        if l > 1:
            yield l, DELTA, sizes[l - 1], sizes[l], m


#: The default of `tile`: the host's tile for the dtype (None is the portable path's).
HOST = object()


@dataclasses.dataclass(frozen=True)
class Step:
    """One contraction of the plan, as `describe` shows it."""

    layer: int
    contraction: str
    shape: tuple[int, int, int]
    kernel: str
    parallel: bool
    why: str


def make(sizes, m: int, dtype, tile=HOST, threads: int | None = None) -> np.ndarray:
    """The plan array for `sizes` and `m`: (L, 3, 2) int64, [l - 1, contraction] = (kernel, parallel).

    Parameters
    ----------
    sizes : sequence of int
    m : int
    dtype : numpy dtype
    tile : simd.Tile or None, optional
        The host's (``simd.tile(dtype)``) by default; None is the portable path, whose
        kernels the plan does not choose.
    threads : int, optional
        The threads that a parallel contraction would get (Numba's count by default); with
        1, no contraction is marked parallel.
    """
    L = len(sizes) - 1
    # Layer 1 has no dE/dA^0: its entry stays (packed, 1 thread) and is never read.
    plan = np.zeros((L, 3, 2), np.int64)
    for s in steps_of(sizes, m, dtype, tile, threads):
        plan[s.layer - 1, CONTRACTIONS.index(s.contraction)] = KERNELS.index(s.kernel), s.parallel
    return plan


def steps_of(sizes, m: int, dtype, tile=HOST, threads: int | None = None) -> list[Step]:
    """Every contraction's `Step`: its kernel, whether it runs on every thread, and why."""
    import numba

    dtype = np.dtype(dtype)
    tile = simd.tile(dtype) if tile is HOST else tile
    threads = numba.get_num_threads() if threads is None else int(threads)
    out = []
    for l, c, rows, depth, columns in contractions([int(n) for n in sizes], int(m)):
        if tile is None:
            kernel, why = "packed", "portable path: the dot-product tiles of loopbp.cpu.tiled_kernels"
        else:
            packed, stream = packed_share(tile, rows, depth, columns), stream_share(rows, depth, columns)
            kernel = "stream" if stream > packed else "packed"
            mr, nr = tile.shape
            why = f"{mr}x{nr} tile {packed:.0%} useful, streaming {stream:.0%}"
            if kernel == "packed" and c != WEIGHTS and -(-columns // nr) <= packed_kernels.IN_PLACE_PANELS:
                why += ", W read in place"
            if kernel == "packed" and c != WEIGHTS and -(-rows // mr) <= packed_kernels.Q_IN_PLACE_PANELS:
                why += ", " + ("A^(l-1)" if c == FORWARD else "dE/dZ^(l+1)") + " read in place"
        work = rows * depth * columns
        # The packed kernels share out panels of columns and of rows, the streaming ones
        # blocks of samples (forward, dE/dA) or of rows (dE/dW).
        if kernel == "packed" and tile is not None:
            pieces = -(-columns // tile.shape[1]) * -(-rows // tile.shape[0])
        elif c == WEIGHTS:
            pieces = -(-rows // narrow_kernels.ROWS)
        else:
            pieces = -(-columns // narrow_kernels.BLOCK)
        parallel = threads > 1 and work >= PARALLEL_FLOP and pieces > 1
        if threads > 1:
            why += "; " + (
                f"{threads} threads"
                if parallel
                else "1 thread: " + ("too little work" if work < PARALLEL_FLOP else "one piece of work")
            )
        out.append(Step(l, CONTRACTIONS[c], (rows, depth, columns), kernel, parallel, why))
    return out


def describe(sizes, m: int, dtype, tile=HOST, threads: int | None = None) -> str:
    """The plan as text: one line per contraction, with its kernel, threads and why."""
    import numba

    dtype = np.dtype(dtype)
    threads = numba.get_num_threads() if threads is None else int(threads)
    sizes = [int(n) for n in sizes]
    head = f"plan for {'-'.join(map(str, sizes))}, m = {m}, {dtype.name}, path {simd.PATH}, {threads} threads"
    if narrow_kernels.is_narrow(sizes):
        return (
            f"{head}\nevery layer at most {narrow_kernels.WIDTH} wide: the narrow kernels, the whole "
            f"network one block of {narrow_kernels.BLOCK} samples at a time, chunks of "
            f"{narrow_kernels.CHUNK} samples per thread"
        )
    if threads > 1 and not worth_threads(sizes, m):
        # The engine's gate above the plan: a small gradient never starts a parallel region.
        head += f" (under {SERIAL_BELOW:,} forward multiply-adds: every step in the calling thread)"
        threads = 1
    lines = [
        head,
        f"{'layer':>5}  {'contraction':<12} {'rows x sum x cols':>18}  {'kernel':<7} {'threads':>7}  why",
    ]
    for s in steps_of(sizes, m, dtype, tile, threads):
        shape = " x ".join(map(str, s.shape))
        used = threads if s.parallel else 1
        lines.append(f"{s.layer:>5}  {s.contraction:<12} {shape:>18}  {s.kernel:<7} {used:>7}  {s.why}")
    return "\n".join(lines)
