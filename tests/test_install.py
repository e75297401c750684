"""Where Numba's compiled kernels live (loopbp.numba_cache), and what an install leaves behind."""

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
from problems import needs_jit

import loopbp
from loopbp import numba_cache

REPO = Path(__file__).resolve().parent.parent


def _environment(**changes):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "LOOPBP_CACHE_DIR")}
    env.update(changes)
    return env


def _index_stamp(path):
    # A Numba index file: the Numba version, pickled, then (source stamp, overloads).
    with open(path, "rb") as f:
        pickle.load(f)
        return pickle.loads(f.read())[0]


def test_the_cache_root_follows_loopbp_cache_dir_then_numba_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LOOPBP_CACHE_DIR", str(tmp_path / "a"))
    assert numba_cache.cache_root() == str(tmp_path / "a")
    assert numba_cache.cache_dir().startswith(str(tmp_path / "a") + os.sep)
    monkeypatch.delenv("LOOPBP_CACHE_DIR")
    monkeypatch.setattr(numba_cache.config, "CACHE_DIR", str(tmp_path / "b"))
    assert numba_cache.cache_root() == str(tmp_path / "b")
    monkeypatch.setattr(numba_cache.config, "CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert numba_cache.cache_root() == str(tmp_path / "xdg" / "loopbp")


def test_the_locator_takes_loopbp_files_only(tmp_path):
    def f():
        pass

    assert numba_cache.LoopbpCacheLocator.from_function(f, __file__) is None
    kernels_file = os.path.join(os.path.dirname(loopbp.__file__), "cpu", "kernels.py")
    locator = numba_cache.LoopbpCacheLocator.from_function(f, kernels_file)
    assert locator is not None
    assert locator.get_cache_path() == numba_cache.cache_dir()
    assert locator.get_source_stamp() == numba_cache.sources_fingerprint()


@needs_jit
def test_kernels_are_cached_outside_the_package_and_an_edit_recompiles_them_all(tmp_path):
    # A copy of the package, run twice: the cache goes to LOOPBP_CACHE_DIR, none of it
    # beside the sources. Then a file of another subpackage changes, as an edit would
    # change it: every kernel must compile again (Numba's own stamp would redo none, as
    # no compiled function is in that file). The functions compiled are two small cached
    # ones in two modules, E from A^L (cpu/layer_loop.py) and its row sums
    # (cpu/kernels.py): the locator and its stamp are the same
    # for every cached function of the package, and these compile in a second where the
    # driver takes tens (the install test below runs the driver itself from an installed
    # copy).
    package = tmp_path / "loopbp_copy"  # another name: an editable loopbp would shadow "loopbp"
    shutil.copytree(os.path.dirname(loopbp.__file__), package, ignore=shutil.ignore_patterns("__pycache__"))
    cache_root = tmp_path / "cache"
    script = textwrap.dedent(
        """
        import sys, numpy as np
        import loopbp_copy as loopbp
        assert loopbp.__file__.startswith(sys.argv[1])
        rng = np.random.default_rng(0)
        A_L, Y = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
        E = loopbp.cpu.layer_loop.error_from_output(A_L, Y)
        print(abs(E - loopbp.einsum_reference.error_from_output(A_L, Y)) < 1e-12)
        print(loopbp.numba_cache.cache_dir())
        print(loopbp.numba_cache.sources_fingerprint())
        """
    )
    env = _environment(PYTHONPATH=str(tmp_path), LOOPBP_CACHE_DIR=str(cache_root), NUMBA_DEBUG_CACHE="1")

    def run():
        out = subprocess.run(
            [sys.executable, "-c", script, str(package)], capture_output=True, text=True, env=env, timeout=600
        )
        assert out.returncode == 0, out.stderr[-2000:]
        lines = out.stdout.splitlines()
        agree, folder, fingerprint = lines[-3:]
        saved = {line.split("/")[-1].split("-")[0] for line in lines if line.startswith("[cache] data saved")}
        return agree, Path(folder), fingerprint, saved

    agree, folder, fingerprint, saved = run()
    assert agree == "True"
    assert saved >= {"layer_loop.error_from_output", "kernels.squared_error_row"}
    assert folder.parent == cache_root
    indexes = sorted(folder.glob("*.nbi"))
    assert {p.name.split(".")[0] for p in indexes} >= {"kernels", "layer_loop"}
    assert all(_index_stamp(p) == fingerprint for p in indexes)
    assert not list(package.rglob("*.nbi")) and not list(package.rglob("*.nbc"))

    # A warm cache: nothing is compiled or saved again.
    assert run()[3] == set()

    edited = package / "cuda" / "target.py"
    edited.write_text(edited.read_text() + "\n")
    agree, _, new_fingerprint, saved = run()
    assert agree == "True" and new_fingerprint != fingerprint
    # Neither cpu/layer_loop.py nor cpu/kernels.py changed, and both compiled again.
    assert saved >= {"layer_loop.error_from_output", "kernels.squared_error_row"}
    assert all(_index_stamp(p) == new_fingerprint for p in folder.glob("*.nbi"))


def _site_packages(prefix):
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


@needs_jit
@pytest.mark.skipif(sys.platform == "win32", reason="the virtual environment's layout is POSIX's here")
def test_install_run_uninstall_reinstall_in_a_fresh_virtual_environment(tmp_path):
    # The README's order: pip install ., run (compiling the kernels), pip install -e
    # (which uninstalls the first install), import from elsewhere. Numba's cache once
    # stayed behind in site-packages/loopbp/__pycache__ and shadowed the package.
    prefix = tmp_path / "env"
    venv.create(prefix, with_pip=True)
    site = _site_packages(prefix)
    # numpy, numba and llvmlite from this environment, so that they are not downloaded;
    # loopbp itself is not among them. (Building the wheel fetches setuptools, as the
    # README's pip install . does.)
    import llvmlite
    import numba
    import numpy

    deps = tmp_path / "deps"
    deps.mkdir()
    for module in (numpy, numba, llvmlite):
        parent = Path(module.__file__).parent.parent
        for entry in parent.iterdir():
            if entry.name.lower().startswith(module.__name__) and not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    (site / "loopbp_test_deps.pth").write_text(str(deps) + "\n")

    python = str(prefix / "bin" / "python")
    env = _environment(XDG_CACHE_HOME=str(tmp_path / "user-cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def pip(*args):
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", *args], env=env, check=True)

    def use(compile_mode):
        # The first gradient, and what ran it: in the background mode the serial loops, then
        # (once the background compile has ended) the fast kernels, to rounding error.
        code = (
            "import logging; logging.basicConfig(level=logging.WARNING); "
            "import numpy as np, loopbp; from loopbp import numba_cache; "
            "from loopbp.cpu import driver, serial_driver, warming; "
            "net = loopbp.Network([3, 4, 2], ['sigmoid', 'identity'], seed=0); "
            "X, Y = np.ones((3, 2)), np.ones((2, 2)); "
            "warm = warming.is_warm('float64'); E = net.gradient(X, Y)[0]; "
            "first = warming.entry_point(net.sizes, net.dtype); "
            "ended = warming.wait_for_background_compiles(timeout=500); "
            "agree = abs(net.gradient(X, Y)[0] - E) <= 1e-12 * abs(E); "
            "then = warming.entry_point(net.sizes, net.dtype); "
            "print(net.forward(X).shape, loopbp.__file__, numba_cache.cache_dir(), "
            "warm, warming.is_warm('float64'), warming.is_warm('float32'), "
            "first is serial_driver.run, ended and agree and then is driver.run, sep='|')"
        )
        out = subprocess.run(
            [python, "-c", code],
            cwd=elsewhere,
            env={**env, "LOOPBP_COMPILE": compile_mode},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        # No warning: the background process compiled the kernels, not this one after it.
        assert "WARNING" not in out.stderr, out.stderr[-2000:]
        return out.stdout.strip().split("|")

    wheels = tmp_path / "wheels"
    subprocess.run(
        [python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(REPO)],
        env=env,
        check=True,
    )
    (wheel,) = wheels.glob("loopbp-*.whl")
    # The wheel holds every module of every subpackage, and the type marker.
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("loopbp/")}
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "loopbp").rglob("*.py")}
    assert {"loopbp/cpu/driver.py", "loopbp/cuda/engine.py"} <= sources <= packed
    assert "loopbp/py.typed" in packed
    pip(str(wheel))
    # What loopbp 0.1.0 left beside its sources, as if it had been installed here before.
    legacy = site / "loopbp" / "__pycache__"
    legacy.mkdir(exist_ok=True)
    for name in ("kernels.forward_layer-27.py311.nbi", "kernels.forward_layer-27.py311.1.nbc"):
        (legacy / name).write_bytes(b"old")
    (legacy / "loopbp-numba-sources.txt").write_text("old")
    # In an empty cache, by default: the serial loops first, the fast kernels compiled in
    # the background process, from the installed copy, into this cache.
    shape, module, cache, cold, warm, warm32, serial_first, fast_then = use("background")
    assert (serial_first, fast_then) == ("True", "True")
    assert shape == "(2, 2)"
    assert Path(module).is_relative_to(site)
    assert Path(cache).is_relative_to(tmp_path / "user-cache" / "loopbp")
    assert list(Path(cache).glob("*.nbi"))
    # is_warm reads Numba's own index: cold before the first gradient, warm after it,
    # and only for the dtype that was compiled.
    assert (cold, warm, warm32) == ("False", "True", "False")
    assert not [p for p in (site / "loopbp").rglob("*") if p.suffix in (".nbi", ".nbc", ".txt")]

    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "loopbp"], env=env, check=True)
    assert not (site / "loopbp").exists(), "pip uninstall left files that would shadow the package"

    pip("--force-reinstall", str(wheel))
    shape, module, _, cold, _, _, serial_first, fast_then = use("background")
    assert shape == "(2, 2)" and Path(module).is_relative_to(site)
    assert cold == "True"  # the same path and sources: the kernels compiled before still serve
    assert (serial_first, fast_then) == ("False", "True")  # and so no serial loops


@pytest.mark.parametrize(
    ("keep", "kept"), [(None, False), ("0", False), ("", False), ("1", True), ("yes", True)]
)
def test_install_deletes_the_legacy_cache_unless_loopbp_keep_legacy_cache(monkeypatch, tmp_path, keep, kept):
    # What loopbp 0.1.0 left in loopbp/__pycache__, in a stand-in for the package's folder;
    # install() runs at import. LOOPBP_KEEP_LEGACY_CACHE (set, not "0") keeps those files.
    monkeypatch.setattr(numba_cache, "PACKAGE_DIR", str(tmp_path))
    if keep is None:
        monkeypatch.delenv("LOOPBP_KEEP_LEGACY_CACHE", raising=False)
    else:
        monkeypatch.setenv("LOOPBP_KEEP_LEGACY_CACHE", keep)
    legacy = tmp_path / "__pycache__"
    legacy.mkdir()
    names = [
        "kernels.forward_layer-27.py311.nbi",
        "kernels.forward_layer-27.py311.1.nbc",
        "loopbp-numba-sources.txt",
    ]
    for name in names:
        (legacy / name).write_bytes(b"old")
    (legacy / "kernels.cpython-311.pyc").write_bytes(b"not Numba's")
    numba_cache.install()
    left = sorted(p.name for p in legacy.iterdir())
    assert left == sorted([*names, "kernels.cpython-311.pyc"] if kept else ["kernels.cpython-311.pyc"])


def test_the_fallback_folder_must_be_private(tmp_path):
    # Cached kernels are pickles: a folder that other users can write to is refused.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert not numba_cache.usable_folder(str(shared / "loopbp_x"), private=True)
    assert numba_cache.usable_folder(str(shared / "loopbp_y"), private=False)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert numba_cache.usable_folder(str(mine / "loopbp_x"), private=True)
