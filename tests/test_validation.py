"""Bad input gets a TypeError or ValueError that names the argument; good input of any
layout is accepted; inputs are never modified."""

import numpy as np
import pytest
from problems import CPU_BACKENDS

import loopbp


def _problem(dtype=np.float64):
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((2, 4)).astype(dtype)]
    b = [rng.standard_normal(4).astype(dtype), rng.standard_normal(2).astype(dtype)]
    X = rng.standard_normal((3, 5)).astype(dtype)
    Y = rng.standard_normal((2, 5)).astype(dtype)
    return {"W": W, "b": b, "X": X, "Y": Y, "activations": ["sigmoid", "identity"]}


def _with(**changes):
    def make():
        p = _problem()
        for key, change in changes.items():
            p[key] = change(p[key]) if callable(change) else change
        return p

    return make


def _set(index, value):
    def change(seq):
        seq = list(seq)
        seq[index] = value
        return seq

    return change


def _poison(value, where=(0, 0)):
    def change(a):
        a = a.copy()
        a[where] = value
        return a

    return change


def _poison_first(value):
    def change(seq):
        seq = [a.copy() for a in seq]
        seq[0].flat[0] = value
        return seq

    return change


BAD_INPUTS = [
    # (id, problem, exception, part of the message)
    ("too-few-b", _with(b=lambda b: b[:1]), ValueError, "b must have one vector per layer, L = 2"),
    (
        "too-many-activations",
        _with(activations=["sigmoid"] * 3),
        ValueError,
        "activations must have one name",
    ),
    ("too-few-activations", _with(activations=["sigmoid"]), ValueError, "activations must have one name"),
    ("no-layers", _with(W=[], b=[], activations=[]), ValueError, "W must hold at least one layer"),
    ("W-not-a-sequence", _with(W=lambda W: W[0]), TypeError, "W must be a list or tuple"),
    ("activations-a-string", _with(activations="sigmoid"), TypeError, "activations must be a sequence"),
    ("shapes-do-not-chain", _with(W=_set(1, np.ones((2, 5)))), ValueError, "W[1] must have shape (n^2, 4)"),
    ("b-wrong-length", _with(b=_set(0, np.ones(3))), ValueError, "b[0] must have shape (4,)"),
    ("b-column", _with(b=_set(0, np.ones((4, 1)))), ValueError, "b[0] must be 1-D"),
    ("W-1-D", _with(W=_set(0, np.ones(3))), ValueError, "W[0] must be 2-D"),
    ("W-3-D", _with(W=_set(0, np.ones((4, 3, 1)))), ValueError, "W[0] must be 2-D"),
    ("W-empty-layer", _with(W=_set(0, np.ones((0, 3)))), ValueError, "W[0] must have at least one row"),
    ("X-wrong-rows", _with(X=np.ones((4, 5))), ValueError, "X must have n^0 = 3 rows"),
    ("X-1-D", _with(X=np.ones(3)), ValueError, "X must be 2-D"),
    ("X-3-D", _with(X=np.ones((3, 5, 1))), ValueError, "X must be 2-D"),
    ("m-zero", _with(X=np.ones((3, 0)), Y=np.ones((2, 0))), ValueError, "at least one sample (m >= 1)"),
    ("Y-wrong-shape", _with(Y=np.ones((2, 4))), ValueError, "Y must have shape (n^L, m) = (2, 5)"),
    ("Y-transposed", _with(Y=np.ones((5, 2))), ValueError, "Y must have shape (n^L, m) = (2, 5)"),
    ("Y-1-D", _with(Y=np.ones(5)), ValueError, "Y must be 2-D"),
    ("unknown-activation", _with(activations=["sigmoid", "softmax"]), ValueError, "known activations are"),
    ("activation-not-str", _with(activations=["sigmoid", None]), TypeError, "activation name must be a str"),
    ("mixed-W-dtypes", _with(W=lambda W: [W[0], W[1].astype(np.float32)]), TypeError, "W[1] is float32"),
    ("mixed-W-b-dtypes", _with(b=lambda b: [b[0].astype(np.float32), b[1]]), TypeError, "b[0] is float32"),
    (
        "X-other-float",
        _with(X=lambda X: X.astype(np.float32)),
        TypeError,
        "X must have the parameters' dtype",
    ),
    (
        "Y-other-float",
        _with(Y=lambda Y: Y.astype(np.float32)),
        TypeError,
        "Y must have the parameters' dtype",
    ),
    (
        "integer-W",
        _with(W=lambda W: [W[0].astype(np.int64), W[1]]),
        TypeError,
        "W[0] must have dtype float32",
    ),
    ("float16-W", _with(W=lambda W: [w.astype(np.float16) for w in W]), TypeError, "got float16"),
    ("complex-W", _with(W=lambda W: [W[0].astype(complex), W[1]]), TypeError, "W[0] must have dtype"),
    ("complex-X", _with(X=lambda X: X.astype(complex)), TypeError, "X must have dtype"),
    ("string-X", _with(X=np.full((3, 5), "a")), TypeError, "X must have dtype"),
    ("object-Y", _with(Y=np.full((2, 5), None)), TypeError, "Y must have dtype"),
    ("string-b", _with(b=_set(1, np.array(["x", "y"]))), TypeError, "b[1] must have dtype"),
    ("ragged-W", _with(W=_set(0, [[1.0, 2.0, 3.0], [1.0]])), TypeError, "W[0] must be an array of numbers"),
    ("nan-X", _with(X=_poison(np.nan)), ValueError, "X must be finite, got nan at index (0, 0)"),
    ("inf-Y", _with(Y=_poison(np.inf, (1, 3))), ValueError, "Y must be finite, got inf at index (1, 3)"),
    ("nan-W", _with(W=_poison_first(np.nan)), ValueError, "W[0] must be finite"),
    ("inf-b", _with(b=_poison_first(-np.inf)), ValueError, "b[0] must be finite"),
]


def _call(function, p, backend="loops"):
    if function is loopbp.forward:
        return function(p["W"], p["b"], p["X"], p["activations"], backend=backend)
    return function(p["W"], p["b"], p["X"], p["Y"], p["activations"], backend=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    "function", [loopbp.gradient, loopbp.error, loopbp.check_gradient], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("name,make,exception,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_rejected(name, make, exception, message, function, backend):
    with pytest.raises(exception) as info:
        _call(function, make(), backend)
    assert message in str(info.value)


FORWARD_IRRELEVANT = {
    "Y-wrong-shape",
    "Y-transposed",
    "Y-1-D",
    "Y-other-float",
    "object-Y",
    "inf-Y",
    "m-zero",
}


FORWARD_CASES = [c for c in BAD_INPUTS if c[0] not in FORWARD_IRRELEVANT]


@pytest.mark.parametrize("name,make,exception,message", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_bad_input_is_rejected_by_forward(name, make, exception, message):
    with pytest.raises(exception) as info:
        _call(loopbp.forward, make())
    assert message in str(info.value)


def test_forward_rejects_zero_samples():
    p = _with(X=np.ones((3, 0)))()
    with pytest.raises(ValueError, match=r"X must hold at least one sample"):
        _call(loopbp.forward, p)


@pytest.mark.parametrize("backend", ["Loops", "numpy", None, 3])
def test_unknown_backend(backend):
    with pytest.raises(ValueError, match="backend must be one of 'loops', 'einsum', 'cuda', got"):
        _call(loopbp.gradient, _problem(), backend)


def test_unknown_activation_lists_the_known_ones():
    p = _with(activations=["sigmoid", "softmax"])()
    with pytest.raises(ValueError) as info:
        _call(loopbp.gradient, p)
    for name in loopbp.ACTIVATIONS:
        assert repr(name) in str(info.value)


# --- what is accepted ------------------------------------------------------------


def _layouts(a):
    fortran = np.asfortranarray(a)
    strided = np.repeat(a, 2, axis=1)[:, ::2]
    readonly = a.copy()
    readonly.flags.writeable = False
    return {"fortran": fortran, "strided": strided, "readonly": readonly}


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_any_memory_layout_gives_the_same_result(layout, backend):
    p = _problem()
    expected = _call(loopbp.gradient, p, backend)
    q = {
        "W": [_layouts(w)[layout] for w in p["W"]],
        "b": [_layouts(v[:, None])[layout][:, 0] for v in p["b"]],
        "X": _layouts(p["X"])[layout],
        "Y": _layouts(p["Y"])[layout],
        "activations": tuple(p["activations"]),
    }
    assert q["X"].flags.c_contiguous is (layout == "readonly")
    E, dW, db = _call(loopbp.gradient, q, backend)
    assert E == expected[0]
    for x, y in zip(dW + db, expected[1] + expected[2]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(_call(loopbp.forward, q, backend), _call(loopbp.forward, p, backend))


@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8, bool])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_integer_and_bool_data_are_converted(kind, dtype):
    p = _problem(dtype)
    p["X"] = (p["X"] > 0).astype(kind)
    p["Y"] = (p["Y"] > 0).astype(kind)
    E, dW, db = _call(loopbp.gradient, p)
    p_float = dict(p, X=p["X"].astype(dtype), Y=p["Y"].astype(dtype))
    E_float, dW_float, _ = _call(loopbp.gradient, p_float)
    assert E == E_float and dW[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dW[0], dW_float[0])


def test_non_native_byte_order_is_accepted():
    p = _problem()
    swapped = {
        k: [a.astype(a.dtype.newbyteorder(">" if np.little_endian else "<")) for a in p[k]] for k in "Wb"
    }
    X = p["X"].astype(p["X"].dtype.newbyteorder(">" if np.little_endian else "<"))
    q = dict(p, X=X, **swapped)
    assert not q["X"].dtype.isnative
    E, dW, _ = _call(loopbp.gradient, q)
    assert E == _call(loopbp.gradient, p)[0] and dW[0].dtype.isnative


def test_nested_lists_are_accepted():
    p = _problem()
    q = dict(
        p,
        W=[w.tolist() for w in p["W"]],
        b=[v.tolist() for v in p["b"]],
        X=p["X"].tolist(),
        Y=p["Y"].tolist(),
    )
    assert _call(loopbp.gradient, q)[0] == _call(loopbp.gradient, p)[0]


@pytest.mark.parametrize("function", [loopbp.gradient, loopbp.error, loopbp.forward, loopbp.check_gradient])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_inputs_are_never_modified(function, backend):
    p = _problem()
    before = {
        k: [a.copy() for a in v] if isinstance(v, list) and k != "activations" else v for k, v in p.items()
    }
    before["X"], before["Y"] = p["X"].copy(), p["Y"].copy()
    _call(function, p, backend)
    for k in ("W", "b"):
        assert len(p[k]) == 2
        for a, a0 in zip(p[k], before[k]):
            np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(p["X"], before["X"])
    np.testing.assert_array_equal(p["Y"], before["Y"])
    assert p["activations"] == ["sigmoid", "identity"]


def test_gradient_arrays_are_independent_of_the_parameters():
    p = _problem()
    E, dW, db = _call(loopbp.gradient, p)
    dW[0][...] = 0.0
    db[1][...] = 0.0
    assert not np.shares_memory(dW[0], p["W"][0])
    assert np.all(dW[1] == _call(loopbp.gradient, p)[1][1])


OVERFLOWING = [
    ("float64-huge-weights", np.float64, 1e200, 1.0),
    ("float32-large-weights", np.float32, 1e30, 1e10),
]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    "function", [loopbp.gradient, loopbp.error, loopbp.forward], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("name,dtype,weight,x", OVERFLOWING, ids=[c[0] for c in OVERFLOWING])
def test_overflow_raises_instead_of_returning_inf_or_nan(name, dtype, weight, x, function, backend):
    # Every input is finite, but identity layers carry weight^2 * x past the dtype's range.
    p = {
        "W": [np.full((2, 2), weight, dtype), np.full((1, 2), weight, dtype)],
        "b": [np.zeros(2, dtype), np.zeros(1, dtype)],
        "X": np.full((2, 3), x, dtype),
        "Y": np.zeros((1, 3), dtype),
        "activations": ["identity", "identity"],
    }
    with pytest.raises(ValueError, match=f"overflowed in {np.dtype(dtype)}"):
        _call(function, p, backend)


def _same_arrays(xs, ys):
    return len(xs) == len(ys) and all(
        isinstance(x, np.ndarray)
        and isinstance(y, np.ndarray)
        and x.dtype == y.dtype
        and np.array_equal(x, y)
        for x, y in zip(xs, ys)
    )


def _changes_only_data(make):
    p, q = make(), _problem()
    return (
        _same_arrays(p["W"], q["W"]) and _same_arrays(p["b"], q["b"]) and p["activations"] == q["activations"]
    )


DATA_CASES = [c for c in BAD_INPUTS if _changes_only_data(c[1])]


def _network_calls(net, p, backend):
    return {
        "gradient": lambda: net.gradient(p["X"], p["Y"], backend=backend),
        "error": lambda: net.error(p["X"], p["Y"], backend=backend),
        "forward": lambda: net.forward(p["X"], backend=backend),
        "fit": lambda: net.fit(p["X"], p["Y"], learning_rate=0.1, epochs=1, backend=backend, progress=False),
    }


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("method", ["gradient", "error", "forward", "fit"])
@pytest.mark.parametrize("name,make,exception,message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_network_methods_reject_bad_data(name, make, exception, message, method, backend):
    if method == "forward" and name in FORWARD_IRRELEVANT:
        pytest.skip("forward takes no Y")
    p = make()
    net = loopbp.Network.from_parameters(p["W"], p["b"], p["activations"])
    before = net.theta.copy()
    with pytest.raises(exception) as info:
        _network_calls(net, p, backend)[method]()
    assert message in str(info.value)
    np.testing.assert_array_equal(net.theta, before)


def test_network_methods_reject_unknown_backend():
    p = _problem()
    net = loopbp.Network.from_parameters(p["W"], p["b"], p["activations"])
    for call in _network_calls(net, p, "fortran").values():
        with pytest.raises(ValueError, match="backend must be one of"):
            call()


def test_data_cases_cover_x_and_y():
    assert len(DATA_CASES) >= 10
    assert any("X" in c[3] for c in DATA_CASES) and any("Y" in c[3] for c in DATA_CASES)
