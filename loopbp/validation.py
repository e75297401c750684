"""Checks on every argument of the public API, before anything reaches Numba.

Each check raises a ``TypeError`` (wrong kind of thing) or a ``ValueError`` (right kind,
wrong value) whose message names the argument, says what was expected and what was
given. The checks never modify their inputs; where an array must be converted, a new
array is made.
"""

import numpy as np

from .activations import activation_code

#: The float dtypes that loopbp computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

BACKENDS = ("loops", "einsum")


def check_backend(backend):
    """Return `backend` if it is a known backend name."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        known = ", ".join(repr(k) for k in BACKENDS)
        raise ValueError(f"backend must be one of {known}, got {backend!r}")
    return backend


def _sequence(value, name):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"{name} must be a list or tuple with one entry per layer, got {type(value).__name__}"
        )
    return value


def _as_array(value, name):
    try:
        a = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}: {err}") from None
    if not a.dtype.isnative:
        # Byte order is storage, not value: a big-endian float64 is still float64.
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _check_kind(a, name, allow_integer):
    kind = a.dtype.kind
    if kind == "f" and a.dtype in FLOAT_DTYPES:
        return
    if allow_integer and kind in "biu":
        return
    wanted = "float32 or float64"
    if allow_integer:
        wanted += " (or an integer or bool array, which is converted)"
    raise TypeError(f"{name} must have dtype {wanted}, got {a.dtype}")


def _check_rank(a, name, ndim, shape_text):
    if a.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D with shape {shape_text}, got {a.ndim}-D with shape {a.shape}"
        )


def _check_finite(a, name):
    finite = np.isfinite(a)
    if not finite.all():
        where = tuple(int(k) for k in np.argwhere(~finite)[0])
        raise ValueError(f"{name} must be finite, got {a[where]} at index {where}")


def check_parameters(W, b, activations):
    """Validate W, b and activations.

    Returns
    -------
    W, b : lists of arrays
        The parameters as arrays (the caller's arrays where they were arrays already).
    names : tuple of str
    codes : (L,) int64 array
        The activation codes.
    dtype : numpy dtype
        The common float dtype of the parameters.
    """
    W = _sequence(W, "W")
    b = _sequence(b, "b")
    if isinstance(activations, (str, bytes)):
        raise TypeError(
            f"activations must be a sequence of layer activation names, one per layer, got the "
            f"string {activations!r}; for one layer write [{activations!r}]"
        )
    activations = _sequence(activations, "activations")
    L = len(W)
    if L == 0:
        raise ValueError("W must hold at least one layer's weights, got an empty sequence")
    if len(b) != L:
        raise ValueError(f"b must have one vector per layer, L = {L} as in W, got {len(b)}")
    if len(activations) != L:
        raise ValueError(f"activations must have one name per layer, L = {L} as in W, got {len(activations)}")
    codes = np.array([activation_code(g) for g in activations], dtype=np.int64)

    W = [_as_array(w, f"W[{k}]") for k, w in enumerate(W)]
    b = [_as_array(v, f"b[{k}]") for k, v in enumerate(b)]
    for k in range(L):
        _check_kind(W[k], f"W[{k}]", allow_integer=False)
        _check_kind(b[k], f"b[{k}]", allow_integer=False)
    dtype = W[0].dtype
    for name, a in [(f"W[{k}]", W[k]) for k in range(L)] + [(f"b[{k}]", b[k]) for k in range(L)]:
        if a.dtype != dtype:
            raise TypeError(
                f"all parameters must share one float dtype; W[0] is {dtype} but {name} is {a.dtype}"
            )

    for k in range(L):
        _check_rank(W[k], f"W[{k}]", 2, f"(n^{k + 1}, n^{k})")
        n_out, n_in = W[k].shape
        if n_out == 0 or n_in == 0:
            raise ValueError(f"W[{k}] must have at least one row and one column, got shape {W[k].shape}")
        if k > 0 and n_in != W[k - 1].shape[0]:
            raise ValueError(
                f"W[{k}] must have shape (n^{k + 1}, {W[k - 1].shape[0]}) to follow W[{k - 1}] of shape "
                f"{W[k - 1].shape}, got {W[k].shape}"
            )
        _check_rank(b[k], f"b[{k}]", 1, f"({n_out},)")
        if b[k].shape != (n_out,):
            raise ValueError(
                f"b[{k}] must have shape ({n_out},) to match W[{k}] of shape {W[k].shape}, got {b[k].shape}"
            )
    for k in range(L):
        _check_finite(W[k], f"W[{k}]")
        _check_finite(b[k], f"b[{k}]")
    return W, b, tuple(activations), codes, dtype


def check_samples(X, n_inputs, dtype, name="X"):
    """Validate X, of shape (n^0, m), converting integer or bool arrays to `dtype`."""
    X = _as_array(X, name)
    _check_kind(X, name, allow_integer=True)
    _check_rank(X, name, 2, f"({n_inputs}, m)")
    if X.shape[0] != n_inputs:
        raise ValueError(
            f"{name} must have n^0 = {n_inputs} rows (one sample per column), got shape {X.shape}"
        )
    if X.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sample (m >= 1), got shape {X.shape}")
    if X.dtype.kind in "biu":
        X = X.astype(dtype)
    elif X.dtype != dtype:
        raise TypeError(
            f"{name} must have the parameters' dtype {dtype}, got {X.dtype}; convert it with "
            f"{name}.astype(np.{dtype})"
        )
    _check_finite(X, name)
    return X


def check_targets(Y, n_outputs, m, dtype):
    """Validate Y, of shape (n^L, m), converting integer or bool arrays to `dtype`."""
    Y = _as_array(Y, "Y")
    _check_kind(Y, "Y", allow_integer=True)
    _check_rank(Y, "Y", 2, f"({n_outputs}, {m})")
    if Y.shape != (n_outputs, m):
        raise ValueError(f"Y must have shape (n^L, m) = ({n_outputs}, {m}), got {Y.shape}")
    if Y.dtype.kind in "biu":
        Y = Y.astype(dtype)
    elif Y.dtype != dtype:
        raise TypeError(
            f"Y must have the parameters' dtype {dtype}, got {Y.dtype}; convert it with Y.astype(np.{dtype})"
        )
    _check_finite(Y, "Y")
    return Y
