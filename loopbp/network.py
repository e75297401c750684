"""`Network`: a network's sizes, activations and parameters in one object."""

import math
import os
import sys

import numpy as np

from . import gradients, passes, training
from .activations import ACTIVATIONS, activation_code
from .validation import FLOAT_DTYPES, check_backend, check_parameters, check_samples, check_targets

#: What `Network.save` writes into its .npz file, and what `load` demands.
FILE_FORMAT = "loopbp-network"
FILE_VERSION = 1
FILE_KEYS = ("format", "version", "sizes", "activations", "dtype", "theta")


class TrainingDiverged(FloatingPointError):
    """`Network.fit` met a non-finite E, gradient or parameter.

    Attributes
    ----------
    epoch : int
        The epoch (counted from 0) in which it happened. The network keeps the last
        parameters that were finite.
    """

    def __init__(self, epoch, learning_rate):
        self.epoch = epoch
        super().__init__(
            f"training diverged in epoch {epoch}: E, the gradient or a parameter is no longer finite "
            f"with learning_rate = {learning_rate!r}; try a smaller learning rate. The network keeps "
            f"the last finite parameters."
        )


def _positive_number(value, name, integer):
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        wanted = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


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
        Seeds the initialisation and the shuffling of `fit`; None draws fresh entropy.
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
    made while another thread uses those buffers gets buffers of its own
    (`loopbp.passes.WorkspacePool`).

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
        self.seed = seed
        self._bind_views()

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

    def __getstate__(self):
        # W and b are views of theta, which pickle and copy.deepcopy would store as
        # separate arrays, cutting the link: keep theta alone and rebuild the views. The
        # workspace is scratch, made again at the next call.
        state = dict(self.__dict__)
        for name in ("W", "b", "_workspaces"):
            state.pop(name, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind_views()

    def _bind_views(self):
        # W and b as views of theta, and an empty pool for the buffers of the last m this
        # network is called with (one slot, any size).
        W, b = gradients._unpack(self.theta, self.sizes)
        self.W, self.b = tuple(W), tuple(b)
        self._workspaces = passes.WorkspacePool(slots=1)

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

    def _output(self, X, workspace):
        return gradients._loops_output(self.theta, self._sizes, self._codes, X, workspace)

    def forward(self, X, *, backend="loops"):
        """A^L for the inputs X; see `loopbp.forward`."""
        if backend != "loops":
            return gradients.forward(self.W, self.b, X, self.activations, backend=backend)
        X = check_samples(X, self.sizes[0], self.dtype)
        self._check_parameters()
        with self._workspaces.lent(self.sizes, X.shape[1], self.dtype) as workspace:
            A_L = self._output(X, workspace).copy()
        gradients._require_finite("forward pass", self.dtype, A_L)
        return A_L

    def error(self, X, Y, *, backend="loops"):
        """E for inputs X and targets Y; see `loopbp.error`."""
        if backend != "loops":
            return gradients.error(self.W, self.b, X, Y, self.activations, backend=backend)
        X = check_samples(X, self.sizes[0], self.dtype)
        Y = gradients._kernel_array(check_targets(Y, self.sizes[-1], X.shape[1], self.dtype))
        self._check_parameters()
        with self._workspaces.lent(self.sizes, X.shape[1], self.dtype) as workspace:
            E = float(passes.error_from_output(self._output(X, workspace), Y))
        gradients._require_finite("error", self.dtype, E)
        return E

    def gradient(self, X, Y, *, backend="loops"):
        """(E, dW, db) for inputs X and targets Y; see `loopbp.gradient`.

        With the loops backend, dW and db are views of one new flat array laid out like
        `theta`.
        """
        if backend != "loops":
            return gradients.gradient(self.W, self.b, X, Y, self.activations, backend=backend)
        m = gradients._ready_samples(X, Y, self.sizes[0], self.sizes[-1], self.dtype)
        if not m:
            # Anything else (other dtypes, layouts, array-likes, bad input) is checked and
            # converted here; ready arrays go straight to the kernels, which check finiteness.
            X = gradients._kernel_array(check_samples(X, self.sizes[0], self.dtype))
            Y = gradients._kernel_array(check_targets(Y, self.sizes[-1], X.shape[1], self.dtype))
            m = X.shape[1]
        E, grad = gradients._checked_gradient(
            self.theta, self._sizes, self._codes, X, Y, self._workspaces, self.sizes, m, self._inputs_error
        )
        dW, db = gradients._unpack(grad, self.sizes)
        return E, dW, db

    def _inputs_error(self, X, Y):
        # A non-finite X, Y or theta, found by the kernels: the checks name which.
        X = check_samples(X, self.sizes[0], self.dtype)
        check_targets(Y, self.sizes[-1], X.shape[1], self.dtype)
        check_parameters(self.W, self.b, self.activations)

    def fit(
        self, X, Y, *, learning_rate, epochs, batch_size=None, backend="loops", progress=True, callback=None
    ):
        r"""Train by gradient descent, as the series does, updating the parameters in place.

        Each step is :math:`\theta \leftarrow \theta - \alpha \nabla E`.

        Parameters
        ----------
        X : (n^0, m) array
            The inputs, one sample per column.
        Y : (n^L, m) array
            The targets.
        learning_rate : float
            alpha, positive.
        epochs : int
            Passes over the data, positive.
        batch_size : int or None
            None (the default) takes one full-batch step per epoch, as the series does. An
            int gives mini-batch SGD: each epoch shuffles the samples (with a generator
            seeded by the network's `seed`, so a seeded network trains reproducibly) and
            steps once per batch of `batch_size` samples (the last may be smaller).
        backend : {"loops", "einsum"}
            The gradient's backend. With the loops backend the epochs run in compiled
            code (``loopbp.training``), many per call from Python, about 0.05 s' worth:
            the steps, the shuffles and the gathering of batches allocate nothing and
            never return to Python in between. The einsum backend steps from Python.
        progress : bool
            Show a progress bar with the current E (needs tqdm, and only when standard
            error is a terminal).
        callback : callable or None
            ``callback(epoch, E)`` after each epoch; training stops early if it returns True.
            With a callback, the loops backend returns to Python after every epoch to
            call it.

        Returns
        -------
        history : (epochs_run,) float64 array
            ``history[k]`` is E in epoch k at the parameters its gradient was computed at:
            the full-batch E, or for mini-batches their size-weighted mean.

        Raises
        ------
        TrainingDiverged
            E, the gradient or a parameter became non-finite; the message names the epoch.
            The network keeps the last finite parameters.
        KeyboardInterrupt
            Ctrl-C stops training cleanly: parameters change only inside compiled steps,
            which it cannot cut short, so the network keeps those of the last finished
            step (with the loops backend, of the last finished epoch). The exception's
            ``history`` holds E of each finished epoch.

        Examples
        --------
        >>> import numpy as np, loopbp
        >>> net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
        >>> X = np.linspace(0, 2 * np.pi, 100)[None, :]
        >>> history = net.fit(X, np.sin(X), learning_rate=0.1, epochs=500, progress=False)
        >>> bool(history[-1] < history[0])
        True
        """
        check_backend(backend)
        learning_rate = _positive_number(learning_rate, "learning_rate", integer=False)
        epochs = int(_positive_number(epochs, "epochs", integer=True))
        X = gradients._kernel_array(check_samples(X, self.sizes[0], self.dtype))
        m = X.shape[1]
        Y = gradients._kernel_array(check_targets(Y, self.sizes[-1], m, self.dtype))
        if batch_size is not None:
            batch_size = int(_positive_number(batch_size, "batch_size", integer=True))
        if batch_size is None or batch_size >= m:
            batch_size = m
        if not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be True or False, got {progress!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
        self._check_parameters()

        # NaN until an epoch finishes: on Ctrl-C the finite head is what was done.
        history = np.full(epochs, np.nan)
        bar = _progress_bar(epochs) if progress else None
        try:
            if backend == "loops":
                epochs_run = self._fit_compiled(
                    X, Y, learning_rate, epochs, batch_size, history, bar, callback
                )
            else:
                epochs_run = self._fit_python(X, Y, learning_rate, epochs, batch_size, history, bar, callback)
        except KeyboardInterrupt as interrupt:
            # Steps change theta inside compiled code only, which Ctrl-C cannot cut short:
            # the parameters are those of the last finished step.
            finished = int(np.argmin(np.isfinite(history))) if not np.isfinite(history).all() else epochs
            interrupt.history = history[:finished]
            if hasattr(interrupt, "add_note"):  # Python 3.11+
                interrupt.add_note(
                    f"loopbp: Network.fit was interrupted after {finished} finished epochs; the network "
                    f"holds the parameters of the last finished step, and this exception's .history "
                    f"the E of each finished epoch"
                )
            raise
        finally:
            if bar is not None:
                bar.close()
        return history[:epochs_run]

    def _fit_compiled(self, X, Y, learning_rate, epochs, batch_size, history, bar, callback):
        # Epochs run in compiled code, many per call (training.Trainer chooses how many);
        # a callback, called after every epoch, brings Python back every epoch.
        trainer = training.Trainer(self, X, Y, learning_rate, batch_size)
        epoch = 0
        while epoch < epochs:
            count = 1 if callback is not None else trainer.epochs_per_call(epochs - epoch)
            finished = trainer.run(epoch, count, history)
            if bar is not None and finished:
                bar.set_postfix(E=f"{history[epoch + finished - 1]:.4g}", refresh=False)
                bar.update(finished)
            if finished < count:
                raise TrainingDiverged(epoch + finished, learning_rate)
            epoch += count
            if callback is not None and callback(epoch - 1, float(history[epoch - 1])) is True:
                break
        return epoch

    def _fit_python(self, X, Y, learning_rate, epochs, batch_size, history, bar, callback):
        # The einsum backend: one step per Python iteration, as the reference is NumPy code.
        m = X.shape[1]
        step = _EinsumStepper(self, learning_rate)
        bounds = [(start, min(start + batch_size, m)) for start in range(0, m, batch_size)]
        state = training.shuffle_state(self.seed)
        order = np.arange(m, dtype=np.int64)
        every = max(1, epochs // 200)
        for epoch in range(epochs):
            if len(bounds) == 1:
                E = step(X, Y, epoch)
            else:
                training.shuffle(order, state)
                E = 0.0
                for start, stop in bounds:
                    columns = order[start:stop]
                    E += step(X[:, columns], Y[:, columns], epoch) * (stop - start)
                E /= m
            history[epoch] = E
            if bar is not None and (epoch + 1) % every == 0:
                bar.set_postfix(E=f"{E:.4g}", refresh=False)
                bar.update(every)
            if callback is not None and callback(epoch, E) is True:
                return epoch + 1
        return epochs

    def save(self, path):
        """Write the sizes, activations, dtype and parameters to `path` as a .npz file.

        The file holds plain arrays only (no pickles); `loopbp.load` reads it back bit
        for bit. `path` is used exactly as given (no ".npz" is appended).
        """
        with open(path, "wb") as f:
            np.savez(
                f,
                format=np.array(FILE_FORMAT),
                version=np.array(FILE_VERSION),
                sizes=np.array(self.sizes, dtype=np.int64),
                activations=np.array(self.activations),
                dtype=np.array(self.dtype.name),
                theta=self.theta,
            )


def _progress_bar(epochs):
    # A bar only for a person watching: not in logs, pipes or tests.
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, unit="epoch", leave=True)


class _EinsumStepper:
    """One gradient-descent step of `Network.fit` with the einsum backend: E, then theta in place."""

    def __init__(self, net, learning_rate):
        self.net, self.learning_rate = net, learning_rate
        self.grad = np.empty_like(net.theta)
        # The step size in the parameters' dtype, so float32 training stays float32.
        self.alpha = net.dtype.type(learning_rate)

    def __call__(self, X, Y, epoch):
        net, grad = self.net, self.grad
        try:
            E, dW, db = gradients.gradient(net.W, net.b, X, Y, net.activations, backend="einsum")
        except ValueError:  # the overflow check: the inputs were validated already
            raise TrainingDiverged(epoch, self.learning_rate) from None
        grad_W, grad_b = gradients._unpack(grad, net.sizes)
        for target, source in zip(grad_W + grad_b, dW + db):
            target[...] = source
        if not training.descend(net.theta, grad, self.alpha):
            raise TrainingDiverged(epoch, self.learning_rate)
        return E


def load(path):
    """Read a network written by `Network.save`.

    The file is opened without pickle support, so it cannot run code, and every field
    is checked as user input is: a truncated, tampered or foreign file raises a
    ``ValueError`` that says what is wrong.

    Examples
    --------
    >>> import os, tempfile, numpy as np, loopbp
    >>> net = loopbp.Network([2, 3, 1], ["tanh", "identity"], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
    >>> net.save(path)
    >>> bool(np.array_equal(loopbp.load(path).theta, net.theta))
    True
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__} {path!r}") from None
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"{path!s} is not a readable loopbp network file: it holds a single array, not the .npz "
            f"archive Network.save writes"
        )
    if not magic.startswith(b"PK\x03\x04"):
        # NumPy would try such a file as a pickle and advise allow_pickle=, which load
        # never passes.
        raise ValueError(
            f"{path!s} is not a readable loopbp network file: it is not a .npz archive "
            f"(Network.save writes a zip of .npy arrays)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = sorted(set(FILE_KEYS) - set(f.files))
            extra = sorted(set(f.files) - set(FILE_KEYS))
            if missing or extra:
                raise ValueError(f"it lacks {missing} and has unexpected {extra}; expected {list(FILE_KEYS)}")
            fields = {key: f[key] for key in FILE_KEYS}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # zip, npy-header and pickle refusals all mean the same here
        reason = str(err)
        if "pickle" in reason:
            reason = (
                "it holds pickled Python objects; loopbp's files hold plain arrays and are never unpickled"
            )
        raise ValueError(f"{path!s} is not a readable loopbp network file: {reason}") from None
    return _network_from_fields(fields, path)


def _field(fields, key, path, kind, ndim):
    value = fields[key]
    if value.dtype.kind not in kind or value.ndim != ndim:
        raise ValueError(
            f"{path!s}: field {key!r} must be a {ndim}-D array of kind {kind!r}, "
            f"got {value.ndim}-D {value.dtype}"
        )
    return value


def _network_from_fields(fields, path):
    fmt = _field(fields, "format", path, "U", 0)
    if str(fmt) != FILE_FORMAT:
        raise ValueError(f"{path!s}: format must be {FILE_FORMAT!r}, got {str(fmt)!r}")
    version = _field(fields, "version", path, "iu", 0)
    if int(version) != FILE_VERSION:
        raise ValueError(f"{path!s}: version must be {FILE_VERSION}, got {int(version)}")
    sizes = _field(fields, "sizes", path, "iu", 1)
    if sizes.size < 2 or np.any(sizes < 1):
        raise ValueError(f"{path!s}: sizes must list at least two widths, each >= 1, got {sizes.tolist()}")
    activations = _field(fields, "activations", path, "U", 1).tolist()
    if len(activations) != sizes.size - 1 or any(g not in ACTIVATIONS for g in activations):
        raise ValueError(
            f"{path!s}: activations must be {sizes.size - 1} names from {ACTIVATIONS}, got {activations}"
        )
    dtype = str(_field(fields, "dtype", path, "U", 0))
    if dtype not in ("float32", "float64"):
        raise ValueError(f"{path!s}: dtype must be 'float32' or 'float64', got {dtype!r}")
    theta = _field(fields, "theta", path, "f", 1)
    net = Network(sizes.tolist(), activations, dtype=dtype, seed=0)
    if theta.dtype != net.dtype or theta.shape != net.theta.shape:
        raise ValueError(
            f"{path!s}: theta must be {net.n_parameters} {dtype} values for sizes {sizes.tolist()}, "
            f"got {theta.size} {theta.dtype}"
        )
    if not passes.all_finite(np.ascontiguousarray(theta)):
        raise ValueError(f"{path!s}: theta holds non-finite values")
    net.theta[...] = theta
    return net
