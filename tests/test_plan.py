"""The plan of a gradient (loopbp.cpu.plan): each contraction's kernel and threads.

The plan's streaming contractions are checked like every other kernel set: against the
einsum reference within the dtype's tolerance, and bitwise over thread counts.
"""

import numba
import numpy as np
import pytest
from problems import make_problem

import loopbp
from loopbp import layout
from loopbp.agreement import TOLERANCE, gradient_difference
from loopbp.cpu import driver, layer_loop, plan, simd, workspace
from loopbp.validation import activation_codes

DTYPES = [np.float64, np.float32]


def test_the_kernels_never_depend_on_the_thread_count():
    # Only whether a contraction is parallel may follow the threads: the kernels fix the
    # order of every sum, so that 1 and N threads give bitwise equal results.
    for sizes, m in [((784, 128, 10), 32), ((32, 64, 64, 1), 5000), ((16, 1024, 1), 1000), ((9, 3, 2), 7)]:
        for dtype in DTYPES:
            kernels = [plan.make(sizes, m, dtype, threads=t)[:, :, 0] for t in (1, 2, 8)]
            assert all(np.array_equal(kernels[0], k) for k in kernels[1:])
            assert not plan.make(sizes, m, dtype, threads=1)[:, :, 1].any()


def test_the_cost_model_picks_the_kernel_whose_share_is_larger():
    tile = simd.tile(np.float64, "avx2")
    for l, c, rows, depth, columns in plan.contractions((64, 200, 1), 1000):
        expected = plan.stream_share(rows, depth, columns) > plan.packed_share(tile, rows, depth, columns)
        assert plan.make((64, 200, 1), 1000, np.float64, tile, 2)[l - 1, c, 0] == expected
    # A 1-unit layer fills one row of the 6-row tile: its forward pass streams; a layer
    # of 200 fills 200 of 204 rows: packed.
    p = plan.make((64, 200, 1), 1000, np.float64, tile, 2)
    assert p[1, plan.FORWARD, 0] == plan.STREAM and p[0, plan.FORWARD, 0] == plan.PACKED


def test_small_contractions_run_in_the_calling_thread():
    p = plan.make((784, 128, 10), 32, np.float64, simd.tile(np.float64, "avx2"), 2)
    # 128 x 784 x 32 multiply-adds share out; the 10-unit layer's do not.
    assert p[0, plan.FORWARD, 1] == 1 and p[1, plan.FORWARD, 1] == 0


def _gradient(sizes, m, dtype, forced, threads):
    # The whole gradient through the packed driver (the library's entry point, so that it
    # compiles nothing the other tests do not) with every contraction's kernel forced.
    W, b, X, Y, acts = make_problem(sizes, m, ["tanh"] * (len(sizes) - 2) + ["sigmoid"], dtype=dtype)
    work = workspace.Workspace(sizes, m, dtype, narrow=False)
    if forced is not None:
        work.plan = work.plan.copy()
        work.plan[:, :, 0] = forced
        work.plan[:, :, 1] = 1
    theta = layout.pack(W, b)
    grad = np.empty_like(theta)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        unused = driver.unused_training_arguments(np.dtype(dtype))
        network = layer_loop.network_arrays(sizes, activation_codes(acts))
        rest = (work.buffers(), *work.kernels(), unused, threads)
        status, E, _ = driver.run(driver.GRADIENT, theta, network, X, Y, grad, *rest)
        assert status == layer_loop.FINITE
    finally:
        numba.set_num_threads(previous)
    dW, db = layout.unpack(grad, tuple(sizes))
    reference = loopbp.gradient(W, b, X, Y, acts, backend="einsum")
    return (E, dW, db), reference


@pytest.mark.skipif(
    simd.PATH == "portable", reason="the plan chooses between the packed kernels and streaming"
)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("forced", [plan.STREAM, plan.PACKED, None], ids=["stream", "packed", "planned"])
@pytest.mark.parametrize("sizes, m", [((45, 1, 45, 3), 300), ((13, 50, 2), 257)])
def test_every_kernel_of_a_plan_agrees_with_einsum_and_over_threads(sizes, m, dtype, forced):
    one, reference = _gradient(sizes, m, dtype, forced, 1)
    two, _ = _gradient(sizes, m, dtype, forced, 2)
    assert gradient_difference(one, reference) <= TOLERANCE[np.dtype(dtype)]
    assert one[0] == two[0]
    assert all(np.array_equal(a, c) for a, c in zip(one[1] + one[2], two[1] + two[2]))


def test_a_planned_network_streams_where_the_tile_would_pad():
    # The shapes of the test above do stream some contractions (else it would test nothing new).
    assert (plan.make((45, 1, 45, 3), 300, np.float64)[:, :, 0] == plan.STREAM).any()


def test_network_plan_names_every_contraction():
    net = loopbp.Network((784, 128, 10), ("relu", "identity"))
    text = net.plan(32)
    assert "784-128-10, m = 32, float64" in text
    lines = [line for line in text.splitlines() if line.lstrip()[:1].isdigit()]
    assert len(lines) == 5  # Z^1, dE/dW^1, Z^2, dE/dW^2, dE/dA^1
    assert all(("packed" in line.split()) != ("stream" in line.split()) for line in lines)
    narrow = loopbp.Network((3, 5, 2), ("tanh", "identity")).plan(10)
    assert "narrow kernels" in narrow


@pytest.mark.parametrize("m, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), ("32", TypeError)])
def test_network_plan_rejects_a_bad_m(m, error):
    with pytest.raises(error, match="m must be"):
        loopbp.Network((4, 3, 2), ("tanh", "identity")).plan(m)


def test_fit_runs_the_plan_of_its_batch_size():
    from loopbp.training import Trainer

    net = loopbp.Network((64, 50, 1), ("tanh", "identity"), seed=0)
    X, Y = np.ones((64, 100)), np.zeros((1, 100))
    trainer = Trainer(net, X, Y, 0.1, 32)
    assert np.array_equal(trainer.work.plan, plan.make((64, 50, 1), 32, np.float64, trainer.work.tile))
