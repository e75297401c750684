"""The ``loopbp compare`` command line (no timings are asserted)."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from loopbp import cli, compare
from loopbp.cpu import warming

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
        assert row["median_s"] > 0 and row["first_s"] > 0
        assert row["gflop_per_s"] == pytest.approx(point["gflop"] / row["median_s"])
    assert point["results"]["einsum"]["speedup_vs_einsum"] == 1.0


def test_compare_sweep_m_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "f.png"
    status = cli.main(
        ["compare", "--sizes", "3,5,2", "--m", "100", "--sweep", "m", "--plot", str(plot), *FAST]
    )
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[3:-2]] == ["10", "32", "100"]
    assert lines[-2].startswith("loops and the fastest other backend cross at m = ")
    assert lines[-1] == f"plot written to {plot}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_sweep_width(capsys):
    assert cli.main(["compare", "--sizes", "3,20,9,2", "--m", "7", "--sweep", "width", "--json", *FAST]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["sizes"] for p in points] == [[3, 4, 4, 2], [3, 8, 8, 2], [3, 16, 16, 2], [3, 20, 20, 2]]


def test_compare_exits_1_when_the_backends_disagree(monkeypatch, capsys):
    def disagreeing(backend, points, *args, **kwargs):
        return [{"first_s": 1.0, "median_s": 1.0, "number": 1, "difference": 1.0} for _ in points]

    monkeypatch.setattr(compare, "run", disagreeing)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", *FAST]) == 1
    assert "FAIL: loopbp's kernels and einsum differ by 1.00e+00" in capsys.readouterr().err


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
    assert re.search(r"wall time \S+ s, \d+ steps per second", out)
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
    assert "the einsum backend failed in its process" in capsys.readouterr().err


def test_version(capsys):
    import loopbp

    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"loopbp {loopbp.__version__}"


@pytest.mark.parametrize(
    "args,usage",
    [
        (["compare", "--sweeps", "m"], "usage: loopbp compare"),
        (["train", "sine", "--epoch", "3", "--x"], "usage: loopbp train sine"),
        (["cache", "--every"], "usage: loopbp cache"),
        (["--all", "cache"], "usage: loopbp [-h]"),
    ],
)
def test_an_unknown_flag_shows_the_subcommands_usage(args, usage, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments: " in err


def _fake_run(calls, capsys):
    # Records the order of the backends' processes, and what was printed before each.
    def run(backend, points, *args, **kwargs):
        calls.append((backend, capsys.readouterr()))
        return [{"first_s": 1.0, "median_s": 2.0, "number": 1, "difference": 0.0} for _ in points]

    return run


def test_compare_prints_the_header_at_once_and_each_row_when_its_backend_is_done(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(compare, "run", _fake_run(calls, capsys))
    monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: True)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", *FAST]) == 0
    # einsum, the reference of the speed-ups, runs first; the header is out before it.
    assert [backend for backend, _ in calls] == ["einsum", "loops", "numpy"]
    header, head = calls[0][1].out.splitlines()
    assert header.startswith("loopbp compare: sizes 3,2, m = 4") and head.split()[0] == "backend"
    assert calls[0][1].err == ""
    # Each row as soon as its backend is done: einsum's before the loops start, the loops'
    # before numpy starts.
    assert [line.split()[0] for line in calls[1][1].out.splitlines()] == ["einsum"]
    assert [line.split()[0] for line in calls[2][1].out.splitlines()] == ["loops"]
    assert capsys.readouterr().out.split()[0] == "numpy"


@pytest.mark.parametrize("warm", [False, True])
def test_compare_says_when_the_kernels_compile(warm, monkeypatch, capsys):
    def run(backend, points, *args, **kwargs):
        return [{"first_s": 1.0, "median_s": 2.0, "number": 1, "difference": 0.0} for _ in points]

    monkeypatch.setattr(compare, "run", run)
    monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: warm)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", *FAST]) == 0
    said = "compiling the loop kernels for float64" in capsys.readouterr().err
    assert said is not warm


def test_compare_json_names_the_plot_and_stdout_stays_json(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "p.png"
    args = ["compare", "--sizes", "3,4,2", "--m", "12", "--sweep", "m", "--plot", str(plot), "--json", *FAST]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["plot"] == str(plot)
    assert f"plot written to {plot}" in captured.err


def test_the_worker_imports_the_same_loopbp_as_its_parent(tmp_path, monkeypatch):
    # A directory holding another "loopbp", as a checkout does, is the working directory.
    (tmp_path / "loopbp").mkdir()
    (tmp_path / "loopbp" / "__init__.py").write_text("raise ImportError('the wrong loopbp')\n")
    (tmp_path / "loopbp" / "compare.py").write_text("raise ImportError('the wrong loopbp')\n")
    monkeypatch.chdir(tmp_path)
    (result,) = compare.run("einsum", [((2, 1), 3)], None, "float64", repeat=1)
    assert result["difference"] == 0.0


def test_train_prints_its_header_before_training(monkeypatch, capsys):
    from loopbp import examples

    printed = []
    original = examples.train_sine

    def train_sine(**kwargs):
        printed.append(capsys.readouterr().out)
        return original(**{**kwargs, "epochs": 2})

    monkeypatch.setattr(examples, "train_sine", train_sine)
    assert cli.main(["train", "sine", "--no-progress"]) == 0
    assert printed[0].startswith(
        "loopbp train sine: 1-20-1 sigmoid/identity, learning rate 0.1, 20000 epochs"
    )


def test_cache_command_names_and_clears_the_folder(tmp_path, monkeypatch, capsys):
    from loopbp import numba_cache

    monkeypatch.setenv("LOOPBP_CACHE_DIR", str(tmp_path))
    folder = numba_cache.cache_dir()
    assert cli.main(["cache"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == folder
    os.makedirs(folder, exist_ok=True)  # cache_dir may have made it
    with open(os.path.join(folder, "kernels.f-1.py311.nbi"), "wb") as f:
        f.write(b"x" * 2048)
    assert cli.main(["cache"]) == 0
    assert "1 files" in capsys.readouterr().out
    assert cli.main(["cache", "--clear"]) == 0
    assert capsys.readouterr().out.strip() == f"removed {folder}"
    assert not os.path.exists(folder) and os.path.isdir(tmp_path)


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background"])
@pytest.mark.parametrize("warm", [False, True])
def test_train_says_when_the_kernels_compile(warm, background, monkeypatch, capsys):
    from loopbp import examples
    from loopbp.cpu import warming

    original = examples.train_sine
    monkeypatch.setattr(examples, "train_sine", lambda **kwargs: original(**{**kwargs, "epochs": 2}))
    monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: warm)
    # (Only the note: the calls themselves compile in this process, as the tests all do.)
    monkeypatch.setattr(warming, "compiles_in_background", lambda: background)
    assert cli.main(["train", "sine", "--no-progress"]) == 0
    err = capsys.readouterr().err
    said = "loopbp train: compiling the loop kernels for float64" in err
    said_background = "loopbp train: compiling the fast loop kernels for float64 (narrow set) in a" in err
    assert (said, said_background) == ((False, False) if warm else (not background, background))


def test_cache_command_lists_every_copys_folder_and_clears_them_all(tmp_path, monkeypatch, capsys):
    from loopbp import numba_cache

    monkeypatch.setenv("LOOPBP_CACHE_DIR", str(tmp_path))
    # The temporary fallback is listed too: a folder of this test's, not the real one.
    monkeypatch.setattr(numba_cache, "_fallback_root", lambda: str(tmp_path / "fallback"))
    (tmp_path / "not_loopbp").mkdir()  # another project's cache, under a shared root: left alone
    folder = numba_cache.cache_dir()
    other = tmp_path / "loopbp_another_environment"
    other.mkdir()
    (other / "passes.f-1.py311.nbi").write_bytes(b"x" * 1024)
    assert cli.main(["cache"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == folder
    assert f"{other}\n1 files" in out and "--clear --all" in out
    assert cli.main(["cache", "--all"]) == 2
    assert "--all goes with --clear" in capsys.readouterr().err
    assert cli.main(["cache", "--clear", "--all"]) == 0
    assert capsys.readouterr().out.strip() == f"removed {other}"
    assert not other.exists() and (tmp_path / "not_loopbp").exists()


def test_top_level_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "`" not in capsys.readouterr().out


@pytest.mark.parametrize("command", [["compare"], ["train", "digits"], ["cache"], ["warm"], ["plan"]])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: loopbp {' '.join(command)} ")


def test_compare_cuda_runs_einsum_and_puts_torch_and_jax_on_the_gpu(monkeypatch, capsys):
    # `loopbp compare --device cuda`: einsum, the reference, is added; the peers are asked for the GPU.
    calls = []

    def run(backend, points, *args, device="cpu", **kwargs):
        calls.append((backend, device))
        return [{"first_s": 1.0, "median_s": 2.0, "number": 1, "difference": 0.0} for _ in points]

    monkeypatch.setattr(compare, "run", run)
    monkeypatch.setattr(compare, "installed", lambda backend: True)
    monkeypatch.setattr(cli, "installed", lambda backend: True)
    args = ["compare", "--sizes", "3,2", "--m", "4", "--backends", "cuda,torch,jax", "--repeat", "2"]
    assert cli.main(args) == 0
    assert calls == [("einsum", "cuda"), ("cuda", "cuda"), ("torch", "cuda"), ("jax", "cuda")]
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == ["einsum", "cuda", "torch", "jax"]


def _map_timings(backend, points, *args, **kwargs):
    # Seconds per gradient that depend on the width and m, each backend differently, so that
    # the fastest other backend changes across the map and the loops win on one side only.
    scale = {"loops": (1e-5, 2e-10), "einsum": (3e-5, 4e-10), "numpy": (2e-5, 3e-10), "torch": (5e-5, 1e-10)}
    start, per = scale[backend]
    return [
        {"first_s": 1.0, "median_s": start + per * sizes[1] ** 2 * m, "number": 1, "difference": 0.0}
        for sizes, m in points
    ]


MAP_ARGS = ["compare", "--sizes", "3,64,2", "--sweep", "width,m", "--widths", "4,64", "--ms", "10,1000"]
MAP_ARGS += ["--backends", "loops,einsum,numpy,torch", "--repeat", "2"]


@pytest.fixture
def map_timings(monkeypatch):
    monkeypatch.setattr(compare, "run", _map_timings)
    monkeypatch.setattr(compare, "installed", lambda backend: True)
    monkeypatch.setattr(cli, "installed", lambda backend: True)
    monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: True)


def test_compare_map_prints_the_ratio_and_the_fastest_other_backend(map_timings, capsys):
    assert cli.main(MAP_ARGS) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("loopbp compare: sizes 3,W,2 for W = 4,64, m = 10,1000, float64")
    assert lines[2].split() == ["width", "\\", "m", "10", "1000"]
    expected = {}
    for w in (4, 64):
        for v in (10, 1000):
            times = {
                b: _map_timings(b, [((3, w, 2), v)])[0]["median_s"]
                for b in ("loops", "einsum", "numpy", "torch")
            }
            fastest = min((b for b in times if b != "loops"), key=times.get)
            expected[w, v] = (f"{times[fastest] / times['loops']:.2f}", fastest)
    rows = {int(line.split()[0]): line.split()[1:] for line in lines[3:5]}
    assert rows == {w: [*expected[w, 10], *expected[w, 1000]] for w in (4, 64)}
    # The loops win at width 4, and torch wins at width 64 with m = 1000.
    assert expected[64, 1000][1] == "torch" and float(expected[64, 1000][0]) < 1 < float(expected[4, 10][0])
    faster = sum(float(r) > 1 for r, _ in expected.values())
    assert lines[5] == f"the loops are the fastest at {faster} of 4 points"
    assert lines[6].startswith("loops and the fastest other backend cross at (width, m) = (")


def test_compare_map_json_and_m_width_is_the_same_map(map_timings, capsys):
    maps = []
    for sweep in ("width,m", "m,width"):
        args = [a if a != "width,m" else sweep for a in MAP_ARGS]
        assert cli.main([*args, "--json"]) == 0
        maps.append(json.loads(capsys.readouterr().out))
    assert maps[0] == maps[1]
    out = maps[0]
    assert out["sweep"] == "width,m" and out["map"]["widths"] == [4, 64] and out["map"]["ms"] == [10, 1000]
    assert [p["sizes"] for p in out["points"]] == [[3, 4, 2], [3, 4, 2], [3, 64, 2], [3, 64, 2]]
    for point in out["points"]:
        # Each cell from its point's own results: the fastest other backend's time over the loops'.
        i, j = out["map"]["widths"].index(point["sizes"][1]), out["map"]["ms"].index(point["m"])
        times = {b: r["median_s"] for b, r in point["results"].items()}
        fastest = min((b for b in times if b != "loops"), key=times.get)
        assert out["map"]["fastest_other"][i][j] == fastest
        assert out["map"]["ratio"][i][j] == pytest.approx(times[fastest] / times["loops"])
    assert out["crossovers"] and all(len(c) == 2 for c in out["crossovers"])


def test_compare_map_plot(map_timings, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "map.png"
    assert cli.main([*MAP_ARGS, "--plot", str(plot)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"plot written to {plot}"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # One row: no line between the sides, the colours alone show them.
    row = tmp_path / "row.png"
    assert cli.main([*MAP_ARGS, "--widths", "16", "--plot", str(row)]) == 0
    assert row.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_map_title_names_the_sizes_dtype_date_cpu_and_vector_path(map_timings, monkeypatch):
    import datetime

    from loopbp import comparison
    from loopbp.cpu import simd

    monkeypatch.setattr(cli, "cpu_model", lambda: "Test CPU 9000")
    result = comparison.Comparison.run(
        (3, 8, 8, 2), 10, dtype="float32", backends=("loops", "einsum", "numpy"), sweep="width,m", ms=[10]
    )
    title = cli.map_title(result)
    assert title.startswith("loopbp compare --sweep width,m: sizes 3,W,W,2, float32, ")
    assert datetime.date.today().isoformat() in title
    assert f"Test CPU 9000, loops' vector path {simd.PATH}" in title
    assert "fastest of einsum, numpy / loops" in title
    assert cli.cpu_model().strip()


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--sweep", "width,m", "--sizes", "3,2"],
            "--sweep width,m varies the hidden layers; --sizes 3,2 has none",
        ),
        (
            ["--widths", "8"],
            "--widths sets the hidden widths of --sweep width or --sweep width,m; got no --sweep",
        ),
        (
            ["--sweep", "m", "--widths", "8"],
            "--widths sets the hidden widths of --sweep width or --sweep width,m; got --sweep m",
        ),
        (
            ["--sweep", "width", "--ms", "8"],
            "--ms sets the m of --sweep m or --sweep width,m; got --sweep width",
        ),
        (["--plot", "x.png"], "--plot draws a sweep; add --sweep m, --sweep width or --sweep width,m"),
    ],
)
def test_compare_map_rejects_inconsistent_flags(args, message, capsys):
    assert cli.main(["compare", *args, *FAST]) == 2
    assert message in capsys.readouterr().err


def test_compare_map_needs_the_loops(capsys):
    args = ["compare", "--sweep", "m,width", *FAST, "--backends", "einsum,numpy"]
    assert cli.main(args) == 2
    assert (
        "--sweep m,width maps the loops against the other backends; --backends einsum,numpy has no loops"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sweep", "foo"], "argument --sweep: invalid choice: 'foo'"),
        (
            ["--widths", "16,x"],
            "argument --widths: expected comma-separated positive integers such as 16,64,256, got '16,x'",
        ),
        (
            ["--ms", "32,0"],
            "argument --ms: expected comma-separated positive integers such as 16,64,256, got '32,0'",
        ),
    ],
)
def test_compare_map_rejects_bad_flags(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["compare", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_widths_and_ms_choose_the_points_of_a_sweep(map_timings, capsys):
    args = ["compare", "--sizes", "3,64,2", "--backends", "loops,einsum", "--json"]
    assert cli.main([*args, "--sweep", "m", "--ms", "100,10"]) == 0
    assert [p["m"] for p in json.loads(capsys.readouterr().out)["points"]] == [10, 100]
    assert cli.main([*args, "--sweep", "width", "--widths", "8,2"]) == 0
    assert [p["sizes"] for p in json.loads(capsys.readouterr().out)["points"]] == [[3, 2, 2], [3, 8, 2]]


def test_plan_command_prints_each_contraction(capsys):
    assert cli.main(["plan", "784,128,10", "--m", "32", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "784-128-10, m = 32, float32" in out
    rows = [line.split() for line in out.splitlines() if line.lstrip()[:1].isdigit()]
    # Z^1, dE/dW^1, Z^2, dE/dW^2 and dE/dA^1, each with one kernel.
    assert [r[0] for r in rows] == ["1", "1", "2", "2", "2"]
    assert all(("packed" in r) != ("stream" in r) for r in rows)


@pytest.mark.parametrize("argv", [["plan", "784,x"], ["plan", "3,4", "--m", "0"], ["plan", "5"]])
def test_plan_command_rejects_bad_input(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "loopbp plan: error: argument" in capsys.readouterr().err


def test_warm_compiles_or_loads_the_kernel_sets_asked_for(capsys):
    assert cli.main(["warm", "--dtype", "float64", "--kernels", "narrow"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("narrow kernels, float64: ")
    assert warming.is_warm("float64", narrow=True)
    assert out[1] == f"cache: {cli.numba_cache.cache_dir()}"


def test_warm_rejects_unknown_choices(capsys):
    with pytest.raises(SystemExit):
        cli.main(["warm", "--kernels", "narrow,medium"])
    assert "unknown kernel set 'medium'; known: narrow, wide" in capsys.readouterr().err


@pytest.mark.parametrize("missing", [(), ("jax",), ("torch", "jax")])
def test_compare_says_which_peers_it_leaves_out(missing, monkeypatch, capsys):
    # By default compare runs every installed peer, and names the ones it cannot run.
    def run(backend, points, *args, **kwargs):
        return [{"first_s": 1.0, "median_s": 2.0, "number": 1, "difference": 0.0} for _ in points]

    monkeypatch.setattr(compare, "run", run)
    monkeypatch.setattr(compare, "installed", lambda backend: backend not in missing)
    monkeypatch.setattr(warming, "is_warm", lambda *args, **kwargs: True)
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", "--repeat", "2"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == [b for b in ("einsum", "loops", "numpy", "torch", "jax") if b not in missing]
    if not missing:
        assert "not installed" not in err
    elif missing == ("jax",):
        assert "loopbp compare: jax is not installed, so not compared (pip install jax to compare it)" in err
    else:
        said = "torch and jax are not installed, so not compared (pip install torch jax to compare them)"
        assert said in err
    # Backends named on the command line are what was asked for: nothing to say.
    assert cli.main(["compare", "--sizes", "3,2", "--m", "4", *FAST]) == 0
    assert "not installed" not in capsys.readouterr().err
