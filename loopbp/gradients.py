"""The public functions: forward pass, error and gradient, by backend.

``backend="loops"`` (the default) runs the Numba loop kernels through the engine
(``loopbp.cpu.engine``); ``backend="einsum"`` runs the NumPy reference of
``loopbp.einsum_reference``; ``backend="cuda"`` runs the CUDA kernels of
``loopbp.cuda.kernels`` on a GPU (``loopbp.cuda.engine``; the ``gpu`` extra). All take
and return the same things, and all validate their arguments first
(``loopbp.validation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import distributed, einsum_reference, layout
from .cpu import engine
from .errors import require_finite
from .validation import check_backend, check_parameters, check_samples, check_targets

Parameters = Sequence[ArrayLike]


def _validated(W, b, X, Y, activations, backend):
    check_backend(backend)
    W, b, names, _, dtype = check_parameters(W, b, activations)
    X = check_samples(X, W[0].shape[1], dtype)
    if Y is not None:
        Y = check_targets(Y, W[-1].shape[0], X.shape[1], dtype)
    return W, b, X, Y, names, dtype


def _compiled(W, b, X, Y, names, dtype, backend="loops"):
    # The engine of a compiled backend (loops or cuda), theta, and the kernels' X and Y,
    # for validated arguments.
    sizes = (W[0].shape[1], *(w.shape[0] for w in W))
    if backend == "cuda":
        from .cuda.engine import cuda_engine_for  # needs the gpu extra: imported on first use

        compiled = cuda_engine_for(sizes, names, dtype)
    else:
        compiled = engine.engine_for(sizes, names, dtype)
    Y = None if Y is None else engine.kernel_array(Y)
    return compiled, layout.pack(W, b), engine.kernel_array(X), Y


def forward(
    W: Parameters, b: Parameters, X: ArrayLike, activations: Sequence[str], *, backend: str = "loops"
) -> np.ndarray:
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
    backend : {"loops", "einsum", "cuda"}
        The Numba loop kernels (default), the NumPy einsum reference, or the CUDA
        kernels on a GPU (needs the ``gpu`` extra; they agree with the loops to rounding,
        not bitwise).

    Returns
    -------
    A_L : (n^L, m) array
        The output, in the parameters' dtype.
    """
    W, b, X, _, names, dtype = _validated(W, b, X, None, activations, backend)
    if backend == "einsum":
        with np.errstate(over="ignore", invalid="ignore"):
            A_L = einsum_reference.forward_pass(W, b, X, names)[-1]
        require_finite("forward pass", dtype, A_L)
        return A_L
    compiled, theta, X, _ = _compiled(W, b, X, None, names, dtype, backend)
    return compiled.forward(theta, X)


def error(
    W: Parameters,
    b: Parameters,
    X: ArrayLike,
    Y: ArrayLike,
    activations: Sequence[str],
    *,
    backend: str = "loops",
) -> float:
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
    backend : {"loops", "einsum", "cuda"}
        The Numba loop kernels (default), the NumPy einsum reference, or the CUDA
        kernels on a GPU (needs the ``gpu`` extra; they agree with the loops to rounding,
        not bitwise).

    Returns
    -------
    E : float
        Accumulated in float64 for either dtype, because it sums n^L m terms.
    """
    W, b, X, Y, names, dtype = _validated(W, b, X, Y, activations, backend)
    if backend == "einsum":
        with np.errstate(over="ignore", invalid="ignore"):
            A_L = einsum_reference.forward_pass(W, b, X, names)[-1]
            E = einsum_reference.error_from_output(A_L, Y)
        require_finite("error", dtype, E)
        return E
    compiled, theta, X, Y = _compiled(W, b, X, Y, names, dtype, backend)
    return compiled.error(theta, X, Y)


def gradient(
    W: Parameters,
    b: Parameters,
    X: ArrayLike,
    Y: ArrayLike,
    activations: Sequence[str],
    *,
    backend: str = "loops",
    scheduler: Any = None,
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
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
    backend : {"loops", "einsum", "cuda"}
        The Numba loop kernels (default), the NumPy einsum reference, or the CUDA
        kernels on a GPU (needs the ``gpu`` extra; they agree with the loops to rounding,
        not bitwise).
    scheduler : None, "local", str or distributed.Client
        For ``dask.array`` X and Y only, chunked along the samples: where the chunks run
        (``loopbp.distributed``; None takes the current Dask client, else a local cluster).
        Each chunk's sums are computed by the loop kernels where it lives and added in an
        order fixed by the chunking. Needs ``pip install "loopbp[distributed]"``.

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
    if distributed.wants_chunks(X, Y, scheduler):
        W, b, names, _, _ = check_parameters(W, b, activations)
        sizes = (W[0].shape[1], *(w.shape[0] for w in W))
        theta = layout.pack(W, b)
        E, grad = distributed.gradient(theta, sizes, names, X, Y, backend=backend, scheduler=scheduler)
        dW, db = layout.unpack(grad, sizes)
        return E, dW, db
    if backend == "loops":
        compiled = engine.ready_engine(W, b, activations)
        if compiled is not None and compiled.ready_samples(X, Y):
            # The thin path: everything is already what the kernels take, and they check
            # finiteness; on a non-finite input, the full checks name it.
            E, grad = compiled.gradient(
                None, X, Y, lambda X, Y: _validated(W, b, X, Y, activations, backend), parameters=(W, b)
            )
            dW, db = compiled.unpack(grad)
            return E, dW, db
    W, b, X, Y, names, dtype = _validated(W, b, X, Y, activations, backend)
    if backend == "einsum":
        with np.errstate(over="ignore", invalid="ignore"):
            E, dW, db = einsum_reference.gradient(W, b, X, Y, names)
        require_finite("gradient", dtype, E, *dW, *db)
        return E, dW, db
    compiled, theta, X, Y = _compiled(W, b, X, Y, names, dtype, backend)
    E, grad = compiled.gradient(theta, X, Y)
    dW, db = layout.unpack(grad, compiled.sizes)
    return E, dW, db
