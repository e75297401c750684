"""`Network`: a network's sizes, activations and parameters in one object."""

import numpy as np

from .activations import activation_code
from .gradients import error, forward, gradient
from .validation import FLOAT_DTYPES

#: Initialisations `Network` offers; see its docstring.
INITS = ("series", "glorot", "he")


class Network:
    """A fully connected network with L layers, held as lists W and b.

    Parameters
    ----------
    sizes : sequence of int
        n^0, n^1, ..., n^L: the number of units of each layer, input first. At least
        two entries, each at least 1.
    activations : sequence of str
        One name per layer l = 1..L, from ``loopbp.ACTIVATIONS``.
    dtype : {numpy.float64, numpy.float32}
        The dtype of the parameters, and so of every computation.
    seed : int, numpy.random.Generator or None
        Seeds the initialisation; None draws fresh entropy.
    init : {"series", "glorot", "he"}
        ``"series"`` (the default) draws every weight and bias as 0.2 N(0, 1), as the
        blog series does. ``"glorot"`` draws W^l from N(0, 2 / (n^(l-1) + n^l)) and
        ``"he"`` from N(0, 2 / n^(l-1)); both set the biases to 0.

    Attributes
    ----------
    W : list of arrays
        ``W[l-1]`` is W^l, of shape (n^l, n^(l-1)).
    b : list of arrays
        ``b[l-1]`` is b^l, of shape (n^l,).
    sizes : tuple of int
    activations : tuple of str
    dtype : numpy dtype

    Examples
    --------
    >>> import numpy as np, loopbp
    >>> net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
    >>> X = np.linspace(0, 2 * np.pi, 50)[None, :]
    >>> E, dW, db = net.gradient(X, np.sin(X))
    >>> net.n_parameters
    61
    """

    def __init__(self, sizes, activations, *, dtype=np.float64, seed=None, init="series"):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(
                f"sizes must be a sequence of layer widths n^0, ..., n^L, got {type(sizes).__name__}"
            )
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least n^0 and n^1 (two widths), got {sizes!r}")
        for k, n in enumerate(sizes):
            if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
                raise TypeError(f"sizes[{k}] must be an int, got {type(n).__name__} {n!r}")
            if n < 1:
                raise ValueError(f"sizes[{k}] must be at least 1, got {n}")
        if isinstance(activations, (str, bytes)) or not hasattr(activations, "__len__"):
            raise TypeError(
                f"activations must be a sequence of {len(sizes) - 1} names, got {type(activations).__name__} "
                f"{activations!r}"
            )
        activations = tuple(activations)
        if len(activations) != len(sizes) - 1:
            raise ValueError(
                f"activations must have one name per layer, L = {len(sizes) - 1} for sizes {sizes!r}, "
                f"got {len(activations)}"
            )
        for g in activations:
            activation_code(g)
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if seed is not None and not isinstance(seed, np.random.Generator):
            if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
                raise TypeError(f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}")
        if init not in INITS:
            known = ", ".join(repr(k) for k in INITS)
            raise ValueError(f"init must be one of {known}, got {init!r}")

        self.sizes = tuple(int(n) for n in sizes)
        self.activations = activations
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        self.W, self.b = [], []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            if init == "series":
                W = 0.2 * rng.standard_normal((n_out, n_in))
                b = 0.2 * rng.standard_normal(n_out)
            else:
                variance = 2.0 / (n_in + n_out) if init == "glorot" else 2.0 / n_in
                W = np.sqrt(variance) * rng.standard_normal((n_out, n_in))
                b = np.zeros(n_out)
            self.W.append(W.astype(dtype))
            self.b.append(b.astype(dtype))

    @property
    def n_parameters(self):
        """p = sum_l (n^(l-1) + 1) n^l, the number of weights and biases."""
        return sum((n_in + 1) * n_out for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))

    def __repr__(self):
        return (
            f"Network(sizes={list(self.sizes)}, activations={list(self.activations)}, dtype=np.{self.dtype})"
        )

    def forward(self, X, *, backend="loops"):
        """A^L for the inputs X; see `loopbp.forward`."""
        return forward(self.W, self.b, X, self.activations, backend=backend)

    def error(self, X, Y, *, backend="loops"):
        """E for inputs X and targets Y; see `loopbp.error`."""
        return error(self.W, self.b, X, Y, self.activations, backend=backend)

    def gradient(self, X, Y, *, backend="loops"):
        """(E, dW, db) for inputs X and targets Y; see `loopbp.gradient`."""
        return gradient(self.W, self.b, X, Y, self.activations, backend=backend)
