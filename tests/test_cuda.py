"""The cuda backend: its kernels against the CPU loops and the einsum reference.

Without a GPU these run on Numba's CUDA simulator, which ``tests/conftest.py`` turns on
before numba is imported; ``NUMBA_ENABLE_CUDASIM=0 pytest tests/test_cuda.py`` runs them on
a GPU. The simulator runs each CUDA thread as a Python thread, so most tests use the
kernels' `TINY_SHAPE` (2 x 2 threads per block, chunks of 8 samples): small problems then
already span several blocks, tiles and chunks. A few run `DEFAULT_SHAPE`, the one the
backend uses.
"""

import os
import subprocess
import sys
import textwrap
import threading
import traceback
from pathlib import Path

import numpy as np
import pytest

import loopbp
from loopbp import layout
from loopbp.agreement import TOLERANCE, gradient_difference, relative_difference

try:
    from loopbp.cuda import target as cuda_target

    cuda_target.require_gpu()
except (ImportError, RuntimeError) as err:
    pytest.skip(f"no CUDA simulator or GPU: {err}", allow_module_level=True)

from loopbp.cuda import engine as cuda_engine  # noqa: E402
from loopbp.cuda import kernels as cuda_kernels
from loopbp.cuda.engine import CudaEngine  # noqa: E402
from loopbp.cuda.kernels import DEFAULT_SHAPE, TINY_SHAPE  # noqa: E402

SIMULATED = cuda_target.simulator_enabled()
DTYPES = (np.float32, np.float64)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def quick_thread_switches():
    # The simulator's threads wait on each other at every syncthreads; Python's default
    # 5 ms switch interval makes each wait cost that long (a tiny gradient 0.7 s, not 0.1 s).
    before = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    if SIMULATED:
        # numba's simulator gives a block's threads one shared array per source line, found
        # or made in a dict without a lock: two threads can each make one, and one thread's
        # tile is then its own. Rare (1 block in 3,000 of a 4-thread kernel here), but more
        # likely with quick switches; it made a mini-batch fit test fail now and then.
        from numba.cuda.simulator import kernelapi

        unlocked = kernelapi.FakeCUDAShared.array
        kernelapi.FakeCUDAShared.array = _locked_shared_array
    yield
    if SIMULATED:
        kernelapi.FakeCUDAShared.array = unlocked
    sys.setswitchinterval(before)


_shared_lock = threading.Lock()


def _locked_shared_array(self, shape, dtype):
    # FakeCUDAShared.array as numba writes it (static shared memory; loopbp uses no
    # dynamic), with the lookup and the allocation under one lock.
    from numba.core import types
    from numba.np import numpy_support

    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    caller = traceback.extract_stack(sys._getframe(1), limit=1)[0][0:2]
    with _shared_lock:
        array = self._allocations.get(caller)
        if array is None:
            array = self._allocations[caller] = np.empty(shape, dtype)
    return array


@pytest.fixture
def tiny_engines(monkeypatch):
    # The public functions, Network and fit, through engines of the tiny shape.
    if SIMULATED:
        monkeypatch.setattr(cuda_engine, "kernel_shape", TINY_SHAPE)


def problem(sizes, m, dtype, seed=0, activations=None):
    L = len(sizes) - 1
    activations = activations or ["tanh"] * (L - 1) + ["sigmoid"]
    net = loopbp.Network(list(sizes), activations, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((sizes[0], m)).astype(dtype)
    Y = rng.uniform(-1, 1, (sizes[-1], m)).astype(dtype)
    return net, X, Y


def cuda_gradient(net, X, Y, shape=TINY_SHAPE):
    engine = CudaEngine(net.sizes, net.activations, net.dtype, shape)
    E, grad = engine.gradient(net.theta, X, Y)
    dW, db = layout.unpack(grad, net.sizes)
    return E, dW, db


# Every activation in every position, odd widths that are not multiples of the tiles.
ACTIVATION_SETS = [[a, a, a] for a in loopbp.ACTIVATIONS] + [["relu", "tanh", "identity"]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("activations", "m"),
    [(a, 17) for a in ACTIVATION_SETS] + [(["sigmoid"] * 3, 1), (ACTIVATION_SETS[-1], 1)],
    ids=lambda v: "-".join(v) if isinstance(v, list) else f"m{v}",
)
def test_gradient_agrees_with_loops_and_einsum(dtype, activations, m):
    # m = 17 spans three chunks of 8 samples and five tiles of 4; n = 5, 7 and 3 are odd.
    net, X, Y = problem((5, 7, 6, 3), m, dtype, activations=activations)
    result = cuda_gradient(net, X, Y)
    tol = TOLERANCE[np.dtype(dtype)]
    assert gradient_difference(result, net.gradient(X, Y, backend="einsum")) < tol
    assert gradient_difference(result, net.gradient(X, Y)) < tol
    assert result[1][0].dtype == dtype and result[2][-1].dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_shape_agrees(dtype):
    # The shape the backend runs, on a problem smaller than one tile.
    net, X, Y = problem((4, 5, 2), 6, dtype, activations=["relu", "sigmoid"])
    result = cuda_gradient(net, X, Y, DEFAULT_SHAPE)
    assert gradient_difference(result, net.gradient(X, Y)) < TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_and_error_agree(dtype):
    net, X, Y = problem((5, 7, 6, 3), 13, dtype)
    engine = CudaEngine(net.sizes, net.activations, net.dtype, TINY_SHAPE)
    tol = TOLERANCE[np.dtype(dtype)]
    assert relative_difference(engine.forward(net.theta, X), net.forward(X, backend="einsum")) < tol
    assert relative_difference(engine.error(net.theta, X, Y), net.error(X, Y, backend="einsum")) < tol


def test_one_engine_for_several_m():
    # Buffers for the largest m so far; a smaller m (a fit's last batch) uses views of them.
    net, X, Y = problem((5, 7, 3), 21, np.float64)
    engine = CudaEngine(net.sizes, net.activations, net.dtype, TINY_SHAPE)
    for m in (13, 4, 21, 13):
        E, grad = engine.gradient(net.theta, X[:, :m].copy(), Y[:, :m].copy())
        expected = net.gradient(X[:, :m], Y[:, :m])
        assert gradient_difference((E, *layout.unpack(grad, net.sizes)), expected) < 1e-12


def test_error_of_one_sample():
    # E alone writes no dE/dZ^L: with m = 1 and n^L > 1 too.
    net, X, Y = problem((4, 5, 3), 1, np.float64)
    engine = CudaEngine(net.sizes, net.activations, net.dtype, TINY_SHAPE)
    assert relative_difference(engine.error(net.theta, X, Y), net.error(X, Y)) < 1e-12


def test_gradient_matches_finite_differences(tiny_engines):
    # The cuda gradient against central differences of the cuda error, with the bound of
    # tests/test_finite_differences.py (1e-7; this case gives 3e-10, the loops 2e-10).
    net, X, Y = problem((3, 6, 2), 7, np.float64, activations=["tanh", "sigmoid"])
    worst = loopbp.check_gradient(net.W, net.b, X, Y, net.activations, backend="cuda", directions=2)
    assert worst < 1e-7


def test_fit_keeps_what_a_callback_does_to_theta(tiny_engines):
    # theta goes to the GPU at every call from Python, so a callback's change counts, as with loops.
    def zero_the_first_layer(net):
        def callback(epoch, E):
            net.W[0][...] = 0

        return callback

    histories = []
    for backend in ("loops", "cuda"):
        net, X, Y = problem((3, 5, 2), 9, np.float64)
        kw = dict(learning_rate=0.1, epochs=3, progress=False, callback=zero_the_first_layer(net))
        histories.append(net.fit(X, Y, backend=backend, **kw))
    assert relative_difference(histories[1], histories[0]) < 1e-12


def test_kernels_configured_once_without_a_warning():
    # Off the simulator (which configures a kernel in place), a step's kernels are configured
    # once per m, and the small grids' performance warning is silenced for them.
    code = """
        import warnings, numpy as np
        warnings.simplefilter("error")
        from loopbp.cuda import engine as cuda_engine, kernels as cuda_kernels
        kernel = cuda_kernels.kernels_for(np.dtype(np.float64)).add_error
        launcher = cuda_engine.configured(kernel, 1, 256)
        print(type(launcher).__name__, tuple(launcher.griddim), tuple(launcher.blockdim))
    """
    out = _without_simulator(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["_LaunchConfiguration", "(1,", "1,", "1)", "(256,", "1,", "1)"]


def test_numpy_without_row_stack_keeps_vstack():
    # NumPy 2.5 has no np.row_stack; numba-cuda needs it while it loads: the alias is made
    # and removed again, and np.vstack is left alone.
    code = """
        import numpy as np
        if hasattr(np, "row_stack"):
            del np.row_stack
        from loopbp.cuda import target as cuda_target
        cuda_target.numba_cuda()
        print(hasattr(np, "row_stack"), np.vstack.__name__)
    """
    out = _without_simulator(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "vstack"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_equal_from_run_to_run(dtype):
    # Sums over c in fixed chunks added in a fixed order, no atomics: the same bits every run.
    net, X, Y = problem((6, 9, 3), 29, dtype)
    engine = CudaEngine(net.sizes, net.activations, net.dtype, TINY_SHAPE)
    E1, g1 = engine.gradient(net.theta, X, Y)
    E2, g2 = CudaEngine(net.sizes, net.activations, net.dtype, TINY_SHAPE).gradient(net.theta, X, Y)
    assert E1 == E2
    assert g1.tobytes() == g2.tobytes()


def test_public_functions_and_network(tiny_engines):
    net, X, Y = problem((3, 6, 2), 10, np.float64)
    W0, X0 = [w.copy() for w in net.W], X.copy()
    expected = net.gradient(X, Y)
    result = loopbp.gradient(net.W, net.b, X, Y, net.activations, backend="cuda")
    assert gradient_difference(result, expected) < 1e-12
    assert gradient_difference(net.gradient(X, Y, backend="cuda"), expected) < 1e-12
    assert (
        relative_difference(loopbp.forward(net.W, net.b, X, net.activations, backend="cuda"), net.forward(X))
        < 1e-12
    )
    assert abs(net.error(X, Y, backend="cuda") - expected[0]) < 1e-12 * expected[0]
    # Integer inputs are converted, as with every backend; inputs are never modified.
    Xi = np.arange(30).reshape(3, 10) % 3
    assert relative_difference(net.forward(Xi, backend="cuda"), net.forward(Xi)) < 1e-12
    assert all(np.array_equal(w, w0) for w, w0 in zip(net.W, W0)) and np.array_equal(X, X0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [None, 4])
def test_fit_matches_the_loops_fit(tiny_engines, dtype, batch_size):
    # The same seed draws the same mini-batch orders on the host for both backends.
    loops_net, X, Y = problem((3, 5, 2), 9, dtype, seed=3)
    cuda_net, _, _ = problem((3, 5, 2), 9, dtype, seed=3)
    kw = dict(learning_rate=0.5, epochs=3, batch_size=batch_size, progress=False)
    expected = loops_net.fit(X, Y, **kw)
    history = cuda_net.fit(X, Y, backend="cuda", **kw)
    tol = TOLERANCE[np.dtype(dtype)]
    assert history.shape == (3,) and relative_difference(history, expected) < tol
    assert relative_difference(cuda_net.theta, loops_net.theta) < tol
    # Seeded again: bitwise the same history and parameters.
    again, _, _ = problem((3, 5, 2), 9, dtype, seed=3)
    assert np.array_equal(again.fit(X, Y, backend="cuda", **kw), history)
    assert again.theta.tobytes() == cuda_net.theta.tobytes()


def test_fit_callback_stops_early(tiny_engines):
    net, X, Y = problem((3, 5, 2), 9, np.float64)
    seen = []
    history = net.fit(
        X,
        Y,
        learning_rate=0.1,
        epochs=5,
        backend="cuda",
        progress=False,
        callback=lambda e, E: seen.append(E) or e == 1,
    )
    assert len(history) == 2 and seen == list(history)


# The simulator computes with NumPy scalars, which warn on the overflow that a GPU does silently.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_divergence_keeps_the_last_finite_parameters(tiny_engines):
    net, X, Y = problem((3, 5, 2), 9, np.float64)
    with pytest.raises(loopbp.TrainingDiverged) as caught:
        net.fit(X, Y * 1e200, learning_rate=1e300, epochs=3, backend="cuda", progress=False)
    assert caught.value.epoch == 0
    assert np.isfinite(net.theta).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_overflow_is_an_error_not_nan(tiny_engines):
    net, X, Y = problem((3, 5, 2), 9, np.float32)
    with pytest.raises(ValueError, match="overflowed in float32"):
        loopbp.gradient([w * 1e30 for w in net.W], net.b, X, Y, ["identity", "identity"], backend="cuda")


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda X, Y: (X[:2], Y), ValueError, r"X must have n\^0 = 3 rows"),
        (lambda X, Y: (np.where(X > 0, np.nan, X), Y), ValueError, "X must be finite"),
        (lambda X, Y: (X, Y[:, :3]), ValueError, r"Y must have shape \(n\^L, m\) = \(2, 9\)"),
        (lambda X, Y: (X.astype(np.float32), Y), TypeError, "X must have the parameters' dtype float64"),
    ],
)
def test_bad_input_is_named(tiny_engines, change, error, match):
    net, X, Y = problem((3, 5, 2), 9, np.float64)
    Xb, Yb = change(X, Y)
    with pytest.raises(error, match=match):
        net.gradient(Xb, Yb, backend="cuda")


def test_unknown_backend_lists_cuda():
    net, X, Y = problem((3, 5, 2), 4, np.float64)
    with pytest.raises(ValueError, match="'cuda'"):
        net.gradient(X, Y, backend="gpu")


def _without_simulator(code):
    environment = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


GRADIENT_ON_CUDA = """
    import numpy as np, loopbp
    net = loopbp.Network([2, 3, 1], ["tanh", "identity"])
    try:
        net.gradient(np.ones((2, 3)), np.ones((1, 3)), backend="cuda")
    except (ImportError, RuntimeError) as err:
        print(type(err).__name__, err)
"""


def test_without_a_cuda_package_the_error_says_what_to_install():
    hidden = 'import sys; sys.modules["numba_cuda_mlir"] = sys.modules["numba.cuda"] = None\n'
    out = _without_simulator(hidden + textwrap.dedent(GRADIENT_ON_CUDA))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ImportError") and 'pip install "loopbp[gpu]"' in out.stdout


def test_without_a_gpu_the_error_says_how_to_test():
    if _without_simulator("from numba import cuda; print(cuda.is_available())").stdout.strip() == "True":
        pytest.skip("this machine has a GPU")
    out = _without_simulator(GRADIENT_ON_CUDA)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NoGPU") and "NUMBA_ENABLE_CUDASIM=1" in out.stdout
    # The command line says it too, without a traceback.
    args = "['train', 'sine', '--backend', 'cuda', '--epochs', '2']"
    cli = f"from loopbp.cli import main; raise SystemExit(main({args}))"
    out = _without_simulator(cli)
    assert out.returncode == 2 and "found no usable CUDA GPU" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(not SIMULATED, reason="the compile check is for machines without a GPU")
def test_kernels_compile_for_a_gpu():
    # The simulator runs the kernels as Python; this compiles them, both dtypes, default shape,
    # to PTX for a Hopper GPU with the real compiler, where one is installed (libNVVM).
    out = subprocess.run(
        [sys.executable, str(REPO / "tests" / "cuda_compile.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"},
        timeout=600,
    )
    if out.returncode == 3:
        pytest.skip(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0, out.stdout + out.stderr
    compiled = [line for line in out.stdout.splitlines() if line.endswith(" chars")]
    assert len(compiled) == 2 * len(cuda_kernels.KERNELS)


def test_dask_arrays_need_the_loops_backend(tiny_engines):
    da = pytest.importorskip("dask.array")
    net, X, Y = problem((3, 5, 2), 8, np.float64)
    with pytest.raises(ValueError, match="backend must be 'loops' for dask arrays"):
        net.gradient(da.from_array(X, chunks=(3, 4)), da.from_array(Y, chunks=(2, 4)), backend="cuda")
