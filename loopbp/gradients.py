"""The public functions: forward pass, error and gradient, by backend.

``backend="loops"`` (the default) runs the Numba loop kernels (``loopbp.passes``);
``backend="einsum"`` runs the NumPy reference of ``loopbp.einsum_reference``. Both take
and return the same things, and both validate their arguments first
(``loopbp.validation``).
"""

import math

import numpy as np

from . import einsum_reference, passes
from .activations import ACTIVATIONS, activation_code
from .validation import FLOAT_DTYPES, check_backend, check_parameters, check_samples, check_targets


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


def _ready(a, rows, cols, dtype):
    # Whether `a` can go to the kernels as it is: an ndarray of the dtype and shape, in
    # the layout the kernels are compiled for. One attribute at a time, cheapest first.
    if type(a) is not np.ndarray or a.dtype != dtype or a.ndim != 2:
        return False
    rows_a, cols_a = a.shape
    if rows_a != rows or cols_a == 0 or (cols is not None and cols_a != cols):
        return False
    flags = a.flags
    return flags.c_contiguous and flags.writeable and flags.aligned


def _ready_samples(X, Y, n_in, n_out, dtype):
    """m if X and Y are ready for the kernels as they are (see `_ready`), else 0."""
    if _ready(X, n_in, None, dtype) and _ready(Y, n_out, X.shape[1], dtype):
        return X.shape[1]
    return 0


def _checked_gradient(theta, sizes_array, codes, X, Y, pool, sizes, m, inputs_error):
    """E and a new flat gradient, X and Y ready for the kernels; finiteness checked by them.

    `inputs_error(X, Y)` is called to raise the error that names a non-finite input.
    """
    workspace = pool.take(sizes, m, theta.dtype)
    try:
        grad = np.empty_like(theta)
        status, E = passes.run_checked_gradient(theta, sizes_array, codes, X, Y, grad, workspace)
    finally:
        pool.give(workspace)
    if status == passes.INPUT_NOT_FINITE:
        inputs_error(X, Y)
    if status != passes.FINITE:
        raise _overflow("gradient", theta.dtype)
    return E, grad


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
    if backend == "loops":
        ready = _ready_parameters(W, b, activations)
        if ready is not None:
            sizes, codes, dtype = ready
            m = _ready_samples(X, Y, sizes[0], sizes[-1], dtype)
            if m:
                # The thin path: everything is already what the kernels take, and they
                # check finiteness; on a non-finite input, the full checks below name it.
                theta = np.concatenate([a.ravel() for pair in zip(W, b) for a in pair])
                E, grad = _checked_gradient(
                    theta,
                    np.array(sizes, dtype=np.int64),
                    codes,
                    X,
                    Y,
                    _workspaces,
                    sizes,
                    m,
                    lambda X, Y: _validated(W, b, X, Y, activations, backend),
                )
                dW, db = _unpack(grad, sizes)
                return E, dW, db
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


#: Activation codes of the name tuples seen so far (a handful per program).
_codes = {}


def _ready_parameters(W, b, activations):
    """(sizes, codes, dtype) if W, b and activations need no conversion, else None.

    Ready means: lists or tuples of L ndarrays of one float dtype, 2-D W and 1-D b of
    matching shapes, and known activation names. Finiteness is left to the kernels.
    Anything else returns None, and the full checks of `loopbp.validation` take over.
    """
    if type(W) not in (list, tuple) or type(b) not in (list, tuple) or type(activations) not in (list, tuple):
        return None
    L = len(W)
    if L == 0 or len(b) != L:
        return None
    names = tuple(activations)
    try:
        codes = _codes.get(names)
    except TypeError:  # an unhashable entry: not a name, and the full checks say so
        return None
    if codes is None:
        if len(names) != L or not all(isinstance(g, str) and g in ACTIVATIONS for g in names):
            return None
        codes = _codes[names] = np.array([activation_code(g) for g in names], dtype=np.int64)
    elif len(codes) != L:
        return None
    if type(W[0]) is not np.ndarray:
        return None
    dtype = W[0].dtype
    # (np.dtype compares equal to None, so the type test above must come first.)
    if dtype not in FLOAT_DTYPES or not dtype.isnative:
        return None
    sizes = [0] * (L + 1)
    for k in range(L):
        w, v = W[k], b[k]
        if type(w) is not np.ndarray or type(v) is not np.ndarray or w.dtype != dtype or v.dtype != dtype:
            return None
        if w.ndim != 2 or v.ndim != 1:
            return None
        n_out, n_in = w.shape
        if n_out == 0 or n_in == 0 or v.shape[0] != n_out or (k and n_in != sizes[k]):
            return None
        sizes[k], sizes[k + 1] = n_in, n_out
    return tuple(sizes), codes, dtype
