"""The examples in the docstrings and the README run and print what they say."""

import ast
import doctest
import importlib
import pathlib
import re
import sys

import pytest

import loopbp

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("module", ["gradients", "network", "saving", "sklearn"])
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
    assert "kernels" not in dir(loopbp) and loopbp.kernels is not None


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


def _modules():
    return sorted(p.stem for p in (README.parent / "loopbp").glob("*.py") if p.stem != "__main__")


def test_the_readme_layout_table_lists_every_module():
    table = README.read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `loopbp/(\w+)\.py` \|", table, flags=re.MULTILINE)
    assert sorted(listed) == _modules()


def test_no_module_imports_a_private_name_from_another():
    # Between loopbp's modules only public names cross: `from .x import _y` and `x._y` on
    # one of loopbp's modules are refused.
    modules = set(_modules())
    found = []
    for name in modules:
        tree = ast.parse((README.parent / "loopbp" / f"{name}.py").read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("loopbp")):
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name != "__version__":
                        found.append(f"{name}: from {node.module} import {alias.name}")
                    if alias.name in modules:
                        imported.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
            ):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    assert found == []


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
