"""The ``loopbp compare`` command line (no timings are asserted)."""

import importlib.util
import json
import re
import subprocess
import sys

import pytest

from loopbp import cli, compare

FAST = ["--backends", "loops,einsum,numpy", "--repeat", "2"]


def test_compare_prints_a_row_per_backend_and_agrees(capsys):
    status = cli.main(["compare", "--sizes", "5,7,3", "--m", "11", *FAST])
    out = capsys.readouterr().out
    assert status == 0
    assert "sizes 5,7,3, m = 11, float64" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"einsum", "loops", "numpy"}
    assert float(rows["einsum"][-1]) == 0.0
    assert float(rows["einsum"][-2].rstrip("x")) == 1.0
    assert float(rows["loops"][-1]) <= 1e-12
    assert float(rows["numpy"][-1]) <= 1e-12


def test_compare_default_backends_include_the_installed_peers():
    assert compare.default_backends()[:3] == ("loops", "einsum", "numpy")
    for optional in ("torch", "jax"):
        installed = importlib.util.find_spec(optional) is not None
        assert (optional in compare.default_backends()) == installed


def test_compare_float32_activations_and_threads(capsys):
    args = ["compare", "--sizes", "4,6,2", "--m", "9", "--dtype", "float32", "--activations", "tanh,relu"]
    assert cli.main(args + ["--threads", "1", *FAST]) == 0
    out = capsys.readouterr().out
    assert "float32, activations tanh,relu, 1 threads" in out


def test_compare_json(capsys):
    assert cli.main(["compare", "--sizes", "3,4,2", "--m", "6", "--json", *FAST]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["agree"] is True and result["sweep"] is None
    (point,) = result["points"]
    assert point["sizes"] == [3, 4, 2] and point["m"] == 6
    assert set(point["results"]) == {"loops", "einsum", "numpy"}
    for row in point["results"].values():
        assert row["median"] > 0 and row["first"] > 0
        assert row["gflops"] == pytest.approx(point["gflop"] / row["median"])
    assert point["results"]["einsum"]["speedup_vs_einsum"] == 1.0


def test_compare_sweep_m_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "f.png"
    status = cli.main(
        ["compare", "--sizes", "3,5,2", "--m", "100", "--sweep", "m", "--plot", str(plot), *FAST]
    )
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[3:-1]] == ["10", "32", "100"]
    assert lines[-1].startswith("loops and the fastest other backend cross at m = ")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_sweep_width(capsys):
    assert cli.main(["compare", "--sizes", "3,20,9,2", "--m", "7", "--sweep", "width", "--json", *FAST]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["sizes"] for p in points] == [[3, 4, 4, 2], [3, 8, 8, 2], [3, 16, 16, 2], [3, 20, 20, 2]]


def test_crossovers_are_found_on_log_axes():
    # loops/other = 2 at 10 and 1/2 at 1000: the ratio crosses 1 halfway in log m, at 100.
    assert cli._crossovers([10, 1000], [2.0, 0.5], [1.0, 1.0]) == [pytest.approx(100.0)]
    assert cli._crossovers([10, 1000], [2.0, 3.0], [1.0, 1.0]) == []


def test_compare_exits_1_when_the_backends_disagree(monkeypatch, capsys):
    def disagreeing(backend, points, *args, **kwargs):
        return [{"first": 1.0, "median": 1.0, "number": 1, "difference": 1.0} for _ in points]

    monkeypatch.setattr(compare, "run", disagreeing)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", *FAST]) == 1
    assert "FAIL: loops and einsum differ by 1.00e+00" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sweep", "width", "--sizes", "3,2"], "--sweep width varies the hidden layers"),
        (["--plot", "x.png"], "--plot draws a sweep"),
    ],
)
def test_compare_rejects_inconsistent_flags(args, message, capsys):
    assert cli.main(["compare", *args, *FAST]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sizes", "3"], "at least two widths"),
        (["--sizes", "3,x"], "comma-separated integers"),
        (["--sizes", "3,0"], "each >= 1"),
        (["--m", "0"], "expected a positive integer"),
        (["--repeat", "many"], "expected a positive integer"),
        (["--dtype", "float16"], "invalid choice"),
        (["--seed", "-3"], "expected a non-negative integer"),
        (["--activations", "sigmoid,softmax"], "unknown activation 'softmax'"),
        (["--threads", "0"], "expected a positive integer"),
        (["--backends", "loops,fortran"], "unknown backend 'fortran'"),
        (["--backends", "loops,numpy"], "must include einsum"),
        (["--sweep", "depth"], "invalid choice"),
    ],
)
def test_compare_rejects_bad_flags(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["compare", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_rejects_activation_count(capsys):
    assert cli.main(["compare", "--sizes", "3,4,2", "--activations", "tanh", *FAST]) == 2
    assert "--activations needs 2 names" in capsys.readouterr().err


def test_gradient_gflop_counts_the_reference_cases():
    # performance-notes.md: mnist 784-256-128-10 at m = 10,000 is 10.1 GFLOP, wide is 68.7.
    assert round(cli.gradient_gflop((784, 256, 128, 10), 10_000), 1) == 10.1
    assert round(cli.gradient_gflop((1024, 1024, 1024, 1024), 4096), 1) == 68.7


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "loopbp", "compare", "--sizes", "3,2", "--m", "5", *FAST],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "loops" in result.stdout


def test_train_sine_prints_e_and_speed_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "sine.png"
    assert cli.main(["train", "sine", "--epochs", "300", "--no-progress", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "1-20-1 sigmoid/identity, learning rate 0.1, 300 epochs, seed 0" in out
    final, first = (float(x) for x in re.search(r"final E (\S+) \(first (\S+)\)", out).groups())
    assert final < first
    assert re.search(r"wall time \S+ s, \d+ epochs per second", out)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_train_digits_reports_test_accuracy(capsys):
    pytest.importorskip("sklearn")
    assert cli.main(["train", "digits", "--epochs", "200", "--no-progress"]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy (\S+)%", out).group(1))
    # 200 steps is far from trained, but well above chance (10%).
    assert 30 < accuracy <= 100


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "sine", "--learning-rate", "-1"], "expected a positive number"),
        (["train", "sine", "--learning-rate", "fast"], "expected a positive number, got 'fast'"),
        (["train", "sine", "--epochs", "0"], "expected a positive integer"),
        (["train", "mnist"], "invalid choice"),
        (["train", "digits", "--hidden", "x"], "expected a positive integer"),
    ],
)
def test_train_rejects_bad_flags(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_reports_a_backend_that_fails(monkeypatch, capsys):
    def failing(backend, *args, **kwargs):
        raise RuntimeError(f"the {backend} backend failed in its process:\nboom")

    monkeypatch.setattr(compare, "run", failing)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", *FAST]) == 1
    assert "the loops backend failed in its process" in capsys.readouterr().err
