"""The examples in the docstrings and the README run and print what they say."""

import doctest
import pathlib

import pytest

import loopbp
from loopbp import gradients, network

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("module", [gradients, network], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def test_readme_example():
    result = doctest.testfile(str(README), module_relative=False, globs={"loopbp": loopbp})
    assert result.attempted > 0 and result.failed == 0


def test_public_api():
    # The contract other tools rely on, and every name in __all__ importable.
    assert {"gradient", "forward", "error", "Network", "check_gradient"} <= set(loopbp.__all__)
    assert all(hasattr(loopbp, name) for name in loopbp.__all__)
    assert loopbp.ACTIVATIONS == ("identity", "sigmoid", "relu", "tanh")
