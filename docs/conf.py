"""Sphinx configuration of loopbp's documentation.

Build it with ``pip install ".[docs]"`` and
``sphinx-build -W --keep-going docs docs/_build/html``. The pages are Markdown (MyST),
the API reference comes from the numpydoc docstrings, the CLI reference from loopbp's
argument parser, and the performance tables from the benchmark runs in ``docs/data``.
"""

import importlib.metadata
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import performance_tables  # noqa: E402  (docs/performance_tables.py)

project = "loopbp"
author = "the loopbp developers"
copyright = "2026, the loopbp developers"
try:
    release = importlib.metadata.version("loopbp")
except importlib.metadata.PackageNotFoundError:  # built from a checkout that is not installed
    release = "0+unknown"
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_static", "_generated/*", "data"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The API pages list what they document by hand; numpydoc should not add member tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"

# Math renders offline: MathJax 3.2.2 from its npm package is vendored in _static/mathjax
# (docs/vendor-mathjax.sh refreshes it), so no page asks a CDN for a script or a font.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "pydata_sphinx_theme"
html_title = f"loopbp {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The section navigation on the left only where a section has pages: the user guide.
html_sidebars = {
    page: []
    for page in (
        "index",
        "getting-started",
        "derivation",
        "performance",
        "api",
        "cli",
        "architecture",
        "development",
        "changelog",
    )
}
html_show_sourcelink = False


def _generate(app):
    # The performance tables are made from the benchmark runs in docs/data at every build,
    # never typed by hand.
    performance_tables.write(DOCS / "data", DOCS / "_generated")


def setup(app):
    app.connect("builder-inited", _generate)
