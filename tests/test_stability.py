"""Numerical stability: saturation, ReLU at 0, extreme targets, float32 against float64.

pytest turns every RuntimeWarning into an error (pyproject.toml), and each test here also
asserts that nothing is NaN: neither may happen on any of these inputs.
"""

import warnings

import numpy as np
import pytest
from problems import CPU_BACKENDS, PATTERNS, SHAPES, activations_for, make_problem

import loopbp
from loopbp.agreement import TOLERANCE, gradient_difference

#: How close a float32 gradient comes to the exact one: the `relative_difference`
#: between a float32 computation and a float64 computation from the same (float32)
#: inputs. float32 rounds each operation to 6e-8 relative; sums of up to a thousand
#: terms through up to six layers accumulate that to about 1e-6 on the shapes of
#: ``tests/problems.py`` (worst measured 1.1e-6), so a float32 gradient is good to about
#: five significant digits, and 1e-5 is the bound held here.
FLOAT32_ACCURACY = 1e-5

DTYPES = [np.float64, np.float32]


def _finite(result):
    E, dW, db = result
    return np.isfinite(E) and all(np.all(np.isfinite(g)) for g in dW + db)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4])
def test_saturating_layers(name, scale, dtype):
    # Z^1 spans +-scale: at 1e4 every unit is saturated and g' is exactly 0.
    rng = np.random.default_rng(0)
    net = loopbp.Network([3, 16, 16, 2], [name, name, "identity"], dtype=dtype, seed=0)
    X = (scale * rng.uniform(-1, 1, (3, 50))).astype(dtype)
    Y = rng.standard_normal((2, 50)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loops = net.gradient(X, Y)
        reference = net.gradient(X, Y, backend="einsum")
        history = net.fit(X, Y, learning_rate=0.01, epochs=3, progress=False)
    assert _finite(loops) and np.all(np.isfinite(history))
    assert gradient_difference(loops, reference) <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_relu_exactly_at_zero_passes_no_gradient(backend):
    # Every Z^1 is exactly 0 (X = 0, b^1 = 0): with g'(0) = 0 no gradient reaches W^1 or b^1.
    W = [np.array([[1.0], [-2.0]]), np.array([[3.0, 4.0]])]
    b = [np.zeros(2), np.array([0.5])]
    E, dW, db = loopbp.gradient(
        W, b, np.zeros((1, 4)), np.ones((1, 4)), ["relu", "identity"], backend=backend
    )
    assert np.all(dW[0] == 0) and np.all(db[0] == 0)
    # The output layer still learns: dE/db^2 = mean(A^2 - Y) = 0.5 - 1.
    assert db[1][0] == -0.5 and E == 0.125


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", [0.0, 1e-300, -1e-30, 1e-40, 1e6, -1e15, 1e38])
def test_very_small_and_large_targets(target, dtype):
    net = loopbp.Network([2, 5, 1], ["tanh", "identity"], dtype=dtype, seed=1)
    X = np.random.default_rng(1).standard_normal((2, 9)).astype(dtype)
    # 1e-300 is 0 in float32 and 1e-40 subnormal; at 1e38 dE/dA^L is near float32's
    # limit but E (accumulated in float64) and the sums of 9 samples stay finite.
    Y = np.full((1, 9), target, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loops = net.gradient(X, Y)
        reference = net.gradient(X, Y, backend="einsum")
    assert _finite(loops)
    assert gradient_difference(loops, reference) <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_targets_too_large_for_e_raise_instead_of_inf(backend):
    # E ~ (1e200)^2 / 2 = 5e399 overflows float64.
    net = loopbp.Network([2, 5, 1], ["sigmoid", "identity"], seed=1)
    with pytest.raises(ValueError, match="overflowed in float64"):
        net.gradient(np.ones((2, 9)), np.full((1, 9), 1e200), backend=backend)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("name,sizes,m", SHAPES, ids=[s[0] for s in SHAPES])
def test_float32_is_as_accurate_as_float32_can_be(name, sizes, m, pattern):
    # The same float32 inputs, computed in float32 by the loops and in float64 by einsum:
    # the float32 gradient must be within FLOAT32_ACCURACY of the exact one.
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), np.float32)
    widen = [a.astype(np.float64) for a in (X, Y)]
    exact = loopbp.gradient(
        [w.astype(np.float64) for w in W], [v.astype(np.float64) for v in b], *widen, acts, backend="einsum"
    )
    assert gradient_difference(loopbp.gradient(W, b, X, Y, acts), exact) <= FLOAT32_ACCURACY
