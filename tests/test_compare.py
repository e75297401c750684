"""loopbp.compare in this process: each backend's gradient, the measurement, the worker."""

import json

import numpy as np
import pytest

from loopbp import compare
from loopbp.agreement import TOLERANCE


@pytest.mark.parametrize("backend", compare.default_backends())
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_measure_every_installed_backend(backend, dtype):
    result = compare.measure(backend, (3, 5, 2), 7, ("tanh", "identity"), dtype, seed=0, repeat=2)
    assert set(result) == {"first_s", "median_s", "number", "difference"}
    assert result["median_s"] > 0 and result["number"] >= 1
    assert result["difference"] <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("backend", compare.default_backends())
def test_every_backend_supports_every_activation(backend):
    net, X, Y = compare.problem(
        (4, 3, 3, 3, 3, 2), 5, ("identity", "sigmoid", "relu", "tanh", "identity"), np.float64, 1
    )
    E, dW, db = compare.gradient_function(backend, net, X, Y)()
    assert [g.shape for g in dW] == [w.shape for w in net.W] and [g.shape for g in db] == [
        v.shape for v in net.b
    ]
    assert E == pytest.approx(net.error(X, Y), rel=1e-12)


def test_unknown_backend_and_failing_worker():
    net, X, Y = compare.problem((2, 1), 3, ("identity",), np.float64, 0)
    with pytest.raises(ValueError, match="backend must be one of"):
        compare.gradient_function("fortran", net, X, Y)
    with pytest.raises(RuntimeError, match="the fortran backend failed in its process"):
        compare.run("fortran", [((2, 1), 3)], None, "float64", repeat=1)


def test_thread_environment():
    env = compare._environment(3)
    assert all(env[k] == "3" for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    assert compare._environment(None).get("NUMBA_NUM_THREADS") == __import__("os").environ.get(
        "NUMBA_NUM_THREADS"
    )


def test_worker_prints_one_result_per_point(capsys, monkeypatch):
    request = {"backend": "einsum", "points": [[[2, 3, 1], 4], [[2, 2, 1], 5]], "activations": None}
    request.update({"dtype": "float64", "seed": 0, "repeat": 1})
    compare._worker(json.dumps(request))
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2 and all(r["difference"] == 0.0 for r in results)


def test_default_activations_and_gflop():
    assert compare.default_activations(3) == ("sigmoid", "sigmoid", "identity")
    # 2 * (3*2 + 1*3) * 5 multiply-adds forward and for dW, plus 2 * 1*3 * 5 for dA^1.
    assert compare.gradient_gflop((2, 3, 1), 5) * 1e9 == pytest.approx(2 * 2 * 6 * 5 + 3 * 2 * 3 * 5)
