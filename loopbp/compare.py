"""Time one gradient with every backend, each in a process of its own, and compare.

The backends:

- ``loops``: loopbp's Numba loop kernels, through a `Network` (flat parameters, buffers
  kept from call to call);
- ``einsum``: loopbp's NumPy einsum reference, the yardstick for speed-ups and agreement;
- ``numpy``: the same formulas with NumPy ``@`` (BLAS), the baseline;
- ``torch``: PyTorch CPU autograd, when PyTorch is installed;
- ``jax``: ``jax.jit(jax.value_and_grad(E))`` on the CPU, when JAX is installed;
- ``cuda``: loopbp's CUDA kernels on a GPU (``loopbp.cuda.engine``), only when asked for.
  Then torch and jax run on the GPU too (`device_of`; TF32 off), and X and Y are on the
  device before the timing starts, for all three.

Every backend runs in a fresh Python process (``python -m loopbp.compare``): Numba's
OpenMP threads keep spinning after a parallel region and slow any BLAS in the same
process, and each process times its first call (compilation, tracing, cache loads)
apart from the samples. Each sample times a batch of calls lasting at least
`SAMPLE_SECONDS`, and the median per call is reported. Every backend's gradient is
compared with the einsum gradient on the same data, in its own process.

``loopbp.comparison`` runs every backend over the points of a comparison with `run` and
computes what ``loopbp compare`` (``loopbp.cli``) prints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import numpy as np
from numpy.typing import DTypeLike

from . import einsum_reference, layout
from .agreement import gradient_difference
from .cpu import warming
from .cuda import target as cuda_target
from .network import Network
from .problems import seeded_problem

#: Every backend `run` knows, in the order of the table.
COMPARED_BACKENDS = ("loops", "einsum", "numpy", "torch", "jax", "cuda")
#: The backends that need a package loopbp does not depend on, and what to install for each.
OPTIONAL = {"torch": "torch", "jax": "jax", "cuda": 'a CUDA package (pip install "loopbp[gpu]")'}
#: Each timed sample batches calls until it lasts at least this long.
SAMPLE_SECONDS = 0.02


class Measurement(TypedDict):
    """What `measure` returns for one backend on one network."""

    #: Seconds for the first call (compilation, tracing or cache loads included).
    first_s: float
    #: Seconds per call: the median over the timed samples.
    median_s: float
    #: Calls per timed sample.
    number: int
    #: The largest relative difference from the einsum gradient (``loopbp.agreement``).
    difference: float


#: A backend's gradient: a function of no arguments returning (E, dW, db).
GradientFunction = Callable[[], tuple[float, list, list]]


def installed(backend: str) -> bool:
    """Whether `backend` can run here (its optional package is importable)."""
    if backend == "cuda":
        return cuda_target.installed()
    package = OPTIONAL.get(backend)
    return package is None or importlib.util.find_spec(package) is not None


def default_backends() -> tuple[str, ...]:
    """loops, einsum and numpy, plus torch and jax where they are installed (cuda only when asked for)."""
    return tuple(b for b in COMPARED_BACKENDS if b != "cuda" and installed(b))


def missing_peers() -> tuple[str, ...]:
    """The backends that `default_backends` leaves out because they are not installed."""
    return tuple(b for b in COMPARED_BACKENDS if b != "cuda" and not installed(b))


def device_of(backends: Sequence[str]) -> str:
    """Where torch and jax run in a comparison of `backends`: "cuda" when cuda is among them, else "cpu"."""
    return "cuda" if "cuda" in backends else "cpu"


def torch_activations():
    """{name: function} of every loopbp activation in PyTorch, for the peers and the tests."""
    import torch

    return {"identity": lambda z: z, "sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


def jax_activations():
    """{name: function} of every loopbp activation in JAX, for the peers and the tests."""
    import jax
    import jax.numpy as jnp

    return {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh}


def _torch_gradient(net, X, Y, device):
    import torch

    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch sees no CUDA GPU")
        # The comparison is of float32 arithmetic, not of TF32's 10-bit products.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    functions = torch_activations()
    W = [torch.tensor(w, device=device, requires_grad=True) for w in net.W]
    b = [torch.tensor(v, device=device, requires_grad=True) for v in net.b]
    Xt, Yt = torch.tensor(X, device=device), torch.tensor(Y, device=device)
    m = X.shape[1]

    def run():
        A = Xt
        for w, v, g in zip(W, b, net.activations):
            A = functions[g](w @ A + v[:, None])
        # E = 1/(2m) sum (A - Y)^2: MSELoss would divide by m n^L and drop the 1/2.
        E = ((A - Yt) ** 2).sum() / (2 * m)
        grads = torch.autograd.grad(E, W + b)
        L = len(W)
        return E.item(), [g.cpu().numpy() for g in grads[:L]], [g.cpu().numpy() for g in grads[L:]]

    return run


def _jax_gradient(net, X, Y, device):
    import jax

    jax.config.update("jax_enable_x64", net.dtype == np.float64)
    import jax.numpy as jnp

    # Committed to one device, the data take the jitted function there.
    target = jax.devices("gpu" if device == "cuda" else "cpu")[0]

    functions = jax_activations()
    m = X.shape[1]

    def error(params, X, Y):
        A = X
        for (w, v), g in zip(params, net.activations):
            A = functions[g](w @ A + v[:, None])
        return jnp.sum((A - Y) ** 2) / (2 * m)

    step = jax.jit(jax.value_and_grad(error))
    params = jax.device_put([(jnp.asarray(w), jnp.asarray(v)) for w, v in zip(net.W, net.b)], target)
    Xj, Yj = jax.device_put(X, target), jax.device_put(Y, target)

    def run():
        E, grads = step(params, Xj, Yj)
        E = jax.block_until_ready(E)
        return float(E), [np.asarray(g[0]) for g in grads], [np.asarray(g[1]) for g in grads]

    return run


def _cuda_gradient(net, X, Y):
    from .cuda.engine import cuda_engine_for

    engine = cuda_engine_for(net.sizes, net.activations, net.dtype)
    # X and Y on the device once, as the peers' are: each call sends theta and brings
    # E and the gradient back.
    X_d, Y_d = engine.cuda.to_device(X), engine.cuda.to_device(Y)

    def run():
        E, grad = engine.gradient(net.theta, X_d, Y_d)
        dW, db = layout.unpack(grad, net.sizes)
        return E, dW, db

    return run


def gradient_function(
    backend: str, net: Network, X: np.ndarray, Y: np.ndarray, device: str = "cpu"
) -> GradientFunction:
    """A function of no arguments that returns (E, dW, db) from `backend` for net, X, Y.

    `device` ("cpu" or "cuda") is where torch and jax run; cuda always runs on the GPU.
    """
    if backend == "loops":
        return lambda: net.gradient(X, Y)
    if backend == "einsum":
        return lambda: net.gradient(X, Y, backend="einsum")
    if backend == "numpy":
        W, b, acts = list(net.W), list(net.b), net.activations
        return lambda: einsum_reference.gradient(W, b, X, Y, acts, matmul=True)
    if backend == "torch":
        return _torch_gradient(net, X, Y, device)
    if backend == "jax":
        return _jax_gradient(net, X, Y, device)
    if backend == "cuda":
        return _cuda_gradient(net, X, Y)
    raise ValueError(f"backend must be one of {', '.join(COMPARED_BACKENDS)}, got {backend!r}")


def measure(
    backend: str,
    sizes: Sequence[int],
    m: int,
    activations: Sequence[str] | None,
    dtype: DTypeLike,
    seed: int,
    repeat: int,
    device: str = "cpu",
) -> Measurement:
    """Time `backend` in this process on the seeded problem; see the module docstring.

    Parameters
    ----------
    backend : str
        One of `COMPARED_BACKENDS`.
    sizes, m, activations, dtype, seed
        The problem: ``loopbp.problems.seeded_problem(sizes, m, activations, dtype, seed)``.
    repeat : int
        Timed samples.
    device : {"cpu", "cuda"}
        Where torch and jax run.

    Returns
    -------
    Measurement
        ``first_s`` (seconds for the first call), ``median_s`` (seconds per call),
        ``number`` (calls per sample) and ``difference`` (largest relative difference
        from the einsum gradient).
    """
    net, X, Y = seeded_problem(sizes, m, activations, np.dtype(dtype), seed)
    # The loops are timed on their fast kernels, compiled (or loaded) at the first call,
    # not on the serial loops that run while a background process compiles them.
    with warming.foreground():
        timed = time_calls(gradient_function(backend, net, X, Y, device), repeat)
    reference = net.gradient(X, Y, backend="einsum")
    result = timed.pop("result")
    return {**timed, "difference": gradient_difference(result, reference)}


def time_calls(run: Callable[[], Any], repeat: int, sample_seconds: float = SAMPLE_SECONDS) -> dict[str, Any]:
    """Time `run()`: its first call apart, then `repeat` samples of batched calls.

    Returns
    -------
    dict
        ``first_s`` (seconds), ``result`` (what the first call returned), ``median_s``
        (seconds per call over the samples) and ``number`` (calls per sample, enough for
        a sample to last `sample_seconds`).
    """
    start = time.perf_counter()
    result = run()
    first = time.perf_counter() - start
    start = time.perf_counter()
    run()
    once = time.perf_counter() - start
    number = max(1, int(sample_seconds / max(once, 1e-7)))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            run()
        samples.append((time.perf_counter() - start) / number)
    return {"first_s": first, "result": result, "median_s": statistics.median(samples), "number": number}


def thread_environment(threads: int | None) -> dict[str, str]:
    """This process's environment, with `threads` set for every library a backend may use.

    None leaves the environment as it is (and so the libraries' own defaults).
    """
    env = dict(os.environ)
    if threads is not None:
        # Numba, OpenBLAS/MKL behind NumPy and PyTorch's intra-op pool all read these
        # when the process starts.
        for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


# The worker imports the loopbp this process imported. ``python -m loopbp.compare`` would
# put the working directory first on sys.path: run from a checkout, it imported the
# checkout instead of the installed package, and compiled the kernels a second time.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOTSTRAP = """
import sys
parent = sys.argv[1]
if sys.path[:1] == [""]:
    del sys.path[0]  # the working directory, which -c puts first
if parent not in sys.path:  # a checkout, not an installed package: where the parent found it
    sys.path.insert(0, parent)
from loopbp.compare import worker
worker(sys.argv[2])
"""


def run(
    backend: str,
    points: Sequence[tuple[Sequence[int], int]],
    activations: Sequence[str] | None,
    dtype: str,
    seed: int = 0,
    repeat: int = 20,
    threads: int | None = None,
    device: str = "cpu",
) -> list[Measurement]:
    """Time `backend` on each (sizes, m) of `points` in one fresh process.

    Parameters
    ----------
    backend : str
        One of `COMPARED_BACKENDS`; it must be `installed`.
    points : list of (sizes, m)
        The networks to time, in order.
    activations : sequence of str or None
        One name per layer, or None for ``loopbp.problems.default_activations`` of each
        point.
    dtype : {"float64", "float32"}
    seed : int
        Seeds each point's network and data (``loopbp.problems.seeded_problem``).
    repeat : int
        Timed samples per point.
    threads : int or None
        Threads for Numba, BLAS and PyTorch in that process; None leaves their defaults.
    device : {"cpu", "cuda"}
        Where torch and jax run (`device_of`).

    Returns
    -------
    list of Measurement
        What `measure` returns, one per point.

    Raises
    ------
    RuntimeError
        If the process fails; the message holds its standard error.
    """
    request = {
        "backend": backend,
        "points": [[list(sizes), m] for sizes, m in points],
        "activations": None if activations is None else list(activations),
        "dtype": dtype,
        "seed": seed,
        "repeat": repeat,
        "device": device,
    }
    out = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, _PACKAGE_PARENT, json.dumps(request)],
        capture_output=True,
        text=True,
        env=thread_environment(threads),
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {backend} backend failed in its process:\n{out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(request: str) -> None:
    """The backend's process: `measure` each point of the JSON `request`, print the results as JSON.

    `request` is what `run` sends: ``backend``, ``points`` ([sizes, m] pairs),
    ``activations`` (or null), ``dtype``, ``seed``, ``repeat`` and ``device``.
    """
    request = json.loads(request)
    if request["backend"] == "torch" and "OMP_NUM_THREADS" in os.environ:
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    results = []
    for sizes, m in request["points"]:
        results.append(
            measure(
                request["backend"],
                tuple(sizes),
                m,
                request["activations"],  # None: seeded_problem's default for these sizes
                request["dtype"],
                request["seed"],
                request["repeat"],
                request.get("device", "cpu"),
            )
        )
    print(json.dumps(results))


if __name__ == "__main__":
    worker(sys.argv[1])
