"""loopbp.compare in this process (each backend's gradient, the measurement, the worker),
and loopbp.comparison's results object on hand-made measurements (no process)."""

import json
import os
from dataclasses import replace

import numpy as np
import pytest

from loopbp import compare, comparison
from loopbp.agreement import TOLERANCE
from loopbp.comparison import Comparison, Point
from loopbp.problems import default_activations, seeded_problem


@pytest.mark.parametrize("backend", compare.default_backends())
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_measure_every_installed_backend(backend, dtype):
    result = compare.measure(backend, (3, 5, 2), 7, ("tanh", "identity"), dtype, seed=0, repeat=2)
    assert set(result) == {"first_s", "median_s", "number", "difference"}
    assert result["median_s"] > 0 and result["number"] >= 1
    assert result["difference"] <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("backend", compare.default_backends())
def test_every_backend_supports_every_activation(backend):
    net, X, Y = seeded_problem(
        (4, 3, 3, 3, 3, 2), 5, ("identity", "sigmoid", "relu", "tanh", "identity"), np.float64, 1
    )
    E, dW, db = compare.gradient_function(backend, net, X, Y)()
    assert [g.shape for g in dW] == [w.shape for w in net.W] and [g.shape for g in db] == [
        v.shape for v in net.b
    ]
    assert E == pytest.approx(net.error(X, Y), rel=1e-12)


def test_unknown_backend_and_failing_worker():
    net, X, Y = seeded_problem((2, 1), 3, ("identity",), np.float64, 0)
    with pytest.raises(ValueError, match="backend must be one of"):
        compare.gradient_function("fortran", net, X, Y)
    with pytest.raises(RuntimeError, match="the fortran backend failed in its process"):
        compare.run("fortran", [((2, 1), 3)], None, "float64", repeat=1)


def test_thread_environment():
    env = compare.thread_environment(3)
    assert all(env[k] == "3" for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    assert compare.thread_environment(None) == dict(os.environ)


def test_worker_prints_one_result_per_point(capsys, monkeypatch):
    request = {"backend": "einsum", "points": [[[2, 3, 1], 4], [[2, 2, 1], 5]], "activations": None}
    request.update({"dtype": "float64", "seed": 0, "repeat": 1})
    compare.worker(json.dumps(request))
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2 and all(r["difference"] == 0.0 for r in results)


def test_default_activations_and_gflop():
    assert default_activations(3) == ("sigmoid", "sigmoid", "identity")
    # 2 * (3*2 + 1*3) * 5 multiply-adds forward and for dW, plus 2 * 1*3 * 5 for dA^1.
    assert comparison.gradient_gflop((2, 3, 1), 5) * 1e9 == pytest.approx(2 * 2 * 6 * 5 + 3 * 2 * 3 * 5)


def test_gradient_gflop_counts_the_reference_cases():
    # performance-notes.md: mnist 784-256-128-10 at m = 10,000 is 10.1 GFLOP, wide is 68.7.
    assert round(comparison.gradient_gflop((784, 256, 128, 10), 10_000), 1) == 10.1
    assert round(comparison.gradient_gflop((1024, 1024, 1024, 1024), 4096), 1) == 68.7


def test_crossovers_are_found_on_log_axes():
    # loops/other = 2 at 10 and 1/2 at 1000: the ratio crosses 1 halfway in log m, at 100.
    assert comparison.crossovers([10, 1000], [2.0, 0.5], [1.0, 1.0]) == [pytest.approx(100.0)]
    assert comparison.crossovers([10, 1000], [2.0, 3.0], [1.0, 1.0]) == []


def test_sweep_points():
    assert comparison.sweep_points((3, 5, 2), 40, None) == [Point(40, (3, 5, 2), 40)]
    assert [p.label for p in comparison.sweep_points((3, 5, 2), 100, "m")] == [10, 32, 100]
    assert [p.m for p in comparison.sweep_points((3, 5, 2), 100, "m")] == [10, 32, 100]
    width = comparison.sweep_points((3, 20, 9, 2), 7, "width")
    assert [p.sizes for p in width] == [(3, 4, 4, 2), (3, 8, 8, 2), (3, 16, 16, 2), (3, 20, 20, 2)]
    assert {p.m for p in width} == {7}
    with pytest.raises(ValueError, match="hidden layers"):
        comparison.sweep_points((3, 2), 7, "width")
    with pytest.raises(ValueError, match="sweep must be one of"):
        comparison.sweep_points((3, 2), 7, "depth")


def _measured(median_ms, difference=0.0):
    return {"first_s": 1.0, "median_s": median_ms / 1e3, "number": 3, "difference": difference}


def _hand_made(loops_differences=(1e-13, 5e-13, 2e-13), dtype="float64"):
    # An m sweep over 10, 100, 1000: einsum 4 ms throughout, numpy 1 ms, and the loops
    # 2 ms, 0.5 ms, 0.25 ms, so they overtake numpy halfway (in log m) between 10 and 100.
    points = tuple(Point(m, (3, 5, 2), m) for m in (10, 100, 1000))
    loops = (2.0, 0.5, 0.25)
    measured = tuple(
        {"einsum": _measured(4.0), "loops": _measured(t, d), "numpy": _measured(1.0, 1e-15)}
        for t, d in zip(loops, loops_differences)
    )
    return Comparison(
        sizes=(3, 5, 2),
        m=1000,
        activations=("sigmoid", "identity"),
        dtype=dtype,
        threads=None,
        repeat=3,
        sweep="m",
        backends=("loops", "einsum", "numpy"),
        points=points,
        measured=measured,
    )


def test_comparison_computes_speedups_crossovers_and_agreement():
    result = _hand_made()
    assert result.labels == [10, 100, 1000]
    assert [result.speedup("loops", k) for k in range(3)] == pytest.approx([2.0, 8.0, 16.0])
    assert result.speedup("einsum", 2) == 1.0
    assert result.speedup("numpy", 1) == pytest.approx(4.0)
    gflop = comparison.gradient_gflop((3, 5, 2), 100)
    assert result.gflop_per_s("loops", 1) == pytest.approx(gflop / 0.5e-3)
    assert result.crossovers == [pytest.approx(10**1.5)]
    assert result.worst_difference == 5e-13
    assert result.tolerance == 1e-12 and result.agree is True
    assert _hand_made(loops_differences=(0.0, 2e-12, 0.0)).agree is False
    # float32's tolerance is wider: 2e-12 agrees there.
    assert _hand_made(loops_differences=(0.0, 2e-12, 0.0), dtype="float32").agree is True


def test_comparison_without_a_sweep_or_the_loops_has_no_crossovers():
    result = _hand_made()
    single = replace(result, sweep=None)
    assert single.crossovers == []
    others = replace(result, backends=("einsum", "numpy"))
    assert others.crossovers == [] and others.worst_difference == 0.0 and others.agree


def test_comparison_to_dict_is_the_json_of_compare():
    import loopbp

    result = _hand_made()
    out = json.loads(json.dumps(result.to_dict(plot="p.png")))
    assert list(out) == [
        "loopbp_version",
        "sizes",
        "m",
        "activations",
        "dtype",
        "threads",
        "repeat",
        "sweep",
        "points",
        "crossovers",
        "map",
        "tolerance",
        "agree",
        "plot",
    ]
    assert out["loopbp_version"] == loopbp.__version__ and out["plot"] == "p.png"
    assert out["sizes"] == [3, 5, 2] and out["m"] == 1000 and out["sweep"] == "m"
    assert out["activations"] == ["sigmoid", "identity"] and out["threads"] is None
    assert out["crossovers"] == [pytest.approx(10**1.5)]
    assert out["tolerance"] == 1e-12 and out["agree"] is True
    assert [p["m"] for p in out["points"]] == [10, 100, 1000]
    point = out["points"][1]
    assert point["sizes"] == [3, 5, 2] and point["gflop"] == comparison.gradient_gflop((3, 5, 2), 100)
    # einsum, the reference, first: the order the backends ran in.
    assert list(point["results"]) == ["einsum", "loops", "numpy"]
    loops = point["results"]["loops"]
    assert list(loops) == ["first_s", "median_s", "number", "difference", "gflop_per_s", "speedup_vs_einsum"]
    assert loops["speedup_vs_einsum"] == pytest.approx(8.0) and loops["difference"] == 5e-13
    assert loops["gflop_per_s"] == pytest.approx(point["gflop"] / loops["median_s"])


def test_comparison_needs_einsum_and_every_measurement():
    result = _hand_made()
    with pytest.raises(ValueError, match="must include einsum"):
        replace(result, backends=("loops", "numpy"))
    measured = tuple(dict(row) for row in result.measured)
    del measured[1]["numpy"]
    with pytest.raises(ValueError, match="point 100 has no measurement for numpy"):
        replace(result, measured=measured)


def test_comparison_run_calls_back_after_each_backend(monkeypatch):
    # compare.run stands in for the processes: each backend's median is its place in COMPARED_BACKENDS.
    calls = []

    def run(backend, points, activations, dtype, seed, repeat, threads, device):
        calls.append((backend, points, activations, dtype, seed, repeat, threads))
        t = (compare.COMPARED_BACKENDS.index(backend) + 1) / 1e3
        return [{"first_s": 1.0, "median_s": t, "number": 1, "difference": 0.0} for _ in points]

    monkeypatch.setattr(compare, "run", run)
    done = []
    result = Comparison.run(
        [3, 5, 2],
        100,
        backends=("loops", "einsum", "numpy"),
        sweep="m",
        seed=4,
        repeat=2,
        threads=1,
        callback=lambda backend, partial, seconds: done.append((backend, partial.backends, seconds)),
    )
    assert [c[0] for c in calls] == ["einsum", "loops", "numpy"]
    assert calls[0][1:] == (
        [((3, 5, 2), 10), ((3, 5, 2), 32), ((3, 5, 2), 100)],
        ("sigmoid", "identity"),
        "float64",
        4,
        2,
        1,
    )
    assert [(b, partial) for b, partial, _ in done] == [
        ("einsum", ("einsum",)),
        ("loops", ("loops", "einsum")),
        ("numpy", ("loops", "einsum", "numpy")),
    ]
    assert all(seconds >= 0 for _, _, seconds in done)
    assert result.backends == ("loops", "einsum", "numpy") and result.labels == [10, 32, 100]
    assert result.speedup("loops", 2) == pytest.approx(2.0) and result.agree
    with pytest.raises(ValueError, match="must include einsum"):
        Comparison.run((3, 2), 4, backends=("loops",))
    with pytest.raises(ValueError, match="activations must have one name per layer"):
        Comparison.run((3, 4, 2), 4, ("tanh",))


def test_sweep_points_of_a_map():
    # Every pair of the width sweep's widths and the m sweep's m, width by width.
    widths = [p.label for p in comparison.sweep_points((3, 20, 9, 2), 100, "width")]
    ms = [p.label for p in comparison.sweep_points((3, 20, 9, 2), 100, "m")]
    points = comparison.sweep_points((3, 20, 9, 2), 100, "width,m")
    assert [p.label for p in points] == [(w, v) for w in widths for v in ms]
    assert [(p.sizes, p.m) for p in points] == [((3, w, w, 2), v) for w, v in (p.label for p in points)]
    # Chosen points: sorted and once each, whatever order they are given in.
    chosen = comparison.sweep_points((3, 20, 2), 7, "width,m", widths=[64, 16, 16], ms=(1000, 32))
    assert [p.label for p in chosen] == [(16, 32), (16, 1000), (64, 32), (64, 1000)]
    assert [p.m for p in comparison.sweep_points((3, 2), 7, "m", ms=[50, 5])] == [5, 50]
    assert [p.sizes for p in comparison.sweep_points((3, 20, 2), 7, "width", widths=[6])] == [(3, 6, 2)]


@pytest.mark.parametrize(
    "sizes,sweep,points,message",
    [
        ((3, 2), "width,m", {}, "a width,m sweep varies the hidden layers; sizes (3, 2) has none"),
        ((3, 4, 2), "m", {"widths": [8]}, "widths sets the points of a width sweep or a map; sweep is 'm'"),
        ((3, 4, 2), "width", {"ms": [8]}, "ms sets the points of an m sweep or a map; sweep is 'width'"),
        ((3, 4, 2), None, {"ms": [8]}, "widths and ms set the points of a sweep; sweep is None"),
        ((3, 4, 2), "width,m", {"ms": [8, 0]}, "ms must be"),
        ((3, 4, 2), "width,m", {"widths": []}, "widths must be a non-empty sequence of positive integers"),
        ((3, 4, 2), "width,m", {"widths": "16"}, "widths must be a non-empty sequence of positive integers"),
        ((3, 4, 2), "m,width", {}, "sweep must be one of"),
    ],
)
def test_sweep_points_rejects(sizes, sweep, points, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        comparison.sweep_points(sizes, 7, sweep, **points)


# A map over widths 4, 16 and m = 10, 100, 1000, in ms per gradient, one row per width. einsum is
# never the fastest; numpy is the fastest other at width 4, torch at 16. The loops beat that by 2
# or lose by 2, so each crossing is halfway (in log) between two points: at width 4 between m = 10
# and 100, at width 16 between 100 and 1000, and at m = 100 between widths 4 and 16.
MAP_MS = {
    "einsum": [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0]],
    "numpy": [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
    "torch": [[2.0, 2.0, 2.0], [0.5, 0.5, 0.5]],
    "loops": [[0.5, 2.0, 2.0], [0.25, 0.25, 1.0]],
}


def _hand_made_map():
    widths, ms = (4, 16), (10, 100, 1000)
    pairs = [(i, j) for i in range(2) for j in range(3)]
    pairs = pairs[3:] + pairs[:3]  # not in row order: the map finds its cells by label
    return Comparison(
        sizes=(3, 16, 2),
        m=1000,
        activations=("sigmoid", "identity"),
        dtype="float64",
        threads=None,
        repeat=3,
        sweep="width,m",
        backends=("loops", "einsum", "numpy", "torch"),
        points=tuple(Point((widths[i], ms[j]), (3, widths[i], 2), ms[j]) for i, j in pairs),
        measured=tuple({b: _measured(t[i][j]) for b, t in MAP_MS.items()} for i, j in pairs),
    )


def test_map_ratio_fastest_other_and_crossovers():
    result = _hand_made_map()
    assert result.widths == [4, 16] and result.ms == [10, 100, 1000]
    others = [b for b in MAP_MS if b != "loops"]
    fastest = [[min(others, key=lambda b: MAP_MS[b][i][j]) for j in range(3)] for i in range(2)]
    assert result.fastest_map() == fastest == [["numpy"] * 3, ["torch"] * 3]
    expected = [[MAP_MS[fastest[i][j]][i][j] / MAP_MS["loops"][i][j] for j in range(3)] for i in range(2)]
    assert result.ratio_map() == [pytest.approx(row) for row in expected]
    assert result.crossovers == [
        (4, pytest.approx(10**1.5)),
        (pytest.approx(8.0), 100),
        (16, pytest.approx(10**2.5)),
    ]
    # The same ratio point by point, against the time of the fastest other backend at that point.
    for k in range(len(result.points)):
        times = {b: result.median(b, k) for b in result.backends}
        assert result.ratio(k) == pytest.approx(
            min(t for b, t in times.items() if b != "loops") / times["loops"]
        )


def test_map_to_dict():
    result = _hand_made_map()
    out = json.loads(json.dumps(result.to_dict()))
    assert out["sweep"] == "width,m" and len(out["points"]) == 6
    assert out["map"]["widths"] == [4, 16] and out["map"]["ms"] == [10, 100, 1000]
    assert out["map"]["ratio"] == result.ratio_map() and out["map"]["fastest_other"] == result.fastest_map()
    assert out["crossovers"] == [list(c) for c in result.crossovers]
    assert _hand_made().to_dict()["map"] is None


def test_map_needs_every_pair_and_the_loops():
    result = _hand_made_map()
    with pytest.raises(ValueError, match=r"one point for each pair of its widths \[4, 16\]"):
        replace(result, points=result.points[1:], measured=result.measured[1:])
    without = replace(result, backends=("einsum", "numpy", "torch"))
    with pytest.raises(ValueError, match="the ratio is against the loops"):
        without.ratio_map()
    assert without.crossovers == [] and without.to_dict()["map"] is None
    with pytest.raises(ValueError, match="widths belong to a width,m map; this comparison's sweep is 'm'"):
        assert _hand_made().widths


def test_comparison_run_times_a_map_width_by_width(monkeypatch):
    calls = []

    def run(backend, points, activations, dtype, seed, repeat, threads, device):
        calls.append((backend, points))
        # The loops take w * m / 1000 ms, numpy 1 ms, einsum 3 ms.
        t = {"loops": [s[1] * m / 1e6 for s, m in points], "numpy": [1e-3] * len(points)}
        times = t.get(backend, [3e-3] * len(points))
        return [{"first_s": 1.0, "median_s": s, "number": 1, "difference": 0.0} for s in times]

    monkeypatch.setattr(compare, "run", run)
    result = Comparison.run(
        [3, 5, 2], 100, backends=("loops", "einsum", "numpy"), sweep="width,m", widths=[2, 20], ms=[10, 100]
    )
    assert calls[0][1] == [((3, 2, 2), 10), ((3, 2, 2), 100), ((3, 20, 2), 10), ((3, 20, 2), 100)]
    assert result.ratio_map() == [pytest.approx([1 / (w * v / 1000) for v in (10, 100)]) for w in (2, 20)]
    calls.clear()
    with pytest.raises(ValueError, match="a width,m map needs loops among the backends"):
        Comparison.run([3, 5, 2], 100, backends=("einsum", "numpy"), sweep="width,m")
    assert calls == []
