"""Both backends against central finite differences (float64), and check_gradient itself."""

import numpy as np
import pytest
from problems import CPU_BACKENDS, PATTERNS, activations_for, make_problem

import loopbp
from loopbp import gradient_check

# With the default step h = 1e-5, rounding in E contributes about eps |E| / h ~ 1e-10
# and truncation about h^2 ~ 1e-10, relative to the gradient; 1e-7 leaves a wide margin
# for both, while a gradient that is 1% off gives about 1e-2
# (test_check_gradient_sees_a_wrong_gradient).
FD_TOLERANCE = 1e-7

FD_SHAPES = [((3, 5, 4, 2), 11), ((4, 3), 6), ((2, 3, 1, 4, 2, 3, 2), 5), ((1, 1, 1), 1)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("sizes,m", FD_SHAPES, ids=[str(s[0]) for s in FD_SHAPES])
def test_gradient_matches_finite_differences(sizes, m, pattern, backend):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), seed=3)
    assert loopbp.check_gradient(W, b, X, Y, acts, backend=backend) < FD_TOLERANCE


def test_check_gradient_sees_a_wrong_gradient(monkeypatch):
    W, b, X, Y, acts = make_problem((3, 4, 2), 8, ["sigmoid", "identity"])
    assert loopbp.check_gradient(W, b, X, Y, acts) < FD_TOLERANCE
    true_gradient = gradient_check.gradient

    def off_by_one_percent(*args, **kwargs):
        E, dW, db = true_gradient(*args, **kwargs)
        return E, [1.01 * g for g in dW], db

    monkeypatch.setattr(gradient_check, "gradient", off_by_one_percent)
    assert loopbp.check_gradient(W, b, X, Y, acts) > 1e-3


def test_check_gradient_on_float32_parameters_runs_in_float64():
    W, b, X, Y, acts = make_problem((3, 4, 2), 8, ["tanh", "identity"], dtype=np.float32)
    before = [w.copy() for w in W]
    assert loopbp.check_gradient(W, b, X, Y, acts) < FD_TOLERANCE
    assert all(np.array_equal(w, w0) and w.dtype == np.float32 for w, w0 in zip(W, before))


@pytest.mark.parametrize(
    "kwargs,message",
    [({"directions": 0}, "directions"), ({"step": -1.0}, "step"), ({"step": float("nan")}, "step")],
)
def test_check_gradient_rejects_bad_settings(kwargs, message):
    W, b, X, Y, acts = make_problem((2, 2), 3, ["identity"])
    with pytest.raises(ValueError, match=message):
        loopbp.check_gradient(W, b, X, Y, acts, **kwargs)
