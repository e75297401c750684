"""Keeps the asv suite from rotting: `asv check` and a quick dry run of its cheap cases on
the installed loopbp (``-E existing``), with HOME in a temporary directory so that asv's
machine file does not touch the user's. Nothing is timed or asserted about speed."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytest.importorskip("asv", reason="asv is part of the test extra: pip install '.[test]'")


def _asv(*args, home):
    env = dict(os.environ, HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "asv", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    result = _asv("machine", "--yes", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    return home


def test_asv_check(home):
    result = _asv("check", "-E", "existing", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No problems found" in result.stdout


def test_asv_quick_dry_run_of_the_cheap_cases(home, tmp_path):
    result = _asv(
        "run", "-E", "existing", "--quick", "--dry-run", "--show-stderr",
        "--bench", "GradientToy|ForwardToy|Control",
        home=home,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "failed" not in output.lower(), output
    for name in ("GradientToy.time_gradient", "GradientToy.peakmem_gradient", "ForwardToy.time_forward"):
        assert name in output, output


def test_matmul_baseline_agrees_with_einsum():
    # The BLAS baseline of the suite computes the same gradient as loopbp.
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import common
    finally:
        sys.path.remove(str(ROOT))
    import loopbp
    from loopbp.agreement import TOLERANCE, gradient_difference

    for dtype in common.DTYPES:
        W, b, X, Y, acts = common.problem((5, 7, 3), 11, dtype)
        baseline = common.matmul_gradient(W, b, X, Y, acts)
        assert (
            gradient_difference(baseline, loopbp.gradient(W, b, X, Y, acts, backend="einsum"))
            <= TOLERANCE[np.dtype(dtype)]
        )
