"""The first calls: the serial loops, and the background compile of the fast kernels."""

import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from problems import DTYPES, SHAPES, activations_for, make_problem

import loopbp
from loopbp import layout, numba_cache
from loopbp.agreement import TOLERANCE, gradient_difference, relative_difference
from loopbp.cpu import driver, layer_loop, serial_driver, warming, workspace
from loopbp.shuffling import shuffle_state
from loopbp.validation import activation_codes


def _call(run, mode, sizes, acts, theta, X, Y, training=None):
    # One call of `run` (driver.run or serial_driver.run) as the engine makes it, in one thread.
    dtype = theta.dtype
    work = workspace.Workspace(sizes, X.shape[1], dtype)
    grad = np.full_like(theta, np.nan)
    args = driver.unused_training_arguments(dtype) if training is None else training
    network = layer_loop.network_arrays(sizes, activation_codes(acts))
    status, E, finished = run(mode, theta, network, X, Y, grad, work.buffers(), *work.kernels(), args, 1)
    return status, E, finished, grad, work


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,sizes,m", SHAPES, ids=[s[0] for s in SHAPES])
def test_the_serial_loops_agree_with_einsum(name, sizes, m, dtype):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for("cycle", len(sizes) - 1), dtype)
    theta = layout.pack(W, b)
    tol = TOLERANCE[np.dtype(dtype)]
    status, E, _, grad, work = _call(serial_driver.run, driver.GRADIENT, sizes, acts, theta, X, Y)
    assert status == layer_loop.FINITE
    dW, db = layout.unpack(grad, sizes)
    assert gradient_difference((E, dW, db), loopbp.gradient(W, b, X, Y, acts, backend="einsum")) <= tol

    status, E, _, _, work = _call(
        serial_driver.run, driver.FORWARD, sizes, acts, theta, X, np.empty((0, 0), dtype)
    )
    assert status == layer_loop.FINITE and E == 0.0
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
        assert (status, finished) == (layer_loop.FINITE, 3)
        results.append((theta, history, order))
    (theta_fast, history_fast, order_fast), (theta, history, order) = results
    # Mini-batches: the same shuffles; a full batch is never shuffled.
    assert np.array_equal(order, order_fast)
    if batch_size >= 40:
        assert np.array_equal(order, np.arange(40))
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
    assert status == layer_loop.INPUT_NOT_FINITE and np.isnan(E)
    status, _, _, _, _ = _call(serial_driver.run, driver.GRADIENT, sizes, acts, theta * 1e200, X, Y)
    assert status == layer_loop.RESULT_NOT_FINITE


@pytest.mark.parametrize(("batch_size", "alpha"), [(2, 0.6), (5, 0.8)], ids=["mini-batches", "full-batch"])
def test_the_serial_loops_stop_training_where_the_fast_kernels_do(batch_size, alpha):
    # Too large a learning rate: E grows by orders of magnitude each epoch until a step
    # overflows. Both stop before that step, after the same epochs, with the same theta.
    sizes, acts = (3, 4, 2), ["identity", "identity"]
    W, b, X, Y, _ = make_problem(sizes, 5, acts)
    results = []
    for run in (driver.run, serial_driver.run):
        theta = layout.pack(W, b)
        history = np.full(500, np.nan)
        batch = np.empty(3 * batch_size), np.empty(2 * batch_size)
        training = (np.float64(alpha), 0, 500, history, batch_size, shuffle_state(1), np.arange(5), *batch)
        _, _, finished, _, _ = _call(run, driver.TRAIN, sizes, acts, theta, X, Y, training)
        results.append((finished, theta, history))
    (finished_fast, theta_fast, history_fast), (finished, theta, history) = results
    assert 5 < finished == finished_fast < 500
    assert np.all(np.isfinite(theta)) and np.isnan(history[finished:]).all()
    assert history[finished - 1] > 1e10 * history[0]
    assert relative_difference(theta, theta_fast) <= 1e-6
    assert relative_difference(history[:finished], history_fast[:finished]) <= 1e-6


@pytest.fixture
def fresh_process_state(monkeypatch, tmp_path):
    # As in a process that has run no loop kernels yet, in the background mode, with an
    # empty cache folder: the kernels this process has compiled are still in memory, so
    # only the choice of entry point is fresh.
    monkeypatch.setattr(warming, "_fast", set())
    monkeypatch.setattr(warming, "_jobs", {})
    monkeypatch.setattr(warming, "_awaited", {})
    monkeypatch.setattr(numba_cache, "kernel_folder", lambda: str(tmp_path))
    monkeypatch.setenv("LOOPBP_COMPILE", "background")
    # The background process fails at import, at once (an unknown LOOPBP_SIMD, which this
    # process read at its own import already): no test here compiles a kernel set.
    monkeypatch.setenv("LOOPBP_SIMD", "no-such-path")
    return tmp_path


def _messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "loopbp"]


def test_a_failed_background_compile_falls_back_to_compiling_here(fresh_process_state, caplog):
    # The calls run the serial loops until the background process has ended, then a
    # warning that names its output, and the fast kernels compile in this process.
    sizes, acts = (3, 4, 2), ("sigmoid", "identity")
    net = loopbp.Network(sizes, acts, seed=0)
    X, Y = np.ones((3, 5)), np.zeros((2, 5))
    with caplog.at_level(logging.INFO, logger="loopbp"):
        E_serial = net.gradient(X, Y)[0]
        assert warming.entry_point(sizes, np.float64) is serial_driver.run
        lock = fresh_process_state / "compiling-float64-narrow.lock"
        assert lock.exists()
        assert warming.wait_for_background_compiles(timeout=120)
        assert warming.entry_point(sizes, np.float64) is driver.run
        E_fast = net.gradient(X, Y)[0]
    started, failed, compiling = _messages(caplog)
    assert started.startswith("compiling the fast loop kernels (the narrow set) for float64 in a")
    log = fresh_process_state / "compiling-float64-narrow.log"
    assert f"failed (exit status 1; its output is in {log})" in failed
    assert "LOOPBP_SIMD must be one of" in log.read_text()
    assert compiling.startswith("compiling the loop kernels (the narrow set) for float64: about")
    assert not lock.exists()
    assert relative_difference(E_serial, E_fast) <= TOLERANCE[np.dtype(np.float64)]


def test_another_process_compiling_is_awaited_not_repeated(fresh_process_state, monkeypatch, caplog):
    # A live lock (this very process's pid, with a deadline ahead): no second compile
    # starts; the calls run the serial loops until the cache holds the kernels.
    lock = fresh_process_state / "compiling-float32-wide.lock"
    lock.write_text(f"{os.getpid()} {time.time() + 600}\n")
    sizes = (64, 50, 10)
    monkeypatch.setattr(warming, "POLL_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="loopbp"):
        assert warming.entry_point(sizes, np.float32) is serial_driver.run
        assert warming.entry_point(sizes, np.float32) is serial_driver.run
        monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: True)  # it has finished
        assert warming.entry_point(sizes, np.float32) is driver.run
    waiting, ready = _messages(caplog)
    assert waiting.startswith("another process is compiling the fast loop kernels (the wide set) for float32")
    assert ready == "the fast loop kernels (the wide set) for float32 are ready: loopbp runs them now"
    assert lock.read_text().startswith(f"{os.getpid()} ")  # not this process's to remove


def test_a_stale_lock_is_replaced(fresh_process_state, caplog):
    # The lock of a process that has ended: this process starts the compile itself.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = fresh_process_state / "compiling-float64-wide.lock"
    lock.write_text(f"{gone.pid} {time.time() + 600}\n")
    with caplog.at_level(logging.INFO, logger="loopbp"):
        assert warming.entry_point((64, 50, 10), np.float64) is serial_driver.run
        holder = int(lock.read_text().split()[0])
        assert holder != gone.pid
        assert warming.wait_for_background_compiles(timeout=120)
    assert _messages(caplog)[0].startswith("compiling the fast loop kernels (the wide set) for float64 in a")


def test_the_foreground_mode_compiles_at_the_first_call(fresh_process_state, monkeypatch, caplog):
    monkeypatch.setenv("LOOPBP_COMPILE", "foreground")
    with caplog.at_level(logging.INFO, logger="loopbp"):
        assert warming.entry_point((3, 4, 2), np.float32) is driver.run
    (message,) = _messages(caplog)
    assert message.startswith("compiling the loop kernels (the narrow set) for float32: about")
    assert list(fresh_process_state.iterdir()) == []  # no lock, no background process


def test_warm_compiles_here_even_while_a_background_compile_runs(fresh_process_state, caplog):
    with caplog.at_level(logging.INFO, logger="loopbp"):
        assert warming.entry_point((3, 4, 2), np.float64) is serial_driver.run
        with warming.foreground():
            assert warming.entry_point((3, 4, 2), np.float64) is driver.run
        assert warming.entry_point((3, 4, 2), np.float64) is driver.run
        assert warming.wait_for_background_compiles(timeout=120)


def test_an_unknown_compile_mode_is_named_warm_or_cold(fresh_process_state, monkeypatch):
    monkeypatch.setenv("LOOPBP_COMPILE", "later")
    with pytest.raises(ValueError, match=r"LOOPBP_COMPILE must be one of background, foreground .* 'later'"):
        warming.compile_mode()
    net = loopbp.Network((3, 4, 2), ("sigmoid", "identity"), seed=0)
    for warm in (False, True):
        monkeypatch.setattr(warming, "is_warm", lambda *args, warm=warm, **kwargs: warm)
        with pytest.raises(ValueError, match="LOOPBP_COMPILE"):
            net.gradient(np.ones((3, 2)), np.ones((2, 2)))
    with warming.foreground():
        assert warming.compile_mode() == "foreground"
