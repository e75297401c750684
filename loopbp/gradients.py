"""The public functions: forward pass, error and gradient, by backend.

``backend="loops"`` (the default) runs the Numba loop kernels (``loopbp.passes``);
``backend="einsum"`` runs the NumPy reference of ``loopbp.einsum_reference``. Both take
and return the same things, and both validate their arguments first
(``loopbp.validation``).
"""

import math

import numpy as np

from . import einsum_reference, passes
from .validation import check_backend, check_parameters, check_samples, check_targets


def _overflow(what, dtype):
    # Finite inputs can still overflow (huge weights, identity layers); say so rather
    # than hand back inf or NaN.
    return ValueError(
        f"the {what} overflowed in {dtype}: W, b, X or Y are too large in magnitude for this "
        f"dtype, and the result is not finite"
    )


def _require_finite(what, dtype, *values):
    for v in values:
        if not np.all(np.isfinite(v)):
            raise _overflow(what, dtype)


def _kernel_array(a):
    # The kernels are compiled for writeable C-contiguous arrays only; copying the
    # rare other layouts keeps one compiled version per dtype and leaves the
    # caller's array untouched.
    if a.flags.c_contiguous and a.flags.writeable and a.flags.aligned:
        return a
    return np.array(a, order="C")


def _pack(W, b, dtype):
    """Sizes, and W^1, b^1, ..., W^L, b^L copied into one flat vector theta."""
    sizes = np.array([W[0].shape[1]] + [w.shape[0] for w in W], dtype=np.int64)
    theta = np.empty(sum(w.size + v.size for w, v in zip(W, b)), dtype=dtype)
    dW, db = _unpack(theta, sizes)
    for target, source in zip(dW + db, list(W) + list(b)):
        target[...] = source
    return sizes, theta


def _unpack(flat, sizes):
    """Lists of the views of `flat` (laid out like theta) that are W^l and b^l."""
    # Python ints: slicing with NumPy integers costs several times more.
    sizes = sizes if isinstance(sizes, tuple) else tuple(int(n) for n in sizes)
    dW, db = [], []
    offset = 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        dW.append(flat[offset : offset + n_out * n_in].reshape(n_out, n_in))
        offset += n_out * n_in
        db.append(flat[offset : offset + n_out])
        offset += n_out
    return dW, db


def _validated(W, b, X, Y, activations, backend):
    check_backend(backend)
    W, b, names, codes, dtype = check_parameters(W, b, activations)
    X = check_samples(X, W[0].shape[1], dtype)
    if Y is not None:
        Y = check_targets(Y, W[-1].shape[0], X.shape[1], dtype)
    return W, b, X, Y, names, codes, dtype


#: The functions below keep up to 8 workspaces of at most 8 MiB between calls: fresh
#: buffers cost a page fault per 4 KiB on first touch, most of a small network's time.
#: Larger ones are made for each call and freed after it.
_workspaces = passes.WorkspacePool(slots=8, max_bytes=8 * 2**20)


def _loops_output(theta, sizes, codes, X, workspace):
    """A^L from the loop kernels, as a view of the workspace's activations."""
    passes.run_forward(theta, sizes, codes, _kernel_array(X), workspace)
    size = sizes[-1] * X.shape[1]
    return workspace.activations[workspace.activations.size - size :].reshape(sizes[-1], X.shape[1])


def _loops_gradient(theta, sizes, codes, X, Y, workspace):
    """E and a new flat gradient from the loop kernels; X and Y validated.

    Raises ``ValueError`` if E or the gradient is not finite.
    """
    grad = np.empty_like(theta)
    E = passes.run_gradient(theta, sizes, codes, _kernel_array(X), _kernel_array(Y), grad, workspace)
    if not (math.isfinite(E) and passes.all_finite(grad)):
        raise _overflow("gradient", theta.dtype)
    return float(E), grad


def forward(W, b, X, activations, *, backend="loops"):
    """The network's output A^L for the inputs X.

    Parameters
    ----------
    W : list or tuple of L 2-D arrays
        ``W[l-1]`` is W^l, of shape (n^l, n^(l-1)). All parameters must share one
        dtype, float32 or float64, which is the dtype of the whole computation.
    b : list or tuple of L 1-D arrays
        ``b[l-1]`` is b^l, of shape (n^l,).
    X : (n^0, m) array
        The inputs, one sample per column (A^0). It must have the parameters'
        dtype; an integer or bool array is converted to it.
    activations : sequence of L str
        The name of g^l for each layer: one of ``loopbp.ACTIVATIONS``.
    backend : {"loops", "einsum"}
        The Numba loop kernels (default) or the NumPy einsum reference.

    Returns
    -------
    A_L : (n^L, m) array
        The output, in the parameters' dtype.
    """
    W, b, X, _, names, codes, dtype = _validated(W, b, X, None, activations, backend)
    if backend == "einsum":
        with np.errstate(over="ignore", invalid="ignore"):
            A_L = einsum_reference.forward_pass(W, b, X, names)[-1]
    else:
        sizes, theta = _pack(W, b, dtype)
        with _workspaces.lent(sizes, X.shape[1], dtype, backward=False) as workspace:
            A_L = _loops_output(theta, sizes, codes, X, workspace).copy()
    _require_finite("forward pass", dtype, A_L)
    return A_L


def error(W, b, X, Y, activations, *, backend="loops"):
    """The error E = 1/(2m) sum_c sum_i (A^L_ic - Y_ic)^2.

    Parameters
    ----------
    W : list or tuple of L 2-D arrays
        ``W[l-1]`` is W^l, of shape (n^l, n^(l-1)). All parameters must share one
        dtype, float32 or float64, which is the dtype of the whole computation.
    b : list or tuple of L 1-D arrays
        ``b[l-1]`` is b^l, of shape (n^l,).
    X : (n^0, m) array
        The inputs, one sample per column (A^0). It must have the parameters'
        dtype; an integer or bool array is converted to it.
    Y : (n^L, m) array
        The targets, one sample per column, converted like X.
    activations : sequence of L str
        The name of g^l for each layer: one of ``loopbp.ACTIVATIONS``.
    backend : {"loops", "einsum"}
        The Numba loop kernels (default) or the NumPy einsum reference.

    Returns
    -------
    E : float
        Accumulated in float64 for either dtype, because it sums n^L m terms.
    """
    W, b, X, Y, names, codes, dtype = _validated(W, b, X, Y, activations, backend)
    if backend == "einsum":
        with np.errstate(over="ignore", invalid="ignore"):
            A_L = einsum_reference.forward_pass(W, b, X, names)[-1]
            E = einsum_reference.error_from_output(A_L, Y)
    else:
        sizes, theta = _pack(W, b, dtype)
        with _workspaces.lent(sizes, X.shape[1], dtype, backward=False) as workspace:
            A_L = _loops_output(theta, sizes, codes, X, workspace)
            E = float(passes.error_from_output(A_L, _kernel_array(Y)))
    _require_finite("error", dtype, E)
    return E


def gradient(W, b, X, Y, activations, *, backend="loops"):
    """The error E and its gradient with respect to every W^l and b^l.

    Parameters
    ----------
    W : list or tuple of L 2-D arrays
        ``W[l-1]`` is W^l, of shape (n^l, n^(l-1)). All parameters must share one
        dtype, float32 or float64, which is the dtype of the whole computation.
    b : list or tuple of L 1-D arrays
        ``b[l-1]`` is b^l, of shape (n^l,).
    X : (n^0, m) array
        The inputs, one sample per column (A^0). It must have the parameters'
        dtype; an integer or bool array is converted to it.
    Y : (n^L, m) array
        The targets, one sample per column, converted like X.
    activations : sequence of L str
        The name of g^l for each layer: one of ``loopbp.ACTIVATIONS``.
    backend : {"loops", "einsum"}
        The Numba loop kernels (default) or the NumPy einsum reference.

    Returns
    -------
    E : float
        The error, as in `error`.
    dW : list of L arrays
        ``dW[l-1]`` is dE/dW^l, shaped and typed like ``W[l-1]``.
    db : list of L arrays
        ``db[l-1]`` is dE/db^l, shaped and typed like ``b[l-1]``.

    Examples
    --------
    >>> import numpy as np, loopbp
    >>> net = loopbp.Network([2, 3, 1], ["sigmoid", "identity"], seed=0)
    >>> X, Y = np.ones((2, 4)), np.zeros((1, 4))
    >>> E, dW, db = loopbp.gradient(net.W, net.b, X, Y, net.activations)
    >>> [g.shape for g in dW], [g.shape for g in db]
    ([(3, 2), (1, 3)], [(3,), (1,)])
    """
    W, b, X, Y, names, codes, dtype = _validated(W, b, X, Y, activations, backend)
    if backend == "einsum":
        with np.errstate(over="ignore", invalid="ignore"):
            E, dW, db = einsum_reference.gradient(W, b, X, Y, names)
        _require_finite("gradient", dtype, E, *dW, *db)
        return E, dW, db
    sizes, theta = _pack(W, b, dtype)
    with _workspaces.lent(sizes, X.shape[1], dtype) as workspace:
        E, grad = _loops_gradient(theta, sizes, codes, X, Y, workspace)
    dW, db = _unpack(grad, sizes)
    return E, dW, db
