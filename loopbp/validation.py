"""Checks on every argument of the public API, before anything reaches Numba.

One function per concept, used by every caller: the functions of ``loopbp.gradients``,
`Network` and its `fit`, `check_gradient`, `load` (which adds the file name to the
message) and the command line (which turns the errors into usage errors).

Each check raises a ``TypeError`` (wrong kind of thing) or a ``ValueError`` (right kind,
wrong value) whose message names the argument, says what was expected and what was
given. The checks never modify their inputs; where an array must be converted, a new
array is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .activations import activation_code

#: The float dtypes that loopbp computes in.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: The backends of `loopbp.gradient`, `loopbp.forward`, `loopbp.error` and `Network`.
BACKENDS = ("loops", "einsum", "cuda")

#: Initialisations `Network` offers; see its docstring.
INITS = ("series", "glorot", "he")


def check_backend(backend: Any) -> str:
    """Return `backend` if it is one of `BACKENDS`."""
    return check_choice(backend, "backend", BACKENDS)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return `value` if it is one of the strings `choices`."""
    if not isinstance(value, str) or value not in choices:
        known = ", ".join(repr(k) for k in choices)
        raise ValueError(f"{name} must be one of {known}, got {value!r}")
    return value


def _ordered(value: Any) -> bool:
    # A list, tuple, range or array: something with an order, as the layers have; not a
    # string, and not a set or dict, whose order is not the caller's.
    return isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_sizes(sizes: Any) -> tuple[int, ...]:
    """The layer widths n^0, ..., n^L as a tuple of Python ints, each at least 1, L >= 1."""
    if not _ordered(sizes):
        raise TypeError(f"sizes must be a sequence of layer widths n^0, ..., n^L, got {type(sizes).__name__}")
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must list at least n^0 and n^1 (two widths), got {sizes!r}")
    for k, n in enumerate(sizes):
        if not _is_int(n):
            raise TypeError(f"sizes[{k}] must be an int, got {type(n).__name__} {n!r}")
        if n < 1:
            raise ValueError(f"sizes[{k}] must be at least 1, got {n}")
    return tuple(int(n) for n in sizes)


def check_activations(activations: Any, L: int, context: str) -> tuple[str, ...]:
    """The names of g^1, ..., g^L as a tuple, each one of ``loopbp.ACTIVATIONS``.

    `context` ends the message on a wrong count: where L comes from ("as in W",
    "for sizes (3, 4, 1)").
    """
    if isinstance(activations, (str, bytes)):
        raise TypeError(
            f"activations must be a sequence of {L} names, one per layer, got the string {activations!r}; "
            f"for one layer write [{activations!r}]"
        )
    if not _ordered(activations):
        raise TypeError(f"activations must be a sequence of {L} names, got {type(activations).__name__}")
    activations = tuple(activations)
    if len(activations) != L:
        raise ValueError(
            f"activations must have one name per layer, L = {L} {context}, got {len(activations)}"
        )
    for g in activations:
        activation_code(g)
    return activations


def activation_codes(activations: Sequence[str]) -> np.ndarray:
    """The (L,) int64 codes of checked activation names, as the kernels take them."""
    return np.array([activation_code(g) for g in activations], dtype=np.int64)


def check_dtype(dtype: Any) -> np.dtype:
    """`dtype` as a numpy dtype, float32 or float64."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_seed(seed: Any, *, number_only: bool = False) -> Any:
    """`seed` if it is None, a non-negative int or a ``numpy.random.Generator``.

    With `number_only`, a non-negative int alone (a seed that another process must
    rebuild the same generator from).
    """
    if not number_only and (seed is None or isinstance(seed, np.random.Generator)):
        return seed
    if not _is_int(seed) or seed < 0:
        wanted = "a non-negative int" if number_only else "None, a non-negative int or a numpy Generator"
        raise TypeError(f"seed must be {wanted}, got {seed!r}")
    return seed


def check_positive(value: Any, name: str, *, integer: bool) -> Any:
    """`value` if it is a positive, finite number (an int, if `integer`)."""
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        wanted = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}")
    try:
        # A count is finite however large; a number must be finite as a float, since the
        # computation takes it as one (an int of 400 digits is not).
        finite = integer or math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not (value > 0 and finite):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """`value` as a bool, if it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_callback(callback: Any) -> Any:
    """`callback` if it is callable or None."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    return callback


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


def _check_finite(a, name, first_column=0):
    # `first_column`: where `a` starts in a larger array whose columns are samples (a
    # chunk's), so that the index names the sample of the whole.
    finite = np.isfinite(a)
    if not finite.all():
        where = tuple(int(k) for k in np.argwhere(~finite)[0])
        value = a[where]
        if first_column:
            where = (*where[:-1], where[-1] + first_column)
        raise ValueError(f"{name} must be finite, got {value} at index {where}")


def check_parameters(
    W: Any, b: Any, activations: Any
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[str, ...], np.ndarray, np.dtype]:
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
    L = len(W)
    if L == 0:
        raise ValueError("W must hold at least one layer's weights, got an empty sequence")
    if len(b) != L:
        raise ValueError(f"b must have one vector per layer, L = {L} as in W, got {len(b)}")
    names = check_activations(activations, L, "as in W")
    codes = activation_codes(names)

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
    return W, b, names, codes, dtype


def _data_in_dtype(a, name, dtype, first_column=0):
    # X or Y, of the right shape: integer and bool arrays converted to the parameters'
    # dtype, any other float refused (a silent cast would hide a float32/float64 mix-up).
    if a.dtype.kind in "biu":
        a = a.astype(dtype)
    elif a.dtype != dtype:
        raise TypeError(
            f"{name} must have the parameters' dtype {dtype}, got {a.dtype}; convert it with "
            f"{name}.astype(np.{dtype})"
        )
    _check_finite(a, name, first_column)
    return a


def check_samples(
    X: Any, n_inputs: int, dtype: np.dtype, name: str = "X", first_column: int = 0
) -> np.ndarray:
    """Validate X, of shape (n^0, m), converting integer or bool arrays to `dtype`.

    `first_column` is where X starts if it is a chunk of a larger X, for the messages.
    """
    X = _as_array(X, name)
    _check_kind(X, name, allow_integer=True)
    _check_rank(X, name, 2, f"({n_inputs}, m)")
    if X.shape[0] != n_inputs:
        raise ValueError(
            f"{name} must have n^0 = {n_inputs} rows (one sample per column), got shape {X.shape}"
        )
    if X.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sample (m >= 1), got shape {X.shape}")
    return _data_in_dtype(X, name, dtype, first_column)


def check_targets(Y: Any, n_outputs: int, m: int, dtype: np.dtype, first_column: int = 0) -> np.ndarray:
    """Validate Y, of shape (n^L, m), converting integer or bool arrays to `dtype` (see
    `check_samples` for `first_column`)."""
    Y = _as_array(Y, "Y")
    _check_kind(Y, "Y", allow_integer=True)
    _check_rank(Y, "Y", 2, f"({n_outputs}, {m})")
    if Y.shape != (n_outputs, m):
        raise ValueError(f"Y must have shape (n^L, m) = ({n_outputs}, {m}), got {Y.shape}")
    return _data_in_dtype(Y, "Y", dtype, first_column)


def check_theta(theta: Any, p: int, dtype: np.dtype, sizes: Sequence[int]) -> np.ndarray:
    """Validate a flat parameter vector theta of the network `sizes` (as `load` reads it).

    Returns
    -------
    (p,) array
        theta itself: 1-D, of the dtype, the network's p values, all finite.
    """
    theta = _as_array(theta, "theta")
    if theta.ndim != 1 or theta.dtype != dtype or theta.shape[0] != p:
        raise ValueError(
            f"theta must be {p} {dtype} values for sizes {list(sizes)}, got {theta.size} {theta.dtype} "
            f"in shape {theta.shape}"
        )
    _check_finite(theta, "theta")
    return theta


def _check_chunked(a: Any, name: str, shape_text: str) -> None:
    # What the in-process checks ask of X or Y, asked of a chunked array's metadata (the
    # values are checked chunk by chunk, where they live), with the same messages.
    _check_rank(a, name, 2, shape_text)
    _check_kind(a, name, allow_integer=True)
    if any(np.isnan(n) for n in a.shape):
        raise ValueError(
            f"{name} must have known chunk sizes, got shape {a.shape}; call {name}.compute_chunk_sizes()"
        )


def _chunked_in_dtype(a: Any, name: str, dtype: np.dtype) -> Any:
    if len(a.chunks[0]) != 1:
        raise ValueError(
            f"{name} must be chunked along the samples only, its {a.shape[0]} rows in one chunk, got "
            f"row chunks {a.chunks[0]}; rechunk it with {name}.rechunk({{0: -1}})"
        )
    if a.dtype.kind in "biu":
        return a.astype(dtype)
    if a.dtype != dtype:
        raise TypeError(
            f"{name} must have the parameters' dtype {dtype}, got {a.dtype}; convert it with "
            f"{name}.astype(np.{dtype})"
        )
    return a


def check_chunked_samples(X: Any, n_inputs: int, dtype: np.dtype) -> Any:
    """Validate a ``dask.array`` X of shape (n^0, m), chunked along the samples only.

    The messages are `check_samples`'; integer and bool arrays are converted to `dtype`
    (lazily); the values themselves are checked chunk by chunk where they are computed.
    """
    _check_chunked(X, "X", f"({n_inputs}, m)")
    if X.shape[0] != n_inputs:
        raise ValueError(f"X must have n^0 = {n_inputs} rows (one sample per column), got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"X must hold at least one sample (m >= 1), got shape {X.shape}")
    return _chunked_in_dtype(X, "X", dtype)


def check_chunked_targets(Y: Any, n_outputs: int, X: Any, dtype: np.dtype) -> Any:
    """Validate a ``dask.array`` Y of shape (n^L, m), chunked along the samples as X is."""
    m = X.shape[1]
    _check_chunked(Y, "Y", f"({n_outputs}, {m})")
    if Y.shape != (n_outputs, m):
        raise ValueError(f"Y must have shape (n^L, m) = ({n_outputs}, {m}), got {Y.shape}")
    Y = _chunked_in_dtype(Y, "Y", dtype)
    if Y.chunks[1] != X.chunks[1]:
        raise ValueError(
            f"Y must be chunked along the samples as X is, X's column chunks {X.chunks[1]}, got "
            f"{Y.chunks[1]}; rechunk it with Y.rechunk({{1: X.chunks[1]}})"
        )
    return Y
