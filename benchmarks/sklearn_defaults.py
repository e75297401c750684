"""The scikit-learn estimators with their defaults, against scikit-learn's own models.

Usage::

    python benchmarks/sklearn_defaults.py            # seeds 0..4

For every regression data set bundled with scikit-learn (diabetes; linnerud, three
targets) and a `make_regression` target shifted by 500, prints the 3-fold cross-validated
R^2 of ``make_pipeline(StandardScaler(), NetworkRegressor(random_state=seed))`` and of
``Ridge()`` (the folds shuffled with the same seed), and the gap; then the digits'
accuracy of ``NetworkClassifier`` the same way. Needs the ``sklearn`` extra.
"""

import argparse
import os
import sys

# The fast kernels from the first call, so that the scores do not depend on when a
# background compile ends (loopbp.cpu.warming).
os.environ["LOOPBP_COMPILE"] = "foreground"

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    args = parser.parse_args(argv)
    from sklearn.datasets import load_diabetes, load_digits, load_linnerud, make_regression
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loopbp.sklearn import NetworkClassifier, NetworkRegressor

    X_r, y_r = make_regression(n_samples=500, n_features=10, noise=10.0, random_state=0)
    sets = {
        "diabetes": load_diabetes(return_X_y=True),
        "linnerud": load_linnerud(return_X_y=True),
        "make_regression + 500": (X_r, y_r + 500.0),
    }
    print(f"{'data set':<24} {'seed':>4} {'NetworkRegressor':>17} {'Ridge':>8} {'gap':>7}")
    worst = np.inf
    for name, (X, y) in sets.items():
        for seed in range(args.seeds):
            folds = KFold(3, shuffle=True, random_state=seed)
            net = cross_val_score(
                make_pipeline(StandardScaler(), NetworkRegressor(random_state=seed)), X, y, cv=folds
            ).mean()
            ridge = cross_val_score(Ridge(), X, y, cv=folds).mean()
            worst = min(worst, net - ridge)
            print(f"{name:<24} {seed:>4} {net:>17.3f} {ridge:>8.3f} {net - ridge:>+7.3f}", flush=True)
    print(f"worst gap (NetworkRegressor - Ridge): {worst:+.3f}")
    X, y = load_digits(return_X_y=True)
    for seed in range(args.seeds):
        folds = StratifiedKFold(3, shuffle=True, random_state=seed)
        accuracy = cross_val_score(
            make_pipeline(StandardScaler(), NetworkClassifier(random_state=seed)), X, y, cv=folds
        ).mean()
        print(f"digits, NetworkClassifier, seed {seed}: accuracy {accuracy:.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
