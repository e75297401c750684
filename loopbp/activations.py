"""Activation functions g and their derivatives g', for the loops and the reference.

Every activation loopbp knows has a name, an integer code, a NumPy pair (used by the
einsum reference) and a branch in two Numba row kernels (``loopbp.cpu.activation_rows``,
used by the loop kernels) and in the CUDA kernels (``loopbp.cuda.kernels``).
The kernels receive the code as data, so a new combination of activations reuses the
compiled code instead of compiling again.

All four derivatives are written in terms of the value a = g(z), which the forward
pass has already stored as A^l. That is why no separate Z^l buffer is kept:

=========  =======================  ==============================
name       g(z)                     g'(z), written with a = g(z)
=========  =======================  ==============================
identity   z                        1
sigmoid    1 / (1 + exp(-z))        a (1 - a)
relu       max(0, z)                1 if a > 0 else 0 (so g'(0) = 0)
tanh       tanh(z)                  1 - a^2
=========  =======================  ==============================

ReLU's derivative at 0 is 0, as in the series' derivation post (its companion code
used 1). For ReLU, a > 0 exactly when z > 0.
"""

import numpy as np

IDENTITY = 0
SIGMOID = 1
RELU = 2
TANH = 3

#: Activation names in code order; ``ACTIVATIONS.index(name)`` is the code.
ACTIVATIONS = ("identity", "sigmoid", "relu", "tanh")


def activation_code(name):
    """Return the integer code of the activation called `name`.

    Raises
    ------
    TypeError
        If `name` is not a string.
    ValueError
        If `name` is not a known activation; the message lists the known ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"an activation name must be a str, got {type(name).__name__} {name!r}")
    try:
        return ACTIVATIONS.index(name)
    except ValueError:
        known = ", ".join(repr(a) for a in ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; known activations are {known}") from None


def _sigmoid(z):
    # exp is only ever taken of -|z| <= 0, so it cannot overflow; for z < 0 the
    # algebraically equal form e^z / (1 + e^z) avoids 1 + e^{-z} = inf.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def value(name, z):
    """g(z) elementwise for the activation `name`, in the dtype of `z` (NumPy)."""
    code = activation_code(name)
    if code == IDENTITY:
        return z.copy()
    if code == SIGMOID:
        return _sigmoid(z)
    if code == RELU:
        return np.maximum(z, 0)
    return np.tanh(z)


def derivative_from_value(name, a):
    """g'(z) elementwise, given a = g(z), for the activation `name` (NumPy)."""
    code = activation_code(name)
    if code == IDENTITY:
        return np.ones_like(a)
    if code == SIGMOID:
        return a * (1 - a)
    if code == RELU:
        return (a > 0).astype(a.dtype)
    return 1 - a * a
