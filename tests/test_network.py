"""Network: initialisation, its methods, and its argument checks."""

import numpy as np
import pytest
from problems import CPU_BACKENDS

import loopbp


def test_series_init_is_0_2_standard_normal():
    net = loopbp.Network([3, 5, 2], ["sigmoid", "identity"], seed=7)
    rng = np.random.default_rng(7)
    # The series draws W^l then b^l, layer by layer, as 0.2 * N(0, 1).
    for W, b in zip(net.W, net.b):
        np.testing.assert_array_equal(W, 0.2 * rng.standard_normal(W.shape))
        np.testing.assert_array_equal(b, 0.2 * rng.standard_normal(b.shape))
    assert [W.shape for W in net.W] == [(5, 3), (2, 5)]
    assert [b.shape for b in net.b] == [(5,), (2,)]
    assert net.n_parameters == (3 + 1) * 5 + (5 + 1) * 2 == sum(a.size for a in net.W + net.b)


@pytest.mark.parametrize("init,variance", [("glorot", lambda i, o: 2 / (i + o)), ("he", lambda i, o: 2 / i)])
def test_scaled_inits(init, variance):
    net = loopbp.Network([400, 300, 10], ["relu", "identity"], seed=1, init=init)
    for W, b, (n_in, n_out) in zip(net.W, net.b, [(400, 300), (300, 10)]):
        assert np.all(b == 0)
        # The sample variance of n_in * n_out >= 3000 normal draws is within 10% of the
        # intended variance (its relative standard error is sqrt(2 / 3000) < 3%).
        assert abs(W.var() / variance(n_in, n_out) - 1) < 0.1


def test_seed_may_be_a_generator():
    a = loopbp.Network([2, 3], ["tanh"], seed=np.random.default_rng(5))
    b = loopbp.Network([2, 3], ["tanh"], seed=5)
    np.testing.assert_array_equal(a.W[0], b.W[0])


def test_seed_reproduces_and_dtype_is_kept():
    a = loopbp.Network([2, 3, 1], ["tanh", "identity"], seed=3, dtype=np.float32)
    b = loopbp.Network([2, 3, 1], ["tanh", "identity"], seed=3, dtype="float32")
    c = loopbp.Network([2, 3, 1], ["tanh", "identity"], seed=4, dtype=np.float32)
    assert all(x.dtype == np.float32 for x in a.W + a.b)
    assert all(np.array_equal(x, y) for x, y in zip(a.W + a.b, b.W + b.b))
    assert not np.array_equal(a.W[0], c.W[0])
    assert a.dtype == np.dtype(np.float32)
    assert repr(a) == "Network(sizes=[2, 3, 1], activations=['tanh', 'identity'], dtype=np.float32)"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_methods_call_the_functions(backend):
    net = loopbp.Network([2, 4, 3], ["relu", "sigmoid"], seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 6)), rng.standard_normal((3, 6))
    E, dW, db = net.gradient(X, Y, backend=backend)
    E2, dW2, db2 = loopbp.gradient(net.W, net.b, X, Y, net.activations, backend=backend)
    assert E == E2 == net.error(X, Y, backend=backend)
    assert all(np.array_equal(x, y) for x, y in zip(dW + db, dW2 + db2))
    np.testing.assert_array_equal(
        net.forward(X, backend=backend), loopbp.forward(net.W, net.b, X, net.activations, backend=backend)
    )


BAD_NETWORKS = [
    ({"sizes": 3}, TypeError, "sizes must be a sequence"),
    ({"sizes": {3, 4, 1}}, TypeError, "sizes must be a sequence of layer widths n^0, ..., n^L, got set"),
    (
        {"activations": {"sigmoid", "identity"}},
        TypeError,
        "activations must be a sequence of 2 names, got set",
    ),
    ({"sizes": [3]}, ValueError, "sizes must list at least n^0 and n^1"),
    ({"sizes": [3, 0, 1]}, ValueError, "sizes[1] must be at least 1, got 0"),
    ({"sizes": [3, 2.5, 1]}, TypeError, "sizes[1] must be an int, got float"),
    ({"sizes": [3, True, 1]}, TypeError, "sizes[1] must be an int, got bool"),
    ({"activations": "sigmoid"}, TypeError, "activations must be a sequence of 2 names"),
    ({"activations": ["sigmoid"]}, ValueError, "activations must have one name per layer, L = 2"),
    ({"activations": ["sigmoid", "softplus"]}, ValueError, "unknown activation 'softplus'"),
    ({"dtype": np.int32}, TypeError, "dtype must be float32 or float64, got int32"),
    ({"dtype": "half"}, TypeError, "dtype must be float32 or float64, got float16"),
    ({"dtype": "nonsense"}, TypeError, "dtype must be float32 or float64, got 'nonsense'"),
    ({"seed": -1}, TypeError, "seed must be None, a non-negative int or a numpy Generator, got -1"),
    ({"seed": "abc"}, TypeError, "seed must be None, a non-negative int"),
    ({"seed": 1.5}, TypeError, "seed must be None, a non-negative int"),
    ({"init": "xavier"}, ValueError, "init must be one of 'series', 'glorot', 'he', got 'xavier'"),
]


@pytest.mark.parametrize("change,exception,message", BAD_NETWORKS, ids=[c[2] for c in BAD_NETWORKS])
def test_bad_network_arguments(change, exception, message):
    arguments = {"sizes": [3, 4, 1], "activations": ["sigmoid", "identity"], **change}
    sizes, activations = arguments.pop("sizes"), arguments.pop("activations")
    with pytest.raises(exception) as info:
        loopbp.Network(sizes, activations, **arguments)
    assert message in str(info.value)


def test_methods_validate_their_data():
    net = loopbp.Network([2, 3, 1], ["sigmoid", "identity"], seed=0)
    with pytest.raises(ValueError, match="X must have n\\^0 = 2 rows"):
        net.forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match="Y must have shape"):
        net.gradient(np.ones((2, 4)), np.ones((1, 5)))
    with pytest.raises(ValueError, match="backend must be one of"):
        net.error(np.ones((2, 4)), np.ones((1, 4)), backend="torch")


def test_parameters_are_views_of_one_flat_vector():
    net = loopbp.Network([3, 4, 2], ["tanh", "identity"], seed=0)
    assert net.theta.shape == (net.n_parameters,)
    # theta is W^1, b^1, W^2, b^2 in order, each row-major.
    np.testing.assert_array_equal(
        net.theta, np.concatenate([a.ravel() for a in (net.W[0], net.b[0], net.W[1], net.b[1])])
    )
    net.W[1][0, 2] = 5.0
    assert net.theta[3 * 4 + 4 + 2] == 5.0
    with pytest.raises(TypeError):
        net.W[0] = np.zeros((4, 3))  # a tuple: the views cannot be swapped for other arrays


def test_workspace_is_reused_and_follows_m():
    net = loopbp.Network([3, 5, 2], ["sigmoid", "identity"], seed=0)
    rng = np.random.default_rng(1)
    for m in (7, 7, 40, 7):
        X, Y = rng.standard_normal((3, m)), rng.standard_normal((2, m))
        E, dW, db = net.gradient(X, Y)
        E2, dW2, db2 = loopbp.gradient(list(net.W), list(net.b), X, Y, net.activations)
        assert E == E2 and all(np.array_equal(x, y) for x, y in zip(dW + db, dW2 + db2))
        # Each call returns arrays of its own, not views of the kept buffers.
        (kept,) = net.engine.pool.kept.values()
        assert not np.shares_memory(dW[0], kept.activations) and kept.activations.size == 5 * m + 2 * m
    net.gradient(X, Y)
    (workspace,) = net.engine.pool.kept.values()
    net.gradient(X, Y)
    assert next(iter(net.engine.pool.kept.values())) is workspace


def test_from_parameters_copies():
    W, b = [np.ones((3, 2)), np.ones((1, 3))], [np.zeros(3), np.zeros(1)]
    net = loopbp.Network.from_parameters(W, b, ["relu", "identity"])
    assert net.sizes == (2, 3, 1) and net.activations == ("relu", "identity")
    net.W[0][...] = 2.0
    assert np.all(W[0] == 1.0)
    with pytest.raises(ValueError, match="W\\[1\\] must have shape"):
        loopbp.Network.from_parameters([np.ones((3, 2)), np.ones((1, 4))], b, ["relu", "identity"])


def test_a_nan_written_into_the_parameters_is_reported():
    net = loopbp.Network([2, 3, 1], ["sigmoid", "identity"], seed=0)
    net.b[1][0] = np.nan
    X, Y = np.ones((2, 4)), np.zeros((1, 4))
    for call in (lambda: net.gradient(X, Y), lambda: net.error(X, Y), lambda: net.forward(X)):
        with pytest.raises(ValueError, match="b\\[1\\] must be finite"):
            call()


@pytest.mark.parametrize("copy_with", ["pickle", "deepcopy"])
def test_a_copied_network_keeps_w_and_b_as_views_of_theta(copy_with):
    import copy
    import pickle

    net = loopbp.Network([3, 4, 2], ["tanh", "identity"], seed=0)
    X = np.ones((3, 5))
    net.forward(X)  # a workspace is held
    twin = pickle.loads(pickle.dumps(net)) if copy_with == "pickle" else copy.deepcopy(net)
    assert np.array_equal(twin.theta, net.theta) and twin.theta is not net.theta
    assert np.array_equal(twin.forward(X), net.forward(X))
    twin.theta[...] = 0.0
    assert all(not w.any() for w in twin.W) and all(not v.any() for v in twin.b)
    assert net.theta.any()


def test_the_first_call_logs_that_the_kernels_compile(monkeypatch, caplog):
    # One INFO message on the "loopbp" logger per dtype and kernel set, when the cache
    # does not hold them (made to look cold here), and none on later calls. (The tests run
    # with LOOPBP_COMPILE=foreground; tests/test_warming.py checks the background mode.)
    import logging

    from loopbp.cpu import warming

    monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: False)
    monkeypatch.setattr(warming, "_fast", set())
    monkeypatch.setattr(warming, "_jobs", {})
    net = loopbp.Network((3, 4, 2), ("sigmoid", "identity"), seed=0)
    X, Y = np.ones((3, 5)), np.ones((2, 5))
    with caplog.at_level(logging.INFO, logger="loopbp"):
        net.gradient(X, Y)
        net.gradient(X, Y)
        loopbp.Network((3, 4, 2), ("tanh", "identity"), seed=1).forward(X)
    messages = [r.getMessage() for r in caplog.records if r.name == "loopbp"]
    assert len(messages) == 1
    assert messages[0].startswith("compiling the loop kernels (the narrow set) for float64: about")


def test_read_only_parameters_serve_every_call_but_fit():
    # A network unpickled from a read-only memory map has read-only parameters: the
    # gradient and forward pass read them (through a copy); fit, which writes them, says so.
    net = loopbp.Network((3, 4, 2), ("tanh", "identity"), seed=0)
    X, Y = np.ones((3, 5)), np.zeros((2, 5))
    E, dW, db = net.gradient(X, Y)
    A = net.forward(X)
    net.theta.flags.writeable = False
    E_ro, dW_ro, db_ro = net.gradient(X, Y)
    assert E_ro == E and all(np.array_equal(a, b) for a, b in zip(dW_ro + db_ro, dW + db))
    assert np.array_equal(net.forward(X), A)
    with pytest.raises(ValueError, match="read-only"):
        net.fit(X, Y, learning_rate=0.1, epochs=1, progress=False)


def test_a_network_pickled_by_loopbp_0_3_0_loads():
    # tests/data/network-0.3.0.pickle: Network([2, 3, 1], ["tanh", "identity"], seed=0)
    # pickled by loopbp 0.3.0, whose modules were all in one flat package. The class
    # keeps its path (loopbp.network.Network), so the file loads into a working network.
    import pickle
    from pathlib import Path

    with open(Path(__file__).parent / "data" / "network-0.3.0.pickle", "rb") as f:
        old = pickle.load(f)
    new = loopbp.Network([2, 3, 1], ["tanh", "identity"], seed=0)
    assert type(old) is loopbp.Network and old.sizes == new.sizes and old.activations == new.activations
    np.testing.assert_array_equal(old.theta, new.theta)
    X, Y = np.ones((2, 4)), np.ones((1, 4))
    assert old.gradient(X, Y)[0] == new.gradient(X, Y)[0]
