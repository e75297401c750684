"""Keeps the asv suite from rotting: `asv check`, every benchmark with every parameter once on tiny
sizes (``LOOPBP_BENCH_SMOKE=1``, benchmarks/common.py) through asv's own runner in one process
(tests/asv_smoke.py), and a quick dry run of one class by asv itself on the installed loopbp
(``-E existing``), with HOME in a temporary directory so that asv's machine file does not touch
the user's. Nothing is asserted about speed but asv's timeout of a benchmark."""

import json
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


#: The class of the suite that asv itself runs in the test below.
ASV_CLASS = "bench_fit.FitSine."


def test_every_benchmark_runs_with_every_parameter(home):
    # Every benchmark with every parameter, once, on tiny sizes (LOOPBP_BENCH_SMOKE=1), in
    # one process (tests/asv_smoke.py: asv_runner's own benchmark objects, with what asv's
    # --quick passes); then asv itself runs one small parametrised class of the suite end to
    # end. (asv's run of the whole suite starts a process per combination, ~180 of them,
    # each loading the kernels again: over a minute on two cores.) The kernels compiled
    # first stay in the cache that the rest of the test run uses, so that asv's processes
    # load them, well within asv's timeout of a benchmark.
    from asv.util import load_json

    from loopbp import numba_cache

    smoke = {"LOOPBP_BENCH_SMOKE": "1", "LOOPBP_CACHE_DIR": numba_cache.cache_root()}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "asv_smoke.py"), str(ROOT / "benchmarks")],
        cwd=ROOT,
        env=dict(os.environ, **smoke, HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    from asv_smoke import MARK

    rows = [json.loads(line[len(MARK) :]) for line in result.stdout.splitlines() if line.startswith(MARK)]
    assert not [row for row in rows if "error" in row], result.stdout
    # Within asv's timeout of each benchmark, as asv would enforce it.
    assert not [row for row in rows if row["seconds"] >= row["timeout"]], result.stdout
    assert {row["skipped"] for row in rows if "skipped" in row} <= EXPECTED_SKIPS, result.stdout

    # asv's side: one parametrised class, every combination in its own process, as a
    # real `asv run` does it; its discovery lists the whole suite in benchmarks.json.
    result = _asv(
        "run", "-E", "existing", "--quick", "--dry-run", "--show-stderr",
        "--bench", f"^{re.escape(ASV_CLASS)}", home=home, env={**smoke, "COLUMNS": "250"}, timeout=900,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "failed" not in output.lower() and "timed out" not in output.lower(), output
    assert set(re.findall(r"asv: skipped: (.*)", output)) <= EXPECTED_SKIPS, output
    results_dir = ROOT / load_json(ROOT / "asv.conf.json", js_comments=True)["results_dir"]
    discovered = load_json(results_dir / "benchmarks.json")
    discovered.pop("version")
    summaries = {line["name"]: line["result"] for line in _SUMMARY.finditer(output)}
    assert set(summaries) == {name for name in discovered if name.startswith(ASV_CLASS)}, output
    assert "n/a" not in summaries.values(), output

    # The one process ran every benchmark that asv discovers, with every combination of
    # its parameters, and none was skipped as a whole.
    ran = {}
    for row in rows:
        ran.setdefault(row["name"], []).append(row)
    assert set(ran) == set(discovered)
    for name, info in discovered.items():
        combinations = int(np.prod([len(p) for p in info["params"]])) if info["params"] else 1
        assert len(ran[name]) == combinations, name
        assert any("skipped" not in row and row["result"] != "nan" for row in ran[name]), (name, ran[name])


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
