"""Network.fit: gradient descent as in the series, its errors, and its allocation habits."""

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from problems import CPU_BACKENDS, needs_jit

import loopbp
from loopbp.examples import sine_data


def _sine_network(**kwargs):
    return loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0, **kwargs)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_full_batch_steps_are_plain_gradient_descent(backend):
    X, Y = sine_data()
    net, twin = _sine_network(), _sine_network()
    history = net.fit(X, Y, learning_rate=0.1, epochs=3, backend=backend, progress=False)
    # The same three steps by hand: theta <- theta - 0.1 grad E, recording E before each.
    for k in range(3):
        E, dW, db = twin.gradient(X, Y, backend=backend)
        assert history[k] == E
        for p, g in zip(twin.W + twin.b, dW + db):
            p -= 0.1 * g
    np.testing.assert_allclose(net.theta, twin.theta, rtol=1e-15, atol=1e-15)


def test_error_decreases_on_the_sine_example():
    X, Y = sine_data()
    history = _sine_network().fit(X, Y, learning_rate=0.1, epochs=2000, progress=False)
    assert history.shape == (2000,) and history.dtype == np.float64
    # Full-batch descent with a small enough step never increases E.
    assert np.all(np.diff(history) <= 0) and history[-1] < history[0]


def test_loops_and_einsum_train_alike():
    X, Y = sine_data()
    a, b = _sine_network(), _sine_network()
    ha = a.fit(X, Y, learning_rate=0.1, epochs=200, progress=False)
    hb = b.fit(X, Y, learning_rate=0.1, epochs=200, backend="einsum", progress=False)
    np.testing.assert_allclose(ha, hb, rtol=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10)


def test_divergence_raises_names_the_epoch_and_keeps_finite_parameters():
    X, Y = sine_data()
    net = _sine_network()
    seen = []
    with pytest.raises(
        loopbp.TrainingDiverged, match=r"diverged in epoch (\d+).*smaller learning rate"
    ) as info:
        net.fit(X, Y, learning_rate=50.0, epochs=1000, progress=False, callback=lambda e, E: seen.append(E))
    # The callback ran for every epoch before the failing one.
    assert info.value.epoch == len(seen) > 0
    assert np.all(np.isfinite(net.theta))
    assert isinstance(info.value, FloatingPointError)


@pytest.mark.parametrize("backend", ["loops", "einsum"])
@pytest.mark.parametrize("callback", [False, True])
def test_growing_error_stops_fit_long_before_it_overflows(backend, callback):
    # One identity unit, x = 1, y = 0: z = w + b, and a step takes w and b each down by
    # a z, so z <- (1 - 2a) z. With a = 1.5, z doubles in size and E = z^2 / 2 grows 4x
    # per epoch: E_k = 4^k E_0, first above DIVERGENCE_FACTOR E_0 = 1e4 E_0 at k = 7
    # (4^7 = 16384), where an overflow would take about 500 epochs.
    from loopbp.errors import DIVERGENCE_FACTOR

    net = loopbp.Network([1, 1], ["identity"], seed=0)
    X, Y = np.ones((1, 1)), np.zeros((1, 1))
    E_0 = net.error(X, Y)
    seen = []
    with pytest.raises(loopbp.TrainingDiverged, match=r"epoch 7: E = .* more than 10000 times") as info:
        net.fit(
            X,
            Y,
            learning_rate=1.5,
            epochs=1000,
            progress=False,
            backend=backend,
            callback=(lambda e, E: seen.append(E)) if callback else None,
        )
    assert info.value.epoch == 7
    # The network keeps parameters whose E was in bounds, and finite.
    assert np.all(np.isfinite(net.theta))
    assert net.error(X, Y) <= DIVERGENCE_FACTOR * E_0
    if callback:
        assert len(seen) == 7  # epochs 0..6 finished and were reported
        assert net.error(X, Y) == pytest.approx(4**6 * E_0, rel=1e-9)


def test_a_converging_fit_with_noisy_mini_batches_never_stops():
    # Mini-batches of 1 on the sine recipe: E per epoch wanders but never near 1e4 times its start.
    X, Y = sine_data()
    net = _sine_network()
    history = net.fit(X, Y, learning_rate=0.5, epochs=200, batch_size=1, progress=False)
    assert history.shape == (200,) and history[-1] < history[0]


def test_divergence_restores_the_parameters_of_the_last_step():
    # An identity network with one weight: w <- w - a (w x - y) x. With x = 1e150 the
    # update overflows to -inf in the first step, so fit must hand back the initial w.
    net = loopbp.Network([1, 1], ["identity"], seed=0)
    before = net.theta.copy()
    X, Y = np.full((1, 1), 1e150), np.zeros((1, 1))
    with pytest.raises(loopbp.TrainingDiverged, match="epoch 0"):
        net.fit(X, Y, learning_rate=1e10, epochs=5, progress=False)
    np.testing.assert_array_equal(net.theta, before)


def test_mini_batches_are_reproducible_under_the_seed():
    X, Y = sine_data()
    runs = []
    for seed in (0, 0, 1):
        net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=seed)
        runs.append((net.fit(X, Y, learning_rate=0.1, epochs=20, batch_size=16, progress=False), net.theta))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][1], runs[2][1])


def test_mini_batches_visit_every_sample_once_per_epoch():
    # With learning_rate tiny, E barely moves, so each epoch's size-weighted mean of the
    # batch errors is the full-batch E; 100 samples in batches of 16 end with one of 4.
    X, Y = sine_data()
    net = _sine_network()
    E = net.error(X, Y)
    history = net.fit(X, Y, learning_rate=1e-12, epochs=2, batch_size=16, progress=False)
    np.testing.assert_allclose(history, E, rtol=1e-9)


def test_batch_size_at_least_m_is_full_batch():
    X, Y = sine_data()
    a, b = _sine_network(), _sine_network()
    a.fit(X, Y, learning_rate=0.1, epochs=5, batch_size=1000, progress=False)
    b.fit(X, Y, learning_rate=0.1, epochs=5, progress=False)
    np.testing.assert_array_equal(a.theta, b.theta)


def test_callback_can_stop_training():
    X, Y = sine_data()
    history = _sine_network().fit(
        X, Y, learning_rate=0.1, epochs=100, progress=False, callback=lambda epoch, E: epoch == 9
    )
    assert history.shape == (10,)


def test_float32_training_stays_float32():
    X, Y = sine_data()
    net = _sine_network(dtype=np.float32)
    history = net.fit(
        X.astype(np.float32), Y.astype(np.float32), learning_rate=0.1, epochs=50, progress=False
    )
    assert net.theta.dtype == np.float32 and history[-1] < history[0]


def test_inputs_are_not_modified():
    X, Y = sine_data()
    X0, Y0 = X.copy(), Y.copy()
    _sine_network().fit(X, Y, learning_rate=0.1, epochs=3, batch_size=7, progress=False)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"learning_rate": -0.1}, ValueError, "learning_rate must be positive"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate must be positive and finite"),
        ({"learning_rate": "0.1"}, TypeError, "learning_rate must be a number"),
        ({"learning_rate": 10**400}, ValueError, "learning_rate must be positive and finite"),
        ({"epochs": 0}, ValueError, "epochs must be positive"),
        ({"epochs": 2.5}, TypeError, "epochs must be an int"),
        ({"batch_size": 0}, ValueError, "batch_size must be positive"),
        ({"batch_size": True}, TypeError, "batch_size must be an int"),
        ({"backend": "torch"}, ValueError, "backend must be one of"),
        ({"progress": "yes"}, TypeError, "progress must be True or False"),
        ({"callback": 3}, TypeError, "callback must be callable"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, error, message):
    X, Y = sine_data()
    arguments = {"learning_rate": 0.1, "epochs": 2, "progress": False, **kwargs}
    net = _sine_network()
    before = net.theta.copy()
    with pytest.raises(error, match=message):
        net.fit(X, Y, **arguments)
    np.testing.assert_array_equal(net.theta, before)


def test_fit_rejects_bad_data():
    net = _sine_network()
    with pytest.raises(ValueError, match="X must have n\\^0 = 1 rows"):
        net.fit(np.ones((2, 5)), np.ones((1, 5)), learning_rate=0.1, epochs=1)
    with pytest.raises(ValueError, match="Y must be finite"):
        net.fit(np.ones((1, 5)), np.full((1, 5), np.inf), learning_rate=0.1, epochs=1)


def test_a_step_allocates_no_numpy_arrays():
    # NumPy reports its data buffers to tracemalloc. After the first epoch (which builds
    # the workspace), the traced peak must not grow by anything near the size of the
    # parameters or the activations, whatever the number of epochs.
    rng = np.random.default_rng(0)
    net = loopbp.Network([50, 400, 50, 5], ["sigmoid", "tanh", "identity"], seed=0)
    X, Y = rng.standard_normal((50, 64)), rng.standard_normal((5, 64))
    smallest_array = min(net.theta.nbytes, 400 * 64 * 8)
    for batch_size in (None, 16):
        growth = []

        def watch(epoch, E, growth=growth):
            if epoch == 0:
                tracemalloc.start()
                tracemalloc.reset_peak()
                growth.append(tracemalloc.get_traced_memory()[0])
            return False

        try:
            net.fit(
                X, Y, learning_rate=1e-3, epochs=30, batch_size=batch_size, progress=False, callback=watch
            )
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak - growth[0] < smallest_array / 10


@needs_jit
def test_kernels_allocate_nothing_per_step():
    # Numba's own allocation counter (NUMBA_NRT_STATS, read at start-up, so in a child
    # process). One compiled call of the training loop running 11 epochs must allocate
    # exactly what a call running 1 epoch does (the wrapping of its array arguments):
    # anything more would be an allocation per step inside the kernels. Full batch and
    # mini-batches, on a narrow network and on one for the packed kernels.
    script = textwrap.dedent(
        """
        import numpy as np, loopbp
        from loopbp import training
        from numba.core.runtime import rtsys
        extra = []
        for sizes, acts, m in [([1, 20, 1], ["sigmoid", "identity"], 100),
                               ([30, 300, 70, 40, 3], ["relu", "tanh", "sigmoid", "identity"], 777)]:
            rng = np.random.default_rng(0)
            X, Y = rng.standard_normal((sizes[0], m)), rng.standard_normal((sizes[-1], m))
            net = loopbp.Network(sizes, acts, seed=0)
            for batch in (m, 64):
                trainer = training.Trainer(net, X, Y, 1e-3, batch)
                history = np.empty(12)
                trainer.run(0, 1, history)  # compiles or loads
                counts = []
                for count in (1, 11):
                    before = rtsys.get_allocation_stats().alloc
                    assert trainer.run(0, count, history) == count
                    counts.append(rtsys.get_allocation_stats().alloc - before)
                extra.append(counts[1] - counts[0])
        print(extra)
        """
    )
    env = {**os.environ, "NUMBA_NRT_STATS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert eval(out.stdout) == [0, 0, 0, 0]


def test_progress_bar_on_a_terminal(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    X, Y = sine_data()
    history = _sine_network().fit(X, Y, learning_rate=0.1, epochs=400, progress=True)
    err = capsys.readouterr().err
    assert "400/400" in err and "epoch" in err and f"E={history[-1]:.4g}" in err


def test_no_progress_bar_off_a_terminal(capsys):
    X, Y = sine_data()
    _sine_network().fit(X, Y, learning_rate=0.1, epochs=5, progress=True)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("batch_size", [None, 16])
def test_loops_and_einsum_draw_the_same_batches(batch_size):
    # Both backends shuffle with loopbp.shuffling.shuffle from the network's seed, so the
    # same steps are taken; they differ by rounding only.
    X, Y = sine_data()
    a, b = _sine_network(), _sine_network()
    ha = a.fit(X, Y, learning_rate=0.1, epochs=30, batch_size=batch_size, progress=False)
    hb = b.fit(X, Y, learning_rate=0.1, epochs=30, batch_size=batch_size, backend="einsum", progress=False)
    np.testing.assert_allclose(ha, hb, rtol=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10)


def test_splitmix64_matches_its_reference_and_shuffles_uniformly():
    from loopbp import shuffling

    # The first outputs of SplitMix64 from state 0: the reference algorithm
    # (prng.di.unimi.it/splitmix64.c) run with Python integers mod 2^64 gives these.
    state = np.zeros(1, dtype=np.uint64)
    assert [int(shuffling.next_uint64(state)) for _ in range(2)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
    ]
    # Each of the 3! orders of three items about 1/6 of the time: a chi-square test at
    # 5 degrees of freedom, whose 99.9% quantile is 20.5.
    state = np.array([12345], dtype=np.uint64)
    counts = {}
    n = 60_000
    for _ in range(n):
        order = np.arange(3, dtype=np.int64)
        shuffling.shuffle(order, state)
        counts[tuple(order)] = counts.get(tuple(order), 0) + 1
    assert len(counts) == 6
    chi2 = sum((c - n / 6) ** 2 / (n / 6) for c in counts.values())
    assert chi2 < 20.5


def test_epochs_per_call_aim_at_a_twentieth_of_a_second():
    from loopbp import pacing, training

    X, Y = sine_data()
    trainer = training.Trainer(_sine_network(), X, Y, 0.1, X.shape[1])
    assert trainer.epochs_per_call(1000) == 1  # nothing measured yet
    trainer.seconds_per_epoch = 1e-5
    assert trainer.epochs_per_call(10**6) == round(pacing.SECONDS_PER_CALL / 1e-5)
    assert trainer.epochs_per_call(7) == 7
    trainer.seconds_per_epoch = 1.0
    assert trainer.epochs_per_call(10) == 1


@needs_jit
def test_ctrl_c_stops_fit_with_the_parameters_of_the_last_finished_epoch():
    # SIGINT arrives while compiled epochs run; fit re-raises KeyboardInterrupt once the
    # call returns, with the finished epochs' E attached, and the parameters are those
    # that the same number of epochs gives from the same start.
    script = textwrap.dedent(
        """
        import os, signal, threading, numpy as np, loopbp
        from loopbp.examples import sine_data
        # Python's own handler: a process started in the background by a non-interactive
        # shell ignores SIGINT, and passes that on to its children, this one too.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        X, Y = sine_data()
        net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
        net.fit(X, Y, learning_rate=0.1, epochs=1, progress=False)  # compile first
        net = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            net.fit(X, Y, learning_rate=0.1, epochs=10**7, progress=False)
        except KeyboardInterrupt as interrupt:
            done = len(interrupt.history)
            twin = loopbp.Network([1, 20, 1], ["sigmoid", "identity"], seed=0)
            again = twin.fit(X, Y, learning_rate=0.1, epochs=done, progress=False)
            print(done, np.array_equal(twin.theta, net.theta), np.array_equal(again, interrupt.history))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    done, same_theta, same_history = out.stdout.split()
    assert int(done) > 0 and same_theta == "True" and same_history == "True"
