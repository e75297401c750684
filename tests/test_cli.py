"""The ``loopbp compare`` command line (no timings are asserted)."""

import subprocess
import sys

import pytest

from loopbp import cli


def test_compare_prints_a_row_per_backend_and_agrees(capsys):
    status = cli.main(["compare", "--sizes", "5,7,3", "--m", "11", "--repeat", "2"])
    out = capsys.readouterr().out
    assert status == 0
    assert "sizes 5,7,3, m = 11, float64" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"einsum", "loops"}
    assert float(rows["einsum"][-1]) == 0.0
    assert float(rows["loops"][-1]) <= 1e-12


def test_compare_float32_and_activations(capsys):
    args = ["compare", "--sizes", "4,6,2", "--m", "9", "--dtype", "float32", "--activations", "tanh,relu"]
    assert cli.main(args + ["--repeat", "1"]) == 0
    assert "float32, activations tanh,relu" in capsys.readouterr().out


def test_compare_exits_1_when_the_backends_disagree(monkeypatch, capsys):
    monkeypatch.setattr(cli, "gradient_difference", lambda result, reference: 1.0)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", "--repeat", "1"]) == 1
    assert "FAIL: loops and einsum differ" in capsys.readouterr().err


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
    ],
)
def test_compare_rejects_bad_flags(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["compare", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_rejects_activation_count(capsys):
    assert cli.main(["compare", "--sizes", "3,4,2", "--activations", "tanh", "--repeat", "1"]) == 2
    assert "--activations needs 2 names" in capsys.readouterr().err


def test_gradient_gflop_counts_the_reference_cases():
    # performance-notes.md: mnist 784-256-128-10 at m = 10,000 is 10.1 GFLOP, wide is 68.7.
    assert round(cli.gradient_gflop((784, 256, 128, 10), 10_000), 1) == 10.1
    assert round(cli.gradient_gflop((1024, 1024, 1024, 1024), 4096), 1) == 68.7


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "loopbp", "compare", "--sizes", "3,2", "--m", "5", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "loops" in result.stdout
