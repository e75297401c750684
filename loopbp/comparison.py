"""What ``loopbp compare`` measured and what follows from it, in one `Comparison` object.

``loopbp.compare`` times one backend in a process of its own. This module runs every
backend over the points of a comparison (one network, a sweep of m or of the hidden
width, or a map over both) and holds the measurements together with what the command
reports from them: GFLOP/s, the speed-up against einsum, the loops' speed-up against the
fastest other backend, where the two cross, and whether the loops agree with einsum
within the dtype's tolerance (``loopbp.agreement``). The command line (``loopbp.cli``)
only prints, plots or dumps a `Comparison`; `Comparison.to_dict` is the JSON of
``loopbp compare --json``.

The arithmetic needs no process: a `Comparison` built from hand-made measurements gives
the same speed-ups, crossovers and agreement as one returned by `Comparison.run`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import __version__, compare
from .agreement import TOLERANCE
from .cpu import layer_loop
from .problems import default_activations
from .validation import (
    check_activations,
    check_callback,
    check_choice,
    check_dtype,
    check_positive,
    check_seed,
    check_sizes,
)

#: The sweep that maps the hidden width against m: one point for each (width, m) pair.
MAP = "width,m"

#: What `sweep_points` can vary: the number of samples, the width of every hidden layer, or both.
SWEEPS = ("m", "width", MAP)

#: The backend every speed-up and difference is measured against.
REFERENCE = "einsum"


def gradient_gflop(sizes: Sequence[int], m: int) -> float:
    """GFLOP in one gradient: 2 n^l n^(l-1) m for each of forward, dW and dA (no dA for l = 1).

    The sum over the contractions of ``layer_loop.gradient_steps``, the steps the driver runs.
    """
    return sum(gflop(m) for _, gflop in layer_loop.gradient_steps(tuple(sizes)) if gflop is not None)


class Point(NamedTuple):
    """One network a comparison times.

    `label` is the swept value: m, the hidden width, or (width, m) for a `MAP`.
    """

    label: int | tuple[int, int]
    sizes: tuple[int, ...]
    m: int

    @property
    def gflop(self) -> float:
        """`gradient_gflop` of this point."""
        return gradient_gflop(self.sizes, self.m)


def _values(values: Sequence[int] | None, name: str) -> list[int] | None:
    # The points are a set: sorted, so that crossovers interpolate between neighbours.
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    for v in values:
        check_positive(v, name, integer=True)
    return sorted({int(v) for v in values})


def sweep_points(
    sizes: Sequence[int],
    m: int,
    sweep: str | None,
    *,
    widths: Sequence[int] | None = None,
    ms: Sequence[int] | None = None,
) -> list[Point]:
    """The points a comparison times, smallest first.

    Parameters
    ----------
    sizes : sequence of int
        n^0, ..., n^L of the network; a width sweep keeps n^0 and n^L.
    m : int
        The number of samples; an m sweep ends there.
    sweep : {None, "m", "width", "width,m"}
        None: the one point (sizes, m), labelled m. ``"m"``: m = 10, 32, 100, 316, ...
        (half decades) below `m`, then `m`. ``"width"``: every hidden layer 4, 8, 16, ...
        wide below the widest hidden layer of `sizes`, then that width, all at `m`.
        ``"width,m"`` (`MAP`): every pair of those widths and those m, width by width,
        each labelled (width, m).
    widths : sequence of int or None
        The hidden widths of a width sweep or a map instead of 4, 8, 16, ...
    ms : sequence of int or None
        The m of an m sweep or a map instead of 10, 32, 100, ...

    Raises
    ------
    ValueError
        For a width sweep or a map of a network with no hidden layer, for `widths` or `ms`
        that are not positive integers, and for `widths` (`ms`) with a sweep that keeps
        the width (m).
    """
    sizes = tuple(sizes)
    widths, ms = _values(widths, "widths"), _values(ms, "ms")
    if sweep is None and (widths is not None or ms is not None):
        raise ValueError("widths and ms set the points of a sweep; sweep is None")
    if sweep is None:
        return [Point(m, sizes, m)]
    check_choice(sweep, "sweep", SWEEPS)
    if widths is not None and sweep == "m":
        raise ValueError("widths sets the points of a width sweep or a map; sweep is 'm'")
    if ms is not None and sweep == "width":
        raise ValueError("ms sets the points of an m sweep or a map; sweep is 'width'")
    if ms is None:
        ms = [int(round(v)) for v in (10 * 10 ** (k / 2) for k in range(20)) if round(v) < m] + [m]
    if sweep == "m":
        return [Point(v, sizes, v) for v in ms]
    if len(sizes) < 3:
        raise ValueError(f"a {sweep} sweep varies the hidden layers; sizes {sizes} has none")
    if widths is None:
        widest = max(sizes[1:-1])
        widths = [w for w in (2**k for k in range(2, 20)) if w < widest] + [widest]

    def widened(w: int) -> tuple[int, ...]:
        return (sizes[0],) + (w,) * (len(sizes) - 2) + (sizes[-1],)

    if sweep == "width":
        return [Point(w, widened(w), m) for w in widths]
    return [Point((w, v), widened(w), v) for w in widths for v in ms]


def crossovers(labels: Sequence[float], loops: Sequence[float], other: Sequence[float]) -> list[float]:
    """Where two timings cross, interpolated on log axes.

    Parameters
    ----------
    labels : sequence of float
        The swept values, increasing.
    loops, other : sequences of float
        Two backends' times at each label.

    Returns
    -------
    list of float
        The labels, between neighbouring points, where log(loops / other) passes through
        zero (linear in log label); a point where the two are equal counts as a crossing.
    """
    found = []
    for k in range(len(labels) - 1):
        d0 = math.log(loops[k] / other[k])
        d1 = math.log(loops[k + 1] / other[k + 1])
        if d0 == 0:
            found.append(labels[k])
        elif d0 * d1 < 0:
            t = d0 / (d0 - d1)
            found.append(math.exp(math.log(labels[k]) + t * (math.log(labels[k + 1]) - math.log(labels[k]))))
    return found


def run_order(backends: Sequence[str]) -> tuple[str, ...]:
    """`backends` in the order they run: einsum first, the others as given.

    einsum is the reference of every speed-up, so each other backend's results are
    complete (and its table row printable) as soon as its own process is done.
    """
    return (REFERENCE,) + tuple(b for b in backends if b != REFERENCE)


@dataclass(frozen=True)
class Comparison:
    """The measurements of one ``loopbp compare`` run, and what follows from them.

    Parameters
    ----------
    sizes : tuple of int
        The network's n^0, ..., n^L as given (a width sweep varies its hidden layers).
    m : int
        The number of samples as given (an m sweep ends there).
    activations : tuple of str
        One name per layer.
    dtype : {"float64", "float32"}
    threads : int or None
        Threads in each backend's process; None for the libraries' own.
    repeat : int
        Timed samples per backend and point.
    sweep : {None, "m", "width", "width,m"}
    backends : tuple of str
        In table order; einsum must be one of them.
    points : tuple of Point
    measured : tuple of dict
        One per point: for each backend, what ``loopbp.compare.measure`` returned
        (``first_s``, ``median_s``, ``number``, ``difference``).

    Raises
    ------
    ValueError
        If `backends` lacks einsum, a point lacks the measurement of one of them, or a
        map lacks one of its (width, m) pairs.
    """

    sizes: tuple[int, ...]
    m: int
    activations: tuple[str, ...]
    dtype: str
    threads: int | None
    repeat: int
    sweep: str | None
    backends: tuple[str, ...]
    points: tuple[Point, ...]
    measured: tuple[Mapping[str, compare.Measurement], ...]

    def __post_init__(self):
        if REFERENCE not in self.backends:
            raise ValueError(f"backends must include {REFERENCE}, the reference, got {self.backends}")
        if len(self.measured) != len(self.points):
            raise ValueError(
                f"measured must hold one dict per point ({len(self.points)}), got {len(self.measured)}"
            )
        if self.sweep == MAP:
            labels = [p.label for p in self.points]
            widths, ms = sorted({w for w, _ in labels}), sorted({m for _, m in labels})
            if sorted(labels) != [(w, m) for w in widths for m in ms]:
                raise ValueError(
                    f"a {MAP} map needs one point for each pair of its widths {widths} and ms {ms}, "
                    f"got {labels}"
                )
        for point, row in zip(self.points, self.measured):
            missing = [b for b in self.backends if b not in row]
            if missing:
                raise ValueError(f"point {point.label} has no measurement for {', '.join(missing)}")

    @classmethod
    def run(
        cls,
        sizes: Sequence[int],
        m: int,
        activations: Sequence[str] | None = None,
        dtype: str = "float64",
        *,
        backends: Sequence[str] | None = None,
        sweep: str | None = None,
        widths: Sequence[int] | None = None,
        ms: Sequence[int] | None = None,
        seed: int = 0,
        repeat: int = 20,
        threads: int | None = None,
        callback: Callable[[str, Comparison, float], None] | None = None,
    ) -> Comparison:
        """Time every backend on every point, each backend in a process of its own.

        Parameters
        ----------
        sizes, m, sweep, widths, ms
            The points: see `sweep_points`.
        activations : sequence of str or None
            One name per layer; None for sigmoid hidden layers and an identity output.
        dtype : {"float64", "float32"}
        backends : sequence of str or None
            In table order, from ``loopbp.compare.COMPARED_BACKENDS``, einsum among them; None for
            ``loopbp.compare.default_backends()``. A map needs the loops among them.
        seed : int
            Seeds every point's network and data (``loopbp.problems.seeded_problem``).
        repeat : int
            Timed samples per backend and point.
        threads : int or None
            Threads for Numba, BLAS and PyTorch in each backend's process.
        callback : callable or None
            Called as ``callback(backend, done, seconds)`` after each backend's process,
            in `run_order`: `done` is the `Comparison` of the backends run so far and
            `seconds` that backend's wall time. The command line prints from it.

        Returns
        -------
        Comparison

        Raises
        ------
        RuntimeError
            If a backend's process fails (``loopbp.compare.run``).
        ValueError
            For an argument out of its range, before any process starts.
        """
        sizes = check_sizes(sizes)
        L = len(sizes) - 1
        check_positive(m, "m", integer=True)
        if activations is None:
            activations = default_activations(L)
        activations = check_activations(activations, L, f"for sizes {sizes}")
        dtype = check_dtype(dtype).name
        backends = compare.default_backends() if backends is None else tuple(backends)
        for backend in backends:
            check_choice(backend, "backend", compare.COMPARED_BACKENDS)
        if REFERENCE not in backends:
            raise ValueError(f"backends must include {REFERENCE}, the reference, got {backends}")
        if sweep == MAP and "loops" not in backends:
            raise ValueError(f"a {MAP} map needs loops among the backends, got {backends}")
        # Each backend's process rebuilds the problem from the seed, so it must be a number.
        check_seed(seed, number_only=True)
        check_positive(repeat, "repeat", integer=True)
        if threads is not None:
            check_positive(threads, "threads", integer=True)
        check_callback(callback)
        points = tuple(sweep_points(sizes, m, sweep, widths=widths, ms=ms))

        settings = dict(sizes=sizes, m=m, activations=activations, dtype=dtype, threads=threads)
        settings.update(repeat=repeat, sweep=sweep, points=points)
        measured = [{} for _ in points]
        for backend in run_order(backends):
            start = time.perf_counter()
            # Looked up on the module at each call, so that tests can stand in for it.
            timed = compare.run(
                backend,
                [(p.sizes, p.m) for p in points],
                activations,
                dtype,
                seed=seed,
                repeat=repeat,
                threads=threads,
                device=compare.device_of(backends),
            )
            seconds = time.perf_counter() - start
            for row, result in zip(measured, timed):
                row[backend] = result
            if callback is not None:
                # A copy: later backends must not change what the callback was given.
                done = tuple(b for b in backends if b in measured[0])
                partial = tuple(dict(row) for row in measured)
                callback(backend, cls(**settings, backends=done, measured=partial), seconds)
        return cls(**settings, backends=backends, measured=tuple(measured))

    @property
    def labels(self) -> list[int] | list[tuple[int, int]]:
        """The swept value of each point (m for a single run, (width, m) for a map)."""
        return [p.label for p in self.points]

    @property
    def widths(self) -> list[int]:
        """A map's hidden widths, its rows, smallest first."""
        self._need_map("widths")
        return sorted({w for w, _ in self.labels})

    @property
    def ms(self) -> list[int]:
        """A map's m, its columns, smallest first."""
        self._need_map("ms")
        return sorted({m for _, m in self.labels})

    def _need_map(self, what: str) -> None:
        if self.sweep != MAP:
            raise ValueError(f"{what} belong to a {MAP} map; this comparison's sweep is {self.sweep!r}")

    def _map_index(self, row: int, column: int) -> int:
        # By label, not by position: a hand-made map may list its points in any order.
        return self.labels.index((self.widths[row], self.ms[column]))

    def median(self, backend: str, point: int = 0) -> float:
        """Seconds per gradient of `backend` at `points[point]`."""
        return self.measured[point][backend]["median_s"]

    def gflop_per_s(self, backend: str, point: int = 0) -> float:
        """GFLOP/s of `backend` at `points[point]`."""
        return self.points[point].gflop / self.median(backend, point)

    def speedup(self, backend: str, point: int = 0) -> float:
        """How many times faster than einsum `backend` is at `points[point]`."""
        return self.median(REFERENCE, point) / self.median(backend, point)

    def fastest_other(self, point: int = 0) -> str:
        """The backend other than the loops with the least time at `points[point]`.

        Every backend that ran counts, einsum included: the loops' real competitor is
        whichever is fastest, and einsum is also a backend users can call.
        """
        others = [b for b in self.backends if b != "loops"]
        return min(others, key=lambda b: self.median(b, point))

    def ratio(self, point: int = 0) -> float:
        """The loops' speed-up against `fastest_other` at `points[point]`: its time over the loops'.

        Above 1 the loops are the fastest backend there; below 1 another one is.

        Raises
        ------
        ValueError
            If the loops did not run.
        """
        if "loops" not in self.backends:
            raise ValueError(f"the ratio is against the loops, which are not among {self.backends}")
        return self.median(self.fastest_other(point), point) / self.median("loops", point)

    def ratio_map(self) -> list[list[float]]:
        """A map's `ratio` as rows of `widths` by columns of `ms`."""
        return [
            [self.ratio(self._map_index(i, j)) for j in range(len(self.ms))] for i in range(len(self.widths))
        ]

    def fastest_map(self) -> list[list[str]]:
        """A map's `fastest_other` as rows of `widths` by columns of `ms`."""
        return [
            [self.fastest_other(self._map_index(i, j)) for j in range(len(self.ms))]
            for i in range(len(self.widths))
        ]

    def results(self, point: int = 0) -> dict[str, dict[str, Any]]:
        """Each backend's measurement at `points[point]` with ``gflop_per_s`` and ``speedup_vs_einsum``.

        In `run_order`, as ``--json`` has always listed them.
        """
        return {
            b: {
                **self.measured[point][b],
                "gflop_per_s": self.gflop_per_s(b, point),
                "speedup_vs_einsum": self.speedup(b, point),
            }
            for b in run_order(self.backends)
        }

    @property
    def crossovers(self) -> list[float] | list[tuple[float, float]]:
        """Where the loops and the fastest other backend swap places.

        Against the fastest of the others at each point (`fastest_other`), so that this is
        where the loops stop (or start) being the fastest. Empty without a sweep or
        without the loops.

        Returns
        -------
        list of float, or list of (width, m)
            A sweep's swept values (`crossovers`, the function). A map's (width, m) pairs
            where its `ratio` passes 1 along a row (m interpolated at that width) or a
            column (the width interpolated at that m), sorted: the places where the
            line between the two sides of the map cuts the grid.
        """
        others = [b for b in self.backends if b != "loops"]
        if self.sweep is None or "loops" not in self.backends or not others:
            return []
        n = len(self.points)
        loops = [self.median("loops", k) for k in range(n)]
        fastest = [self.median(self.fastest_other(k), k) for k in range(n)]
        if self.sweep != MAP:
            return crossovers(self.labels, loops, fastest)
        found = []
        widths, ms = self.widths, self.ms
        for i, w in enumerate(widths):
            row = [self._map_index(i, j) for j in range(len(ms))]
            found += [(w, x) for x in crossovers(ms, [loops[k] for k in row], [fastest[k] for k in row])]
        for j, v in enumerate(ms):
            column = [self._map_index(i, j) for i in range(len(widths))]
            found += [
                (x, v) for x in crossovers(widths, [loops[k] for k in column], [fastest[k] for k in column])
            ]
        # A point where the two are equal is found along its row and its column: once here.
        return sorted(set(found))

    @property
    def worst_difference(self) -> float:
        """The largest relative difference of loopbp's kernels' gradients (loops, cuda) from einsum's.

        Over the points and those of the two that ran; 0.0 when neither did.
        """
        judged = [b for b in ("loops", "cuda") if b in self.backends]
        return max((row[b]["difference"] for row in self.measured for b in judged), default=0.0)

    @property
    def tolerance(self) -> float:
        """The largest difference that counts as agreement in `dtype` (``loopbp.agreement``)."""
        return TOLERANCE[np.dtype(self.dtype)]

    @property
    def agree(self) -> bool:
        """Whether loopbp's kernels (loops, cuda) and einsum agree within `tolerance` at every point."""
        return self.worst_difference <= self.tolerance

    def to_dict(self, plot: str | None = None) -> dict[str, Any]:
        """The JSON of ``loopbp compare --json``; `plot` is the path of the plot drawn, if any.

        A map adds ``map``: its ``widths`` (rows), ``ms`` (columns), and the `ratio` and
        `fastest_other` of each cell as rows of columns; None for the other comparisons
        (and for a map without the loops).
        """
        return {
            "loopbp_version": __version__,
            "sizes": list(self.sizes),
            "m": self.m,
            "activations": list(self.activations),
            "dtype": self.dtype,
            "threads": self.threads,
            "repeat": self.repeat,
            "sweep": self.sweep,
            "points": [
                {"sizes": list(p.sizes), "m": p.m, "gflop": p.gflop, "results": self.results(k)}
                for k, p in enumerate(self.points)
            ],
            "crossovers": self.crossovers,
            "map": None
            if self.sweep != MAP or "loops" not in self.backends
            else {
                "widths": self.widths,
                "ms": self.ms,
                "ratio": self.ratio_map(),
                "fastest_other": self.fastest_map(),
            },
            "tolerance": self.tolerance,
            "agree": self.agree,
            "plot": plot,
        }
