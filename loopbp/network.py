"""`Network`: a network's sizes, activations and parameters in one object."""

import threading

import numpy as np

from . import gradients, passes
from .activations import activation_code
from .validation import FLOAT_DTYPES, check_parameters, check_samples, check_targets

#: Initialisations `Network` offers; see its docstring.
INITS = ("series", "glorot", "he")


class Network:
    """A fully connected network with L layers, its parameters held in one flat vector.

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
    theta : (p,) array
        Every parameter: W^1, b^1, ..., W^L, b^L, each row-major, one after another.
    W : tuple of arrays
        ``W[l-1]`` is W^l, of shape (n^l, n^(l-1)): a view of `theta`, so writing into it
        changes the network.
    b : tuple of arrays
        ``b[l-1]`` is b^l, of shape (n^l,), a view of `theta` like W.
    sizes : tuple of int
    activations : tuple of str
    dtype : numpy dtype

    Notes
    -----
    The loops backend keeps its buffers (`loopbp.passes.Workspace`) for the last m it
    was called with, so repeated calls allocate only the gradient they return. A call
    made while another thread uses those buffers gets buffers of its own.

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
        self._sizes = np.array(self.sizes, dtype=np.int64)
        self._codes = np.array([activation_code(g) for g in activations], dtype=np.int64)
        self.theta = np.empty(self.n_parameters, dtype)
        W, b = gradients._unpack(self.theta, self.sizes)
        self.W, self.b = tuple(W), tuple(b)
        self._workspace = None
        self._workspace_lock = threading.Lock()

        rng = np.random.default_rng(seed)
        for W, b in zip(self.W, self.b):
            n_out, n_in = W.shape
            if init == "series":
                W[...] = 0.2 * rng.standard_normal((n_out, n_in))
                b[...] = 0.2 * rng.standard_normal(n_out)
            else:
                variance = 2.0 / (n_in + n_out) if init == "glorot" else 2.0 / n_in
                W[...] = np.sqrt(variance) * rng.standard_normal((n_out, n_in))
                b[...] = 0.0

    @classmethod
    def from_parameters(cls, W, b, activations):
        """A network holding copies of the given parameters.

        Parameters
        ----------
        W, b, activations
            As in `loopbp.gradient`; their dtype becomes the network's.

        Examples
        --------
        >>> import numpy as np, loopbp
        >>> net = loopbp.Network.from_parameters([np.ones((3, 2))], [np.zeros(3)], ["relu"])
        >>> net.sizes, net.n_parameters
        ((2, 3), 9)
        """
        W, b, names, _, dtype = check_parameters(W, b, activations)
        net = cls([W[0].shape[1]] + [w.shape[0] for w in W], names, dtype=dtype, seed=0)
        for target, source in zip(net.W + net.b, W + b):
            target[...] = source
        return net

    @property
    def n_parameters(self):
        """p = sum_l (n^(l-1) + 1) n^l, the number of weights and biases."""
        return sum((n_in + 1) * n_out for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))

    def __repr__(self):
        return (
            f"Network(sizes={list(self.sizes)}, activations={list(self.activations)}, dtype=np.{self.dtype})"
        )

    def _check_parameters(self):
        # The parameters are the network's own, but they are writeable views: a NaN
        # written into them must be reported like a NaN passed to loopbp.gradient.
        if not passes.all_finite(self.theta):
            check_parameters(self.W, self.b, self.activations)

    def _in_workspace(self, m, backward, compute):
        """compute(workspace) with the cached workspace, or a fresh one if another thread holds it."""
        if not self._workspace_lock.acquire(blocking=False):
            return compute(passes.Workspace(self.sizes, m, self.dtype, backward))
        try:
            workspace = self._workspace
            if workspace is None or not workspace.fits(self.sizes, m, self.dtype, backward):
                workspace = self._workspace = passes.Workspace(self.sizes, m, self.dtype, backward)
            return compute(workspace)
        finally:
            self._workspace_lock.release()

    def _output(self, X, workspace):
        return gradients._loops_output(self.theta, self._sizes, self._codes, X, workspace)

    def forward(self, X, *, backend="loops"):
        """A^L for the inputs X; see `loopbp.forward`."""
        if backend != "loops":
            return gradients.forward(self.W, self.b, X, self.activations, backend=backend)
        X = check_samples(X, self.sizes[0], self.dtype)
        self._check_parameters()
        A_L = self._in_workspace(X.shape[1], False, lambda work: self._output(X, work).copy())
        gradients._require_finite("forward pass", self.dtype, A_L)
        return A_L

    def error(self, X, Y, *, backend="loops"):
        """E for inputs X and targets Y; see `loopbp.error`."""
        if backend != "loops":
            return gradients.error(self.W, self.b, X, Y, self.activations, backend=backend)
        X = check_samples(X, self.sizes[0], self.dtype)
        Y = gradients._kernel_array(check_targets(Y, self.sizes[-1], X.shape[1], self.dtype))
        self._check_parameters()
        E = float(
            self._in_workspace(
                X.shape[1], False, lambda work: passes.error_from_output(self._output(X, work), Y)
            )
        )
        gradients._require_finite("error", self.dtype, E)
        return E

    def gradient(self, X, Y, *, backend="loops"):
        """(E, dW, db) for inputs X and targets Y; see `loopbp.gradient`.

        With the loops backend, dW and db are views of one new flat array laid out like
        `theta`.
        """
        if backend != "loops":
            return gradients.gradient(self.W, self.b, X, Y, self.activations, backend=backend)
        X = check_samples(X, self.sizes[0], self.dtype)
        Y = check_targets(Y, self.sizes[-1], X.shape[1], self.dtype)
        self._check_parameters()
        E, grad = self._in_workspace(
            X.shape[1],
            True,
            lambda work: gradients._loops_gradient(self.theta, self._sizes, self._codes, X, Y, work),
        )
        dW, db = gradients._unpack(grad, self.sizes)
        return E, dW, db
