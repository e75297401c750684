"""scikit-learn estimators backed by `loopbp.Network`: `NetworkRegressor` and `NetworkClassifier`.

Samples are **rows** here, as scikit-learn expects: X has shape (n_samples, n_features)
and y has shape (n_samples,) or (n_samples, n_outputs). `loopbp.Network` takes samples as
**columns**, X of shape (n^0, m); the estimators transpose at the boundary and do
nothing else to the numbers: every gradient, step and forward pass is the network's own
(`Network.fit` and `Network.forward`, loops backend), so an estimator predicts exactly
what a `Network` trained the same way predicts.

Both train the series' way: hidden layers with one activation, an identity output layer,
E = 1/(2m) times the sum of squared errors, and plain gradient descent,
theta <- theta - learning_rate * grad E, full-batch or on shuffled mini-batches.

Needs scikit-learn 1.6 or newer (``pip install "loopbp[sklearn]"``); ``import loopbp``
alone never imports it.

Examples
--------
>>> import numpy as np
>>> from loopbp.sklearn import NetworkRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((200, 2))              # 200 samples, one per row
>>> y = np.sin(X[:, 0] + X[:, 1])
>>> model = NetworkRegressor(random_state=0).fit(X, y)
>>> model.predict(X[:3]).shape
(3,)
>>> bool(model.score(X, y) > 0.9)                  # R^2: 0.96 on the machine this ran on
True
>>> model.network_                                 # the loopbp network behind it
Network(sizes=[2, 32, 1], activations=['sigmoid', 'identity'], dtype=np.float64)
"""

import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import check_scalar
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # absent, or older than 1.6 (no validate_data, no __sklearn_tags__)
    raise ImportError(
        'loopbp.sklearn needs scikit-learn 1.6 or newer: pip install "loopbp[sklearn]"'
    ) from err

from .activations import ACTIVATIONS
from .errors import TrainingDiverged
from .network import Network
from .validation import INITS

__all__ = ["NetworkClassifier", "NetworkRegressor"]


def _positive(value, name, kind):
    """`value` checked as a positive int (kind Integral) or a positive finite number (kind Real)."""
    if isinstance(value, (bool, np.bool_)):  # bool is an Integral to Python, not a count here
        raise TypeError(f"{name} must be an instance of {kind.__name__}, not bool.")
    check_scalar(value, name, kind, min_val=0, include_boundaries="neither")
    if not np.isfinite(value):
        raise ValueError(f"{name} == {value}, must be finite.")
    return value


def _network_seed(random_state, draw=True):
    """The `seed` for `loopbp.Network` that `random_state` stands for.

    None and ints pass through (so ``random_state=s`` is ``Network(seed=s)``); a
    `numpy.random.RandomState` gives one int drawn from it (unless `draw` is False, which
    only validates), as scikit-learn's estimators use theirs; a `numpy.random.Generator`
    is handed to the network, which draws from it.
    """
    if random_state is None or isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max)) if draw else None
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, numbers.Integral):
        raise TypeError(
            "random_state must be None, a non-negative int, a numpy.random.RandomState or a "
            f"numpy.random.Generator, got {type(random_state).__name__} {random_state!r}"
        )
    if random_state < 0:
        raise ValueError(f"random_state must be non-negative, got {random_state}")
    return int(random_state)


class _NetworkEstimator(BaseEstimator):
    """What the regressor and the classifier share: parameters, the network, training."""

    def __init__(
        self,
        hidden_layer_sizes=(32,),
        activation="sigmoid",
        *,
        learning_rate=0.1,
        epochs=500,
        batch_size=32,
        dtype="float64",
        init="series",
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.dtype = dtype
        self.init = init
        self.random_state = random_state

    # -- parameters ---------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, (bool, np.bool_)):
            sizes = (sizes,)  # one hidden layer, as MLPRegressor accepts
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (tuple, list, np.ndarray)):
            raise TypeError(
                "hidden_layer_sizes must be a tuple of ints (one width per hidden layer), got "
                f"{type(sizes).__name__} {sizes!r}"
            )
        for k, n in enumerate(sizes):
            _positive(n, f"hidden_layer_sizes[{k}]", numbers.Integral)
        return tuple(int(n) for n in sizes)

    def _network_dtype(self):
        try:
            # np.dtype(None) is float64, and np.dtype compares equal to None: refuse it first.
            dtype = np.dtype(self.dtype) if self.dtype is not None else None
        except TypeError:
            dtype = None
        if dtype is None or dtype.type not in (np.float64, np.float32):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        return np.dtype(dtype.type)  # native byte order

    def _check_parameters(self):
        """Validate every constructor parameter; return the network's hidden sizes and dtype."""
        hidden = self._hidden_sizes()
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        _positive(self.learning_rate, "learning_rate", numbers.Real)
        _positive(self.epochs, "epochs", numbers.Integral)
        if self.batch_size is not None:
            _positive(self.batch_size, "batch_size", numbers.Integral)
        if not isinstance(self.init, str) or self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        _network_seed(self.random_state, draw=False)
        return hidden, self._network_dtype()

    # -- training -----------------------------------------------------------------------

    def _new_network(self, n_features, n_outputs, hidden, dtype):
        sizes = [n_features, *hidden, n_outputs]
        activations = [self.activation] * len(hidden) + ["identity"]
        return Network(sizes, activations, dtype=dtype, seed=_network_seed(self.random_state), init=self.init)

    def _train_network(self, X, Y, hidden, epochs):
        """Train for `epochs` epochs: a new network when `hidden` is given, else `network_` on.

        X holds the samples as rows (m, n^0), Y the targets as columns (n^L, m).
        """
        new = hidden is not None
        network = self._new_network(X.shape[1], Y.shape[0], hidden, X.dtype) if new else self.network_
        try:
            history = network.fit(
                X.T,  # the boundary: Network takes samples as columns
                Y,
                learning_rate=self.learning_rate,
                epochs=epochs,
                batch_size=self.batch_size,
                progress=False,
            )
        except TrainingDiverged:
            if new:  # no half-made model: the estimator is left unfitted
                self._forget()
            raise
        self.network_ = network
        self.loss_curve_ = history if new else np.concatenate([self.loss_curve_, history])
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _forget(self):
        """Drop every fitted attribute (those ending in an underscore)."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "network_")

    def _validate_training_data(self, X, y, reset, **y_options):
        """validate_data for fit and partial_fit, X converted to the network's dtype."""
        dtype = self._network_dtype() if reset else self.network_.dtype
        return validate_data(self, X, y, reset=reset, dtype=dtype, **y_options)

    def _outputs(self, X):
        """A^L for the rows of X, as rows: shape (n_samples, n^L)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        return self.network_.forward(X.T).T


class NetworkRegressor(RegressorMixin, _NetworkEstimator):
    """Regression with a `loopbp.Network`: squared error, identity output, gradient descent.

    **Samples are rows** (scikit-learn's convention): X has shape (n_samples, n_features)
    and y shape (n_samples,) or (n_samples, n_outputs). The `loopbp.Network` behind it,
    `network_`, takes samples as columns; the estimator transposes at the boundary and
    leaves all the arithmetic to the network.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(32,)
        The width of each hidden layer; ``()`` gives a linear model. A single int means
        one hidden layer.
    activation : {"sigmoid", "tanh", "relu", "identity"}, default="sigmoid"
        The activation of every hidden layer. The output layer is always the identity,
        as in the series.
    learning_rate : float, default=0.1
        alpha in the step theta <- theta - alpha grad E.
    epochs : int, default=500
        Passes over the training data in `fit`.
    batch_size : int or None, default=32
        Samples per gradient step; each epoch shuffles the samples first. None takes one
        full-batch step per epoch, as the series does (that needs many more epochs).
    dtype : {"float64", "float32"}, default="float64"
        The dtype of the network's parameters and of every computation; X and y are
        converted to it, and predictions have it.
    init : {"series", "glorot", "he"}, default="series"
        The initialisation of `loopbp.Network`: ``"series"`` draws every weight and bias
        as 0.2 N(0, 1).
    random_state : int, numpy.random.RandomState, numpy.random.Generator or None, default=None
        Seeds the initialisation and the shuffling: an int s is ``Network(seed=s)``, so a
        fixed int trains reproducibly, bit for bit. None draws fresh entropy. Named as
        scikit-learn names it, so that its tools (cloning, ensembles, the estimator
        checks) can set it.

    Attributes
    ----------
    network_ : loopbp.Network
        The trained network, of sizes ``[n_features_in_, *hidden_layer_sizes, n_outputs_]``.
        It takes samples as columns.
    loss_curve_ : ndarray, one entry per epoch
        E per epoch, as `loopbp.Network.fit` returns it; `partial_fit` appends one entry
        per call.
    n_iter_ : int
        Epochs run: ``len(loss_curve_)``.
    n_outputs_ : int
        The number of targets.
    y_mean_, y_scale_ : ndarray, one entry per target
        The mean and standard deviation (1 where it is 0) of each target in `fit` (or the
        first `partial_fit`): the network learns ``(y - y_mean_) / y_scale_``, and `predict`
        maps its outputs back.
    n_features_in_ : int
        The number of features seen in `fit`.
    feature_names_in_ : ndarray, one entry per feature
        The feature names, when X had string column names.

    Raises
    ------
    loopbp.TrainingDiverged
        From `fit` or `partial_fit`, when E or a parameter stops being finite, or E grows
        past 10,000 times its first epoch's (within one `fit`); try a
        smaller `learning_rate`. It is loopbp's own exception (a `FloatingPointError`),
        passed on unchanged; model-selection tools such as `GridSearchCV` score such a fit
        as failed (``error_score``) and go on. A diverged `fit`, or first
        `partial_fit`, leaves the estimator unfitted; a later `partial_fit` leaves the
        network at its last finite parameters, and `loss_curve_` as it was.

    See Also
    --------
    NetworkClassifier : the same network with one-hot targets.
    loopbp.Network : the network, samples as columns.

    Notes
    -----
    Constructor parameters are stored as given and validated in `fit` and the first
    `partial_fit`: a bad one raises a ``TypeError`` or ``ValueError`` naming it.

    Gradient descent with squared error is sensitive to the scale of X and y. The
    estimator standardises y itself (`y_mean_`, `y_scale_`), so that the defaults suit a
    target in the hundreds as well as one of order 1, and `loss_curve_` is E of the
    standardised target; standardise X yourself (e.g.
    ``make_pipeline(StandardScaler(), NetworkRegressor())``).

    Examples
    --------
    >>> import numpy as np
    >>> from loopbp.sklearn import NetworkRegressor
    >>> X = np.linspace(-2, 2, 100)[:, None]        # 100 samples, one feature
    >>> model = NetworkRegressor(hidden_layer_sizes=(20,), random_state=0).fit(X, X[:, 0] ** 2)
    >>> model.network_.sizes
    (1, 20, 1)
    >>> bool(model.score(X, X[:, 0] ** 2) > 0.9)       # R^2: 0.98 on the machine this ran on
    True
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validate_Xy(self, X, y, reset):
        X, y = self._validate_training_data(X, y, reset, multi_output=True, y_numeric=True)
        Y = y[None, :] if y.ndim == 1 else y.T
        return X, Y.astype(X.dtype, copy=False), y.ndim

    def fit(self, X, y):
        """Train a new network on X and y for `epochs` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One sample per row.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.

        Returns
        -------
        self : NetworkRegressor
        """
        hidden, _ = self._check_parameters()
        X, Y, ndim = self._validate_Xy(X, y, reset=True)
        y_mean, y_scale = _standardisation(Y)
        self._train_network(X, (Y - y_mean[:, None]) / y_scale[:, None], hidden, self.epochs)
        self.n_outputs_, self._y_ndim = Y.shape[0], ndim
        self.y_mean_, self.y_scale_ = y_mean, y_scale
        return self

    def partial_fit(self, X, y):
        """One epoch of gradient descent on this batch, continuing the network.

        Each call runs one pass over the given samples in mini-batches of `batch_size`
        (one step for None), as one epoch of `fit` would; with an int `random_state`,
        `Network.fit` seeds that shuffle afresh, so every call orders a batch of a given
        size the same way. The first call on an unfitted estimator builds the network and
        takes the standardisation of y (`y_mean_`, `y_scale_`) from its batch, so give it a
        batch that shows the target's spread; a later `fit` starts over.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One sample per row.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets; the number of outputs must stay the same from call to call.

        Returns
        -------
        self : NetworkRegressor
        """
        first_call = not hasattr(self, "network_")
        hidden = self._check_parameters()[0] if first_call else None
        X, Y, ndim = self._validate_Xy(X, y, reset=first_call)
        if not first_call and Y.shape[0] != self.n_outputs_:
            raise ValueError(
                f"y has {Y.shape[0]} outputs, but this NetworkRegressor was trained with {self.n_outputs_}"
            )
        y_mean, y_scale = _standardisation(Y) if first_call else (self.y_mean_, self.y_scale_)
        self._train_network(X, (Y - y_mean[:, None]) / y_scale[:, None], hidden, 1)
        if first_call:
            self.n_outputs_, self._y_ndim = Y.shape[0], ndim
            self.y_mean_, self.y_scale_ = y_mean, y_scale
        return self

    def predict(self, X):
        """The network's outputs for the rows of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when y was 1-D in `fit`; of the network's dtype.
        """
        outputs = self._outputs(X)
        if hasattr(self, "y_mean_"):  # (absent from a model pickled by loopbp 0.3.0 or earlier)
            outputs = outputs * self.y_scale_ + self.y_mean_
        return outputs[:, 0].copy() if self._y_ndim == 1 else np.ascontiguousarray(outputs)


def _standardisation(Y):
    """The mean and scale of each target (each row of Y): the standard deviation, or 1 where it is 0."""
    mean = Y.mean(axis=1)
    scale = Y.std(axis=1)
    return mean, np.where(scale > 0, scale, 1).astype(Y.dtype)


class NetworkClassifier(ClassifierMixin, _NetworkEstimator):
    """Classification with a `loopbp.Network` as the series trains digits: one-hot targets.

    Each class gets one output unit; the targets are one-hot, the error is squared error
    on the identity output layer, and the prediction is the class of the largest output
    (`loopbp.examples.train_digits` is this recipe). Binary problems get two outputs.

    There is **no** ``predict_proba``: squared error with an identity output does not
    estimate probabilities (the outputs need not lie in [0, 1] nor sum to 1), so none is
    offered rather than a made-up one.

    **Samples are rows** (scikit-learn's convention): X has shape (n_samples, n_features)
    and y shape (n_samples,). The `loopbp.Network` behind it, `network_`, takes samples
    as columns; the estimator transposes at the boundary and leaves all the arithmetic
    to the network.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(32,)
        The width of each hidden layer; ``()`` gives a linear model. A single int means
        one hidden layer.
    activation : {"sigmoid", "tanh", "relu", "identity"}, default="sigmoid"
        The activation of every hidden layer. The output layer is always the identity,
        as in the series.
    learning_rate : float, default=0.1
        alpha in the step theta <- theta - alpha grad E.
    epochs : int, default=500
        Passes over the training data in `fit`.
    batch_size : int or None, default=32
        Samples per gradient step; each epoch shuffles the samples first. None takes one
        full-batch step per epoch, as the series does (that needs many more epochs).
    dtype : {"float64", "float32"}, default="float64"
        The dtype of the network's parameters and of every computation; X is converted
        to it.
    init : {"series", "glorot", "he"}, default="series"
        The initialisation of `loopbp.Network`: ``"series"`` draws every weight and bias
        as 0.2 N(0, 1).
    random_state : int, numpy.random.RandomState, numpy.random.Generator or None, default=None
        Seeds the initialisation and the shuffling: an int s is ``Network(seed=s)``, so a
        fixed int trains reproducibly, bit for bit. None draws fresh entropy. Named as
        scikit-learn names it, so that its tools (cloning, ensembles, the estimator
        checks) can set it.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted; output unit k stands for ``classes_[k]``.
    network_ : loopbp.Network
        The trained network, of sizes ``[n_features_in_, *hidden_layer_sizes, n_classes]``.
        It takes samples as columns.
    loss_curve_ : ndarray, one entry per epoch
        E per epoch, as `loopbp.Network.fit` returns it; `partial_fit` appends one entry
        per call.
    n_iter_ : int
        Epochs run: ``len(loss_curve_)``.
    n_features_in_ : int
        The number of features seen in `fit`.
    feature_names_in_ : ndarray, one entry per feature
        The feature names, when X had string column names.

    Raises
    ------
    loopbp.TrainingDiverged
        From `fit` or `partial_fit`, when E or a parameter stops being finite, or E grows
        past 10,000 times its first epoch's (within one `fit`); try a
        smaller `learning_rate`. It is loopbp's own exception (a `FloatingPointError`),
        passed on unchanged; model-selection tools such as `GridSearchCV` score such a fit
        as failed (``error_score``) and go on. A diverged `fit`, or first
        `partial_fit`, leaves the estimator unfitted; a later `partial_fit` leaves the
        network at its last finite parameters, and `loss_curve_` as it was.

    See Also
    --------
    NetworkRegressor : the same network on real-valued targets.
    loopbp.examples.train_digits : the series' recipe this follows.

    Notes
    -----
    Constructor parameters are stored as given and validated in `fit` and the first
    `partial_fit`: a bad one raises a ``TypeError`` or ``ValueError`` naming it.
    Standardise X (e.g. ``make_pipeline(StandardScaler(), NetworkClassifier())``).

    Examples
    --------
    >>> import numpy as np
    >>> from loopbp.sklearn import NetworkClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 2))
    >>> y = np.where(X[:, 0] + X[:, 1] ** 2 > 1, "above", "below")
    >>> model = NetworkClassifier(random_state=0).fit(X, y)
    >>> model.classes_
    array(['above', 'below'], dtype='<U5')
    >>> bool(model.score(X, y) > 0.9)                  # accuracy: 0.94 on the machine this ran on
    True
    >>> hasattr(model, "predict_proba")
    False
    """

    def _one_hot(self, y, dtype):
        codes = self._encoder.transform(y)  # a ValueError for labels outside classes_
        Y = np.zeros((len(self.classes_), len(codes)), dtype)
        Y[codes, np.arange(len(codes))] = 1
        return Y

    def _set_classes(self, classes):
        self._encoder = LabelEncoder().fit(classes)
        self.classes_ = self._encoder.classes_

    def fit(self, X, y):
        """Train a new network on X and the one-hot encoding of y for `epochs` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One sample per row.
        y : array-like of shape (n_samples,)
            The class labels: any labels `numpy.unique` can sort (ints, strings, ...).

        Returns
        -------
        self : NetworkClassifier
        """
        hidden, _ = self._check_parameters()
        X, y = self._validate_training_data(X, y, reset=True)
        check_classification_targets(y)
        self._set_classes(y)
        self._train_network(X, self._one_hot(y, X.dtype), hidden, self.epochs)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch of gradient descent on this batch, continuing the network.

        Each call runs one pass over the given samples in mini-batches of `batch_size`
        (one step for None), as one epoch of `fit` would; with an int `random_state`,
        `Network.fit` seeds that shuffle afresh, so every call orders a batch of a given
        size the same way. The first call on an unfitted estimator builds the network, and
        must name every class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One sample per row.
        y : array-like of shape (n_samples,)
            The class labels, each one of `classes`.
        classes : array-like of shape (n_classes,), default=None
            Every class label that any call will see. Required on the first call (a batch
            need not hold every class); later calls may omit it or repeat it unchanged.

        Returns
        -------
        self : NetworkClassifier
        """
        first_call = not hasattr(self, "network_")
        hidden = None
        if first_call:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            hidden = self._check_parameters()[0]
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"classes={classes!r} differs from the classes of the first call, {self.classes_!r}"
            )
        X, y = self._validate_training_data(X, y, reset=first_call)
        check_classification_targets(y)
        if first_call:
            self._set_classes(unique_labels(classes))
        return self._train_network(X, self._one_hot(y, X.dtype), hidden, 1)

    def predict(self, X):
        """The class of the largest output for each row of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from `classes_`.
        """
        outputs = self._outputs(X)  # first: it checks that the estimator is fitted
        return self.classes_[np.argmax(outputs, axis=1)]
