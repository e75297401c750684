"""Keeps the asv suite from rotting: `asv check`, and a quick dry run of the whole suite on the
installed loopbp (``-E existing``) as a smoke run (``LOOPBP_BENCH_SMOKE=1``, benchmarks/common.py:
every benchmark with every parameter once, on tiny sizes), with HOME in a temporary directory
so that asv's machine file does not touch the user's. Nothing is timed or asserted about speed."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytest.importorskip("asv", reason="asv is part of the test extra: pip install '.[test]'")


def _asv(*args, home, env=None, timeout=300):
    env = dict(os.environ, **(env or {}), HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "asv", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
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


#: What a benchmark may skip itself for (asv prints "asv: skipped: ..."): a combination the
#: suite does not time, or, on a machine whose loops run the portable kernels, the peak.
EXPECTED_SKIPS = {
    "NotImplementedError('the thread count is a loop-backend parameter')",
    "NotImplementedError('the portable path has no register micro-kernel')",
}

# A benchmark's summary line, "[ 12.34%] ··· bench_x.Class.method    result": the result, or
# "ok" above a table of them, or "failed", "n/a" (skipped), "1/2 failed", ...
_SUMMARY = re.compile(r"^\[\s*[\d.]+%\] ··· (?P<name>[\w.]+)\s+(?P<result>\S.*?)\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def smoke_env(home):
    """The environment of a smoke run (``LOOPBP_BENCH_SMOKE=1``), its kernels compiled beforehand.

    The kernels stay in the cache that the rest of the test run uses, not in the temporary
    HOME, and one process compiles (or loads) each entry point the suite calls, through the
    benchmarks' own setup: compiling them inside the benchmarks instead could exceed asv's
    60 s timeout of a benchmark.
    """
    from loopbp import numba_cache

    env = {"LOOPBP_BENCH_SMOKE": "1", "LOOPBP_CACHE_DIR": numba_cache.cache_root()}
    warm_up = (
        "from benchmarks import bench_fit, bench_gradient, common\n"
        "for dtype in common.DTYPES:\n"
        "    bench_gradient.GradientToy().setup(dtype, 'loops', 'all')\n"
        "    bench_gradient.ForwardToy().setup(dtype, 'loops')\n"
        "    bench_fit.FitSine().setup(dtype)\n"
        "    bench_fit.FitDigits().setup(dtype)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", warm_up],
        cwd=ROOT,
        env=dict(os.environ, **env, HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return env


def test_asv_quick_dry_run_of_the_whole_suite(home, smoke_env):
    # Every benchmark with every parameter, once. forkserver: one process imports the suite
    # (numba, loopbp) and forks each of the ~180 runs from it, where asv.conf.json's fresh
    # interpreter for each would spend 1 to 1.5 s importing them, several minutes in all.
    # COLUMNS: wide enough that asv prints the benchmarks' names whole.
    result = _asv(
        "run", "-E", "existing", "--quick", "--dry-run", "--show-stderr", "--launch-method", "forkserver",
        home=home, env={**smoke_env, "COLUMNS": "250"}, timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "failed" not in output.lower(), output
    assert "timed out" not in output.lower(), output
    assert set(re.findall(r"asv: skipped: (.*)", output)) <= EXPECTED_SKIPS, output

    # Every benchmark that asv discovered (this run saved them in its results directory)
    # has one summary line, and a result there: not skipped as a whole.
    from asv.util import load_json

    results_dir = load_json(ROOT / "asv.conf.json", js_comments=True)["results_dir"]
    discovered = set(load_json(ROOT / results_dir / "benchmarks.json")) - {"version"}
    summaries = {}
    for line in _SUMMARY.finditer(output):
        summaries.setdefault(line["name"], []).append(line["result"])
    assert set(summaries) == discovered, output
    for name, results in summaries.items():
        assert len(results) == 1 and results[0] != "n/a", (name, results, output)


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
