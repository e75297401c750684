"""The first calls: the serial loops, and the background compile of the fast kernels."""

import logging

import numpy as np
import pytest
from problems import DTYPES, SHAPES, activations_for, make_problem

import loopbp
from loopbp import driver, engine, layout, passes, serial_driver, warming
from loopbp.agreement import TOLERANCE, gradient_difference, relative_difference
from loopbp.training_loop import shuffle_state
from loopbp.validation import activation_codes


def _call(run, mode, sizes, acts, theta, X, Y, training=None):
    # One call of `run` (driver.run or serial_driver.run) as the engine makes it, in one thread.
    dtype = theta.dtype
    work = engine.Workspace(sizes, X.shape[1], dtype)
    grad = np.full_like(theta, np.nan)
    args = driver.unused_training_arguments(dtype) if training is None else training
    sizes_array, codes = np.array(sizes, np.int64), activation_codes(acts)
    status, E, finished = run(mode, theta, sizes_array, codes, X, Y, grad, *work.buffers(), *args, 1)
    return status, E, finished, grad, work


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,sizes,m", SHAPES, ids=[s[0] for s in SHAPES])
def test_the_serial_loops_agree_with_einsum(name, sizes, m, dtype):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for("cycle", len(sizes) - 1), dtype)
    theta = layout.pack(W, b)
    tol = TOLERANCE[np.dtype(dtype)]
    status, E, _, grad, work = _call(serial_driver.run, driver.GRADIENT, sizes, acts, theta, X, Y)
    assert status == passes.FINITE
    dW, db = layout.unpack(grad, sizes)
    assert gradient_difference((E, dW, db), loopbp.gradient(W, b, X, Y, acts, backend="einsum")) <= tol

    status, E, _, _, work = _call(
        serial_driver.run, driver.FORWARD, sizes, acts, theta, X, np.empty((0, 0), dtype)
    )
    assert status == passes.FINITE and E == 0.0
    assert relative_difference(work.output(), loopbp.forward(W, b, X, acts, backend="einsum")) <= tol


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("batch_size", [7, 40], ids=["mini-batches", "full-batch"])
@pytest.mark.parametrize("sizes", [(13, 37, 29, 7), (64, 50, 10)], ids=["narrow", "wide"])
def test_the_serial_loops_train_as_the_fast_kernels_do(sizes, batch_size, dtype):
    # Three epochs from the same start: the same shuffles (bitwise), and parameters and
    # errors that agree to rounding error.
    W, b, X, Y, acts = make_problem(sizes, 40, activations_for("series", len(sizes) - 1), dtype)
    results = []
    for run in (driver.run, serial_driver.run):
        theta = layout.pack(W, b)
        history = np.full(3, np.nan)
        order = np.arange(40, dtype=np.int64)
        rng = shuffle_state(0)
        batch = np.empty(sizes[0] * batch_size, dtype), np.empty(sizes[-1] * batch_size, dtype)
        training = (dtype(0.05), 0, 3, history, batch_size, rng, order, *batch)
        status, _, finished, _, _ = _call(run, driver.TRAIN, sizes, acts, theta, X, Y, training)
        assert (status, finished) == (passes.FINITE, 3)
        results.append((theta, history, order))
    (theta_fast, history_fast, order_fast), (theta, history, order) = results
    assert np.array_equal(order, order_fast)
    tol = 10 * TOLERANCE[np.dtype(dtype)]  # three epochs of steps, each to rounding error
    assert relative_difference(theta, theta_fast) <= tol
    assert relative_difference(history, history_fast) <= tol
    assert history[2] < history[0]


def test_the_serial_loops_report_what_is_not_finite():
    sizes, acts = (3, 4, 2), ["identity", "identity"]
    W, b, X, Y, _ = make_problem(sizes, 5, acts)
    theta = layout.pack(W, b)
    X_nan = X.copy()
    X_nan[1, 2] = np.nan
    status, E, _, _, _ = _call(serial_driver.run, driver.GRADIENT, sizes, acts, theta, X_nan, Y)
    assert status == passes.INPUT_NOT_FINITE and np.isnan(E)
    status, _, _, _, _ = _call(serial_driver.run, driver.GRADIENT, sizes, acts, theta * 1e200, X, Y)
    assert status == passes.RESULT_NOT_FINITE
    # Training stops before the first step that is not finite, theta left at the last good one.
    huge = theta * 1e200
    history = np.full(2, np.nan)
    training = (np.float64(1.0), 0, 2, history, 5, shuffle_state(0), np.arange(5), np.empty(15), np.empty(10))
    _, _, finished, _, _ = _call(serial_driver.run, driver.TRAIN, sizes, acts, huge, X, Y, training)
    assert finished == 0 and np.array_equal(huge, theta * 1e200)


@pytest.fixture
def fresh_process_state(monkeypatch, tmp_path):
    # As in a process that has run no loop kernels yet, with an empty cache, in the
    # background mode: the kernels this process has compiled are still in memory, so only
    # the choice of entry point is fresh.
    monkeypatch.setattr(warming, "_fast", set())
    monkeypatch.setattr(warming, "_jobs", {})
    monkeypatch.setenv("LOOPBP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LOOPBP_COMPILE", "background")


def test_a_failed_background_compile_falls_back_to_compiling_here(fresh_process_state, monkeypatch, caplog):
    # The background process fails at import (an unknown LOOPBP_SIMD, which this process
    # read at its own import already): the calls run the serial loops until it has ended,
    # then a warning, and the fast kernels compile in this process.
    monkeypatch.setenv("LOOPBP_SIMD", "no-such-path")
    sizes, acts = (3, 4, 2), ("sigmoid", "identity")
    net = loopbp.Network(sizes, acts, seed=0)
    X, Y = np.ones((3, 5)), np.zeros((2, 5))
    with caplog.at_level(logging.INFO, logger="loopbp"):
        E_serial = net.gradient(X, Y)[0]
        assert warming.entry_point(sizes, np.float64) is serial_driver.run
        assert warming.wait_for_background_compiles(timeout=120)
        assert warming.entry_point(sizes, np.float64) is driver.run
        E_fast = net.gradient(X, Y)[0]
    messages = [r.getMessage() for r in caplog.records if r.name == "loopbp"]
    assert messages[0].startswith(
        "compiling the fast loop kernels (the narrow set) for float64 in a background"
    )
    assert "failed (exit status 1)" in messages[1]
    assert messages[2].startswith("compiling the loop kernels (the narrow set) for float64: about")
    assert len(messages) == 3
    assert relative_difference(E_serial, E_fast) <= TOLERANCE[np.dtype(np.float64)]


def test_the_foreground_mode_compiles_at_the_first_call(fresh_process_state, monkeypatch, caplog):
    monkeypatch.setenv("LOOPBP_COMPILE", "foreground")
    with caplog.at_level(logging.INFO, logger="loopbp"):
        assert warming.entry_point((3, 4, 2), np.float32) is driver.run
    assert warming.wait_for_background_compiles(timeout=0)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "loopbp"]
    assert message.startswith("compiling the loop kernels (the narrow set) for float32: about")


def test_an_unknown_compile_mode_is_named(monkeypatch):
    monkeypatch.setenv("LOOPBP_COMPILE", "later")
    with pytest.raises(ValueError, match=r"LOOPBP_COMPILE must be one of background, foreground .* 'later'"):
        warming.compile_mode()
    with warming.foreground():
        assert warming.compile_mode() == "foreground"
