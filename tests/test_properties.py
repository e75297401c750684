"""Property tests: random depths, widths, m, activations and dtypes (hypothesis).

Each drawn network checks that the loops equal the einsum reference within the dtype's
tolerance, that forward, error and gradient agree with one another, that the gradient
matches central finite differences (float64), and, when PyTorch is installed, that it
equals autograd's. The profile ("fast" by default, "long" with LOOPBP_HYPOTHESIS=long)
is set in conftest.py. Counterexamples hypothesis has found stay below as @example rows.
"""

import importlib.util

import numba
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_finite_differences import FD_TOLERANCE

import loopbp
from loopbp.agreement import TOLERANCE, gradient_difference, relative_difference
from loopbp.compare import torch_activations
from loopbp.problems import seeded_problem

SMOOTH = ("identity", "sigmoid", "tanh")


# Without JIT (the kernel-coverage run) the loops run as Python: smaller networks.
WIDEST, MOST_SAMPLES = (8, 20) if numba.config.DISABLE_JIT else (64, 300)


@st.composite
def networks(draw, activations=loopbp.ACTIVATIONS, dtypes=(np.float64, np.float32)):
    """(sizes, m, activations, dtype, seed) with L in 1..6, widths in 1..64 and m in 1..300."""
    L = draw(st.integers(1, 6))
    sizes = tuple(draw(st.lists(st.integers(1, WIDEST), min_size=L + 1, max_size=L + 1)))
    m = draw(st.integers(1, MOST_SAMPLES))
    acts = tuple(draw(st.lists(st.sampled_from(activations), min_size=L, max_size=L)))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**31 - 1))
    return sizes, m, acts, dtype, seed


@given(networks())
@example(((1, 1), 1, ("relu",), np.float64, 0))
# Found by the long profile: W^1's gradient is a float32 sum over 47 units that cancels
# to about 1e-4 of its terms, so each backend is 5e-6 to 1e-5 off the exact value on
# that array's own scale (see agreement.gradient_difference).
@example(((1, 1, 47, 29, 1), 1, ("identity", "identity", "sigmoid", "identity"), np.float32, 674603808))
def test_loops_equal_einsum_and_the_three_functions_agree(case):
    net, X, Y = seeded_problem(*case)
    dtype = np.dtype(case[3])
    loops = net.gradient(X, Y)
    reference = net.gradient(X, Y, backend="einsum")
    # float64 on each array's own scale; float32, whose per-array error cannot be bounded
    # where sums cancel, on the scale of the whole gradient.
    per_array = dtype == np.float64
    assert gradient_difference(loops, reference, per_array=per_array) <= TOLERANCE[dtype]
    assert all(g.dtype == dtype for g in loops[1] + loops[2])

    # E from error() is the same sum, in the same order, as gradient()'s.
    assert net.error(X, Y) == loops[0]
    A_L = net.forward(X)
    assert A_L.shape == (net.sizes[-1], X.shape[1]) and A_L.dtype == dtype
    E_from_output = float(np.sum((A_L.astype(np.float64) - Y) ** 2)) / (2 * X.shape[1])
    assert relative_difference(loops[0], E_from_output) <= TOLERANCE[dtype]
    np.testing.assert_array_equal(A_L, loopbp.forward(list(net.W), list(net.b), X, net.activations))


# Finite differences assume E is smooth along the direction; ReLU's kink at 0 breaks that
# whenever some Z^l_ic lies within a step of 0, which random networks of this size hit
# often. ReLU's gradient is checked against einsum above and against autograd below.
@given(networks(activations=SMOOTH, dtypes=(np.float64,)))
@example(((3, 1, 2), 1, ("sigmoid", "identity"), np.float64, 0))
def test_gradient_matches_finite_differences(case):
    net, X, Y = seeded_problem(*case)
    assert loopbp.check_gradient(list(net.W), list(net.b), X, Y, net.activations) < FD_TOLERANCE


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
@given(networks(dtypes=(np.float64,)))
def test_gradient_equals_torch_autograd(case):
    import torch

    net, X, Y = seeded_problem(*case)
    # The peers' table: a name mapped to the wrong torch function would fail here, as
    # loopbp's own activations would then disagree with it.
    functions = torch_activations()
    W = [torch.tensor(w, requires_grad=True) for w in net.W]
    b = [torch.tensor(v, requires_grad=True) for v in net.b]
    A = torch.tensor(X)
    for w, v, g in zip(W, b, net.activations):
        A = functions[g](w @ A + v[:, None])
    # conventions.md: E = 1/(2m) sum (A - Y)^2. torch's MSELoss would be the mean over all
    # n^L m entries, without the 1/2: not the same function.
    E = ((A - torch.tensor(Y)) ** 2).sum() / (2 * X.shape[1])
    grads = torch.autograd.grad(E, W + b)
    L = len(W)
    reference = (E.item(), [g.numpy() for g in grads[:L]], [g.numpy() for g in grads[L:]])
    assert gradient_difference(net.gradient(X, Y), reference) <= TOLERANCE[np.dtype(np.float64)]
