"""`check_gradient`: the analytic gradient against central finite differences."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .gradients import error, gradient
from .validation import check_backend, check_parameters, check_positive, check_samples, check_targets


def check_gradient(
    W: Sequence[ArrayLike],
    b: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    activations: Sequence[str],
    *,
    backend: str = "loops",
    directions: int = 3,
    step: float = 1e-5,
    seed: int = 0,
) -> float:
    r"""Worst relative error between the gradient and central finite differences.

    For each parameter array P (every W^l and b^l) and each of `directions` random unit
    directions V (seeded by `seed`), it compares the directional derivative that the
    backend's gradient gives, :math:`d_a = \sum (\partial E/\partial P) V`, with the
    central difference

    .. math::

        d_n = \frac{E(P + hV) - E(P - hV)}{2h}.

    Directions, rather than single entries, test every entry at the cost of two error
    evaluations each (the habit of HIPS/autograd). The result is the worst
    :math:`|d_a - d_n|` divided by the largest :math:`|d_a|` or :math:`|d_n|` over all
    arrays and directions: relative to the whole gradient, as
    `loopbp.agreement.relative_difference` measures. An array whose gradient is
    vanishingly small next to the others (the first layers of a deep sigmoid stack)
    is thereby judged on the scale of the gradient, not on the finite difference's
    rounding noise, which is about :math:`\epsilon |E| / h` whatever the derivative's size.

    The check runs in float64 whatever the parameters' dtype: in float32 a finite
    difference cannot resolve more than about three digits, so it would test nothing.
    The inputs are not modified.

    Parameters
    ----------
    W, b, X, Y, activations, backend
        As in `loopbp.gradient`.
    directions : int
        Random directions per parameter array, at least 1.
    step : float
        h, the finite-difference step, positive. The default 1e-5, near the cube root
        of float64 epsilon, balances truncation (h^2) against rounding (eps / h).
    seed : int
        Seeds the directions.

    Returns
    -------
    float
        The worst relative error over every array and direction. A correct gradient
        typically gives 1e-11 to 1e-9 with the default step; a wrong one gives a
        number of the size of its mistake, relative to the gradient.
    """
    check_backend(backend)
    check_positive(directions, "directions", integer=True)
    check_positive(step, "step", integer=False)
    W, b, names, _, dtype = check_parameters(W, b, activations)
    X = check_samples(X, W[0].shape[1], dtype)
    Y = check_targets(Y, W[-1].shape[0], X.shape[1], dtype)

    W = [w.astype(np.float64) for w in W]
    b = [v.astype(np.float64) for v in b]
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    _, dW, db = gradient(W, b, X, Y, names, backend=backend)
    rng = np.random.default_rng(seed)
    worst_difference = 0.0
    largest = 0.0
    for params, grads in ((W, dW), (b, db)):
        for k in range(len(params)):
            original = params[k]
            for _ in range(directions):
                V = rng.standard_normal(original.shape)
                V /= np.linalg.norm(V)
                params[k] = original + step * V
                E_plus = error(W, b, X, Y, names, backend=backend)
                params[k] = original - step * V
                E_minus = error(W, b, X, Y, names, backend=backend)
                params[k] = original
                numeric = (E_plus - E_minus) / (2 * step)
                analytic = float(np.sum(grads[k] * V))
                worst_difference = max(worst_difference, abs(numeric - analytic))
                largest = max(largest, abs(numeric), abs(analytic))
    # A gradient that is exactly zero (every unit dead, say) is judged absolutely.
    return worst_difference / largest if largest > 0 else worst_difference
