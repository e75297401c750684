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
    assert set(loopbp.__all__) == {
        "ACTIVATIONS",
        "BACKENDS",
        "Network",
        "check_gradient",
        "error",
        "forward",
        "gradient",
        "__version__",
    }
    assert loopbp.ACTIVATIONS == ("identity", "sigmoid", "relu", "tanh")
