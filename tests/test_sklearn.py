"""loopbp.sklearn: scikit-learn's estimator checks, composition, and the bridge to Network."""

import doctest
import pickle
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.6")

from sklearn.base import clone  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.datasets import load_digits, make_friedman1  # noqa: E402
from sklearn.exceptions import FitFailedWarning, NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression, RidgeCV  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import loopbp  # noqa: E402
import loopbp.sklearn  # noqa: E402
from loopbp.sklearn import NetworkClassifier, NetworkRegressor  # noqa: E402

#: The kernel-coverage run (NUMBA_DISABLE_JIT=1, docs/development.md, "Tests") runs every loop as
#: Python; these tests only repeat, for minutes there, lines that the others run.
heavy_without_jit = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="minutes without JIT; the lines are covered by the other tests"
)

# -- scikit-learn's estimator checks ------------------------------------------------------

#: Few epochs keep the checks fast; 20 still pass the checks' own accuracy (> 0.83 on
#: blobs) and R^2 (> 0.5) thresholds: measured 0.92 and 0.72 with these settings.
CHECKED = [
    NetworkRegressor(epochs=20),
    NetworkClassifier(epochs=20),
    NetworkRegressor(epochs=20, dtype="float32"),
    NetworkClassifier(epochs=20, dtype="float32"),
]


def expected_failed_checks(estimator):
    """The checks each estimator is expected to fail, each with its reason."""
    if isinstance(estimator, NetworkRegressor) and estimator.dtype == "float32":
        return {
            "check_regressor_multioutput": (
                "demands float64 predictions; dtype='float32' computes, and so predicts, in float32 by design"
            ),
        }
    return {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- data -----------------------------------------------------------------------------------


def regression_data(m=120, n=3, outputs=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    if outputs is not None:
        y = np.column_stack([y * (k + 1) / outputs for k in range(outputs)])
    return X, y


def classification_data(m=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 2))
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    return X, y


# -- the bridge: rows in, Network's columns underneath, nothing recomputed ---------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_size", [None, 16])
def test_regressor_equals_a_plain_network(dtype, batch_size):
    X, y = regression_data()
    params = dict(learning_rate=0.05, epochs=30, batch_size=batch_size)
    model = NetworkRegressor((8, 5), "tanh", dtype=dtype, init="glorot", random_state=3, **params).fit(X, y)

    # The network learns the standardised target, and predictions are mapped back.
    Y = y[None, :].astype(dtype)
    mean, scale = Y.mean(axis=1), Y.std(axis=1)
    assert np.array_equal(model.y_mean_, mean) and np.array_equal(model.y_scale_, scale)
    net = loopbp.Network([3, 8, 5, 1], ["tanh", "tanh", "identity"], dtype=dtype, seed=3, init="glorot")
    standardised = (Y - mean[:, None]) / scale[:, None]
    history = net.fit(np.ascontiguousarray(X.T, dtype), standardised, progress=False, **params)
    assert np.array_equal(model.network_.theta, net.theta)
    assert np.array_equal(model.loss_curve_, history)
    prediction = model.predict(X)
    assert prediction.dtype == np.dtype(dtype) and prediction.shape == (120,)
    expected = net.forward(np.ascontiguousarray(X.T, dtype)).T * scale + mean
    assert np.array_equal(prediction, expected[:, 0])


def test_regressor_defaults_suit_a_target_in_the_hundreds():
    # The same data, the target shifted by 500 and scaled by 100: with y standardised
    # inside fit, the defaults fit it as well as the target of order 1 (R^2 is invariant
    # under the affine map, and so is what the network learns, up to rounding).
    X, y = regression_data()
    small = NetworkRegressor(random_state=0).fit(X, y)
    large = NetworkRegressor(random_state=0).fit(X, 100 * y + 500)
    # (Without the standardisation, the network would learn another function of X from
    # the same start: the steps on E of 100 y + 500 are not those on E of y.)
    assert large.score(X, 100 * y + 500) == pytest.approx(small.score(X, y), abs=1e-6)
    np.testing.assert_allclose(large.predict(X), 100 * small.predict(X) + 500, rtol=1e-6)


def test_regressor_with_a_constant_target_stays_finite():
    X, _ = regression_data()
    model = NetworkRegressor(epochs=3, random_state=0).fit(X, np.full(X.shape[0], 7.0))
    # A zero standard deviation is left as 1: no 0/0, and predictions stay finite.
    assert model.y_mean_[0] == 7.0 and model.y_scale_[0] == 1.0
    assert np.all(np.isfinite(model.predict(X)))


def test_classifier_equals_the_series_digits_recipe():
    # examples.train_digits's recipe, by hand: one-hot columns, identity output, argmax.
    X, y = classification_data()
    model = NetworkClassifier((10,), learning_rate=0.1, epochs=40, batch_size=None, random_state=0).fit(X, y)

    net = loopbp.Network([2, 10, 3], ["sigmoid", "identity"], seed=0)
    codes = np.unique(y, return_inverse=True)[1]
    net.fit(np.ascontiguousarray(X.T), np.eye(3)[codes].T, learning_rate=0.1, epochs=40, progress=False)
    assert np.array_equal(model.network_.theta, net.theta)
    assert np.array_equal(model.predict(X), np.array(["a", "b", "c"])[net.forward(X.T).argmax(axis=0)])


def test_rows_are_samples_in_any_layout():
    X, y = regression_data()
    model = NetworkRegressor(epochs=5, random_state=0).fit(X, y)
    expected = model.predict(X)
    assert np.array_equal(model.predict(np.asfortranarray(X)), expected)
    assert np.array_equal(model.predict(X.tolist()), expected)
    assert np.array_equal(model.predict(X[:7]), expected[:7])
    assert model.network_.sizes == (3, 32, 1) and model.n_features_in_ == 3


# -- targets -------------------------------------------------------------------------------


def test_regressor_targets_keep_their_shape():
    X, y = regression_data(outputs=2)
    model = NetworkRegressor(epochs=5, random_state=0).fit(X, y)
    assert model.predict(X).shape == (120, 2) and model.n_outputs_ == 2
    assert model.network_.sizes[-1] == 2
    model.fit(X, y[:, :1])
    assert model.predict(X).shape == (120, 1)
    model.fit(X, y[:, 0])
    assert model.predict(X).shape == (120,) and model.n_outputs_ == 1


def test_classifier_labels():
    X, y = classification_data()
    model = NetworkClassifier(epochs=50, random_state=0).fit(X, y)
    assert list(model.classes_) == ["a", "b", "c"] and model.network_.sizes == (2, 32, 3)
    assert set(model.predict(X)) <= {"a", "b", "c"}
    assert model.score(X, y) > max(np.mean(y == c) for c in "abc")  # it learned something

    binary = np.where(X[:, 0] > 0, 7, -1)
    model.fit(X, binary)  # binary: two outputs, one per class, as for any number of classes
    assert list(model.classes_) == [-1, 7] and model.network_.sizes == (2, 32, 2)
    assert model.score(X, binary) > 0.9  # one straight boundary

    model.fit(X, np.full(len(X), "only"))
    assert list(model.predict(X[:3])) == ["only"] * 3


def test_no_predict_proba():
    model = NetworkClassifier(epochs=1).fit(*classification_data())
    assert not hasattr(model, "predict_proba") and not hasattr(model, "predict_log_proba")
    assert "no** ``predict_proba``" in NetworkClassifier.__doc__


# -- composition ---------------------------------------------------------------------------


@heavy_without_jit
def test_classifier_in_a_pipeline_on_digits():
    # The first 900 digits, 3-fold, defaults apart from the seed, against logistic
    # regression in the same pipeline. Plain gradient descent on squared error from 600
    # images per fold need not beat a converged linear model; within 5 points of it is a
    # working classifier (chance is 0.1). Measured: 0.891 against 0.901.
    X, y = load_digits(return_X_y=True)
    X, y = X[:900], y[:900]
    network = cross_val_score(make_pipeline(StandardScaler(), NetworkClassifier(random_state=0)), X, y, cv=3)
    linear = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), X, y, cv=3)
    assert network.mean() > linear.mean() - 0.05


@heavy_without_jit
def test_regressor_in_a_pipeline_on_friedman1():
    # Friedman #1 (noise 0.5), 3-fold, X and y standardised, defaults apart from the
    # seed. The target is non-linear in X (sin(pi x1 x2), (x3 - 0.5)^2), so a network that
    # learned it must beat the best linear model clearly. Measured: R^2 0.872 against 0.727.
    X, y = make_friedman1(n_samples=500, noise=0.5, random_state=0)

    def scores(regressor):
        model = make_pipeline(
            StandardScaler(), TransformedTargetRegressor(regressor, transformer=StandardScaler())
        )
        return cross_val_score(model, X, y, cv=3).mean()

    assert scores(NetworkRegressor(random_state=0)) > scores(RidgeCV()) + 0.05


# -- partial_fit ---------------------------------------------------------------------------


def test_regressor_partial_fit_continues_training():
    X, y = regression_data()
    model = NetworkRegressor(learning_rate=0.1, batch_size=None, random_state=0)
    errors = []
    for _ in range(50):
        network = getattr(model, "network_", None)
        model.partial_fit(X, y)
        assert network is None or model.network_ is network
        errors.append(np.mean((model.predict(X) - y) ** 2))
    assert errors[-1] < 0.7 * errors[0] and all(b < a for a, b in zip(errors, errors[1:]))
    assert model.n_iter_ == len(model.loss_curve_) == 50

    # Full-batch steps on the same data: partial_fit k times is fit for k epochs, bit for bit.
    fitted = clone(model).set_params(epochs=50).fit(X, y)
    assert np.array_equal(fitted.network_.theta, model.network_.theta)
    assert np.array_equal(fitted.loss_curve_, model.loss_curve_)


def test_regressor_partial_fit_in_mini_batches():
    X, y = regression_data(m=400, outputs=2)
    model = NetworkRegressor(batch_size=20, random_state=0)
    for start in range(0, 400, 100):
        model.partial_fit(X[start : start + 100], y[start : start + 100])
    assert model.n_iter_ == 4 and model.predict(X).shape == (400, 2)
    with pytest.raises(ValueError, match="y has 1 outputs, but .* trained with 2"):
        model.partial_fit(X, y[:, 0])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :2], y)


def test_classifier_partial_fit():
    X, y = classification_data(m=300)
    model = NetworkClassifier(batch_size=10, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X, y)
    model.partial_fit(X[:50][y[:50] != "c"], y[:50][y[:50] != "c"], classes=["c", "b", "a"])
    assert list(model.classes_) == ["a", "b", "c"] and model.network_.sizes[-1] == 3
    one_hot = (y[:, None] == model.classes_).T.astype(float)  # the targets, as columns
    errors, accuracies = [], []
    for _ in range(10):
        model.partial_fit(X, y)
        errors.append(model.network_.error(X.T, one_hot))
        accuracies.append(model.score(X, y))
    assert errors[-1] < errors[0] and accuracies[-1] > accuracies[0]
    assert model.n_iter_ == 11
    model.partial_fit(X[:10], y[:10], classes=["a", "b", "c"])  # the same classes again
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        model.partial_fit(X, y, classes=["a", "b"])
    with pytest.raises(ValueError, match="previously unseen labels"):
        model.partial_fit(X[:3], ["a", "b", "d"])


def test_fit_starts_over_after_partial_fit():
    X, y = regression_data()
    model = NetworkRegressor(epochs=3, random_state=0)
    model.partial_fit(X, y).partial_fit(X, y)
    model.fit(X, y)
    assert model.n_iter_ == 3
    assert np.array_equal(model.network_.theta, clone(model).fit(X, y).network_.theta)


# -- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(hidden_layer_sizes="32"), TypeError, "hidden_layer_sizes must be a tuple of ints"),
        (dict(hidden_layer_sizes=(8, 0)), ValueError, r"hidden_layer_sizes\[1\] == 0"),
        (dict(hidden_layer_sizes=(8.0,)), TypeError, r"hidden_layer_sizes\[0\] must be an instance of int"),
        (dict(hidden_layer_sizes=(True,)), TypeError, r"hidden_layer_sizes\[0\] must be an instance of"),
        (dict(activation="softmax"), ValueError, "activation must be one of"),
        (dict(activation=None), ValueError, "activation must be one of"),
        (dict(learning_rate=0.0), ValueError, "learning_rate == 0.0, must be > 0"),
        (dict(learning_rate=-1), ValueError, "learning_rate == -1, must be > 0"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate == inf, must be finite"),
        (dict(learning_rate=float("nan")), ValueError, "learning_rate == nan, must be finite"),
        (dict(learning_rate="0.1"), TypeError, "learning_rate must be an instance of float"),
        (dict(epochs=0), ValueError, "epochs == 0, must be > 0"),
        (dict(epochs=2.5), TypeError, "epochs must be an instance of int"),
        (dict(epochs=True), TypeError, "epochs must be an instance of Integral, not bool"),
        (dict(batch_size=0), ValueError, "batch_size == 0, must be > 0"),
        (dict(batch_size="all"), TypeError, "batch_size must be an instance of int"),
        (dict(dtype="float16"), ValueError, "dtype must be 'float64' or 'float32'"),
        (dict(dtype=None), ValueError, "dtype must be 'float64' or 'float32'"),
        (dict(dtype="nonsense"), ValueError, "dtype must be 'float64' or 'float32'"),
        (dict(init="xavier"), ValueError, "init must be one of"),
        (dict(random_state=-1), ValueError, "random_state must be non-negative"),
        (dict(random_state=1.5), TypeError, "random_state must be None, a non-negative int"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else None,
)
@pytest.mark.parametrize("cls", [NetworkRegressor, NetworkClassifier])
def test_bad_parameters_are_named_in_fit(cls, params, error, match):
    X, y = classification_data(m=20)
    y = y if cls is NetworkClassifier else X[:, 0]
    model = cls(**params)  # stored as given: __init__ validates nothing
    assert model.get_params()[next(iter(params))] is next(iter(params.values()))
    with pytest.raises(error, match=match):
        model.fit(X, y)
    fresh = cls(**params)
    with pytest.raises(error, match=match):
        fresh.partial_fit(X, y, **({"classes": np.unique(y)} if cls is NetworkClassifier else {}))
    assert not hasattr(fresh, "network_")


def test_accepted_parameter_forms():
    X, y = regression_data(m=30)
    for params, sizes in [
        (dict(hidden_layer_sizes=4), (3, 4, 1)),
        (dict(hidden_layer_sizes=[4, np.int64(2)]), (3, 4, 2, 1)),
        (dict(hidden_layer_sizes=()), (3, 1)),  # no hidden layer: a linear model
    ]:
        assert NetworkRegressor(epochs=1, **params).fit(X, y).network_.sizes == sizes
    for dtype in ["float32", np.float32, np.dtype("float32")]:
        model = NetworkRegressor(epochs=1, dtype=dtype).fit(X, y)
        assert model.network_.dtype == np.float32 and model.predict(X).dtype == np.float32
    assert NetworkRegressor(epochs=1, activation="relu", init="he").fit(X, y).network_.activations == (
        "relu",
        "identity",
    )


def test_random_state():
    X, y = regression_data(m=30)
    same = [NetworkRegressor(epochs=2, random_state=5).fit(X, y).network_.theta for _ in range(2)]
    assert np.array_equal(*same)
    assert not np.array_equal(NetworkRegressor(epochs=2).fit(X, y).network_.theta, same[0])
    # scikit-learn's RandomState instances and loopbp's Generators are consumed, as usual.
    for state in [np.random.RandomState(0), np.random.default_rng(0)]:
        model = NetworkRegressor(epochs=2, random_state=state)
        first = model.fit(X, y).network_.theta.copy()
        assert not np.array_equal(model.fit(X, y).network_.theta, first)


# -- failures and persistence --------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite:UserWarning")
def test_divergence_propagates_and_leaves_the_estimator_unfitted():
    X, y = regression_data()
    model = NetworkRegressor(learning_rate=1e6, epochs=50, random_state=0)
    with pytest.raises(loopbp.TrainingDiverged, match="learning_rate = 1000000.0"):
        model.fit(X * 100, y)
    with pytest.raises(NotFittedError):
        model.predict(X)
    # Model selection counts a diverged fit as failed (error_score) and goes on.
    search = GridSearchCV(model, {"learning_rate": [1e6, 0.01]}, cv=2)
    with pytest.warns(FitFailedWarning, match="2 fits failed out of a total of 4"):
        search.fit(X * 100, y)
    assert search.best_params_ == {"learning_rate": 0.01}
    assert np.isnan(search.cv_results_["mean_test_score"][0])


def test_unfitted_and_wrong_width():
    X, y = regression_data()
    with pytest.raises(NotFittedError):
        NetworkClassifier().predict(X)
    model = NetworkRegressor(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but NetworkRegressor is expecting 3"):
        model.predict(X[:, :2])


@pytest.mark.parametrize("cls", [NetworkRegressor, NetworkClassifier])
def test_pickle_keeps_a_whole_network(cls):
    X, y = classification_data()
    y = y if cls is NetworkClassifier else X[:, 0] * X[:, 1]
    model = cls(epochs=3, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(model))
    assert np.array_equal(copy.predict(X), model.predict(X))
    # W and b stay views of theta, so training the copy trains what forward reads.
    net = copy.network_
    assert all(np.shares_memory(p, net.theta) for p in net.W + net.b)
    assert net.seed == 0 and net.dtype == model.network_.dtype
    copy.partial_fit(X, y)
    model.partial_fit(X, y)
    assert np.array_equal(copy.network_.theta, model.network_.theta)
    assert np.array_equal(copy.network_.W[0], model.network_.W[0])


def test_docstring_examples():
    result = doctest.testmod(loopbp.sklearn, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


# -- scikit-learn stays optional -----------------------------------------------------------


def test_import_without_scikit_learn():
    # In a fresh interpreter: `import loopbp` must not import scikit-learn, and
    # `loopbp.sklearn` without it must say how to install it.
    code = textwrap.dedent(
        """
        import sys
        import loopbp
        assert "sklearn" not in sys.modules, "import loopbp imported sklearn"
        sys.modules["sklearn"] = None  # as if scikit-learn were not installed
        try:
            import loopbp.sklearn
        except ImportError as err:
            print(err)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'pip install "loopbp[sklearn]"' in result.stdout
