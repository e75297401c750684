"""The examples in the docstrings and the README run and print what they say."""

import doctest
import importlib
import pathlib
import sys

import pytest

import loopbp

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("module", ["gradients", "network", "sklearn"])
def test_docstring_examples(module):
    if module == "sklearn":
        pytest.importorskip("sklearn", minversion="1.6")
    result = doctest.testmod(importlib.import_module(f"loopbp.{module}"), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_readme_example():
    result = doctest.testfile(str(README), module_relative=False, globs={"loopbp": loopbp})
    assert result.attempted > 0 and result.failed == 0


def test_public_api():
    # The contract other tools rely on, and every name in __all__ importable.
    assert {"gradient", "forward", "error", "Network", "check_gradient"} <= set(loopbp.__all__)
    assert all(hasattr(loopbp, name) for name in loopbp.__all__)
    assert loopbp.ACTIVATIONS == ("identity", "sigmoid", "relu", "tanh")


def test_dir_shows_the_public_api_only():
    # The internal modules (kernels, passes, numba_cache, ...) stay importable by name,
    # but tab completion offers the API alone.
    assert dir(loopbp) == sorted([*loopbp.__all__, "examples", "sklearn"])
    assert "kernels" not in dir(loopbp) and loopbp.cpu.kernels is not None


def test_the_version_is_set_in_one_place():
    # pyproject.toml holds it; loopbp reads it from the installed package's metadata.
    import importlib.metadata

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    pyproject = tomllib.loads((README.parent / "pyproject.toml").read_text())
    assert "version" in pyproject["project"] and "version" not in pyproject["project"].get("dynamic", [])
    assert pyproject["project"]["version"] not in (README.parent / "loopbp" / "__init__.py").read_text()
    try:
        assert importlib.metadata.version("loopbp") == loopbp.__version__ == pyproject["project"]["version"]
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        assert loopbp.__version__ == "0+unknown"


def test_a_missing_optional_submodule_is_a_missing_attribute(monkeypatch):
    # Without scikit-learn, hasattr, help() and inspect must see a missing attribute,
    # not an ImportError; the message still says what to install.
    import inspect

    for name in ["sklearn", *(n for n in sys.modules if n.startswith("sklearn."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    monkeypatch.delitem(sys.modules, "loopbp.sklearn", raising=False)
    monkeypatch.delattr(loopbp, "sklearn", raising=False)
    assert not hasattr(loopbp, "sklearn")
    with pytest.raises(AttributeError, match=r'pip install "loopbp\[sklearn\]"'):
        loopbp.sklearn  # noqa: B018
    assert dict(inspect.getmembers(loopbp))["Network"] is loopbp.Network
