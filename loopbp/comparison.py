"""What ``loopbp compare`` measured and what follows from it, in one `Comparison` object.

``loopbp.compare`` times one backend in a process of its own. This module runs every
backend over the points of a comparison (one network, or a sweep of m or of the hidden
width) and holds the measurements together with what the command reports from them:
GFLOP/s, the speed-up against einsum, where the loops cross the fastest other backend,
and whether the loops agree with einsum within the dtype's tolerance
(``loopbp.agreement``). The command line (``loopbp.cli``) only prints, plots or dumps a
`Comparison`; `Comparison.to_dict` is the JSON of ``loopbp compare --json``.

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

from . import __version__, compare, passes
from .agreement import TOLERANCE
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

#: What `sweep_points` can vary: the number of samples or the width of every hidden layer.
SWEEPS = ("m", "width")

#: The backend every speed-up and difference is measured against.
REFERENCE = "einsum"


def gradient_gflop(sizes: Sequence[int], m: int) -> float:
    """GFLOP in one gradient: 2 n^l n^(l-1) m for each of forward, dW and dA (no dA for l = 1).

    The sum over the contractions of ``passes.gradient_steps``, the steps the driver runs.
    """
    return sum(gflop(m) for _, gflop in passes.gradient_steps(tuple(sizes)) if gflop is not None)


class Point(NamedTuple):
    """One network a comparison times: `label` is the swept value (m, or the hidden width)."""

    label: int
    sizes: tuple[int, ...]
    m: int

    @property
    def gflop(self) -> float:
        """`gradient_gflop` of this point."""
        return gradient_gflop(self.sizes, self.m)


def sweep_points(sizes: Sequence[int], m: int, sweep: str | None) -> list[Point]:
    """The points a comparison times, smallest first.

    Parameters
    ----------
    sizes : sequence of int
        n^0, ..., n^L of the network; a width sweep keeps n^0 and n^L.
    m : int
        The number of samples; an m sweep ends there.
    sweep : {None, "m", "width"}
        None: the one point (sizes, m), labelled m. ``"m"``: m = 10, 32, 100, 316, ...
        (half decades) below `m`, then `m`. ``"width"``: every hidden layer 4, 8, 16, ...
        wide below the widest hidden layer of `sizes`, then that width, all at `m`.

    Raises
    ------
    ValueError
        For a width sweep of a network with no hidden layer.
    """
    sizes = tuple(sizes)
    if sweep is None:
        return [Point(m, sizes, m)]
    if check_choice(sweep, "sweep", SWEEPS) == "m":
        values = [v for v in (10 * 10 ** (k / 2) for k in range(20)) if round(v) < m]
        return [Point(v, sizes, v) for v in [int(round(v)) for v in values] + [m]]
    if len(sizes) < 3:
        raise ValueError(f"a width sweep varies the hidden layers; sizes {sizes} has none")
    widest = max(sizes[1:-1])
    widths = [w for w in (2**k for k in range(2, 20)) if w < widest] + [widest]
    return [Point(w, (sizes[0],) + (w,) * (len(sizes) - 2) + (sizes[-1],), m) for w in widths]


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
        if d0 == 0 or d0 * d1 < 0:
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
    sweep : {None, "m", "width"}
    backends : tuple of str
        In table order; einsum must be one of them.
    points : tuple of Point
    measured : tuple of dict
        One per point: for each backend, what ``loopbp.compare.measure`` returned
        (``first_s``, ``median_s``, ``number``, ``difference``).

    Raises
    ------
    ValueError
        If `backends` lacks einsum, or a point lacks the measurement of one of them.
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
        seed: int = 0,
        repeat: int = 20,
        threads: int | None = None,
        callback: Callable[[str, Comparison, float], None] | None = None,
    ) -> Comparison:
        """Time every backend on every point, each backend in a process of its own.

        Parameters
        ----------
        sizes, m, sweep
            The points: see `sweep_points`.
        activations : sequence of str or None
            One name per layer; None for sigmoid hidden layers and an identity output.
        dtype : {"float64", "float32"}
        backends : sequence of str or None
            In table order, from ``loopbp.compare.COMPARED_BACKENDS``, einsum among them; None for
            ``loopbp.compare.default_backends()``.
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
        # Each backend's process rebuilds the problem from the seed, so it must be a number.
        check_seed(seed, number_only=True)
        check_positive(repeat, "repeat", integer=True)
        if threads is not None:
            check_positive(threads, "threads", integer=True)
        check_callback(callback)
        points = tuple(sweep_points(sizes, m, sweep))

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
    def labels(self) -> list[int]:
        """The swept value of each point (m for a single run)."""
        return [p.label for p in self.points]

    def median(self, backend: str, point: int = 0) -> float:
        """Seconds per gradient of `backend` at `points[point]`."""
        return self.measured[point][backend]["median_s"]

    def gflop_per_s(self, backend: str, point: int = 0) -> float:
        """GFLOP/s of `backend` at `points[point]`."""
        return self.points[point].gflop / self.median(backend, point)

    def speedup(self, backend: str, point: int = 0) -> float:
        """How many times faster than einsum `backend` is at `points[point]`."""
        return self.median(REFERENCE, point) / self.median(backend, point)

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
    def crossovers(self) -> list[float]:
        """The swept values where the loops and the fastest other backend swap places.

        Against the fastest of the others at each point, so that this is where the loops
        stop (or start) being the fastest. Empty without a sweep or without the loops.
        """
        others = [b for b in self.backends if b != "loops"]
        if self.sweep is None or "loops" not in self.backends or not others:
            return []
        return crossovers(
            self.labels,
            [self.median("loops", k) for k in range(len(self.points))],
            [min(self.median(b, k) for b in others) for k in range(len(self.points))],
        )

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
        """The JSON of ``loopbp compare --json``; `plot` is the path of the plot drawn, if any."""
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
            "tolerance": self.tolerance,
            "agree": self.agree,
            "plot": plot,
        }
