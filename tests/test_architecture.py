"""The package's architecture: its layers, the imports between its modules, and the docs' map of it.

The modules stand in layers, each importing only from its own layer or those below it:

1. the core, shared by every backend: activations, the flat layout, validation, errors,
   the seeded shuffles, the pacing of epochs, the einsum reference and the kernel cache;
2. the backends: ``loopbp.cpu`` (the loops) and ``loopbp.cuda``, which never import each
   other;
3. the Dask backend, ``loopbp.distributed``, which runs the loops backend on chunks;
4. the public API: the functions, `Network`, training, saving, the gradient check;
5. the tools: ``loopbp compare``, the command line, the scikit-learn estimators, the
   examples.

Imports inside functions count, and no import cycle is allowed, at module level or not;
imports under ``if TYPE_CHECKING:`` (annotations only) do not count.
"""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "loopbp"
ARCHITECTURE_PAGE = ROOT / "docs" / "architecture.md"

#: Every module, by layer; a name ending in "." stands for a whole subpackage.
LAYERS = (
    (
        "numba_cache",
        "activations",
        "agreement",
        "errors",
        "validation",
        "layout",
        "shuffling",
        "pacing",
        "bounded_cache",
        "einsum_reference",
    ),
    ("cpu.", "cuda."),
    ("distributed",),
    ("", "gradients", "network", "saving", "training", "gradient_check", "precompile"),
    ("compare", "comparison", "cli", "sklearn", "examples", "problems", "__main__"),
)
#: Subpackages side by side in one layer, which must not import each other.
SIBLINGS = ("cpu.", "cuda.")


def _modules():
    """Every module of the package, as its dotted name inside it ("" for the package itself)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _layer(module):
    for k, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name.endswith(".") and (module + ".").startswith(name)):
                return k
    raise AssertionError(f"loopbp.{module} is in no layer of tests/test_architecture.py")


def _type_checking_only(tree):
    """The nodes under ``if TYPE_CHECKING:``."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return skipped


def _imports(module, path, modules):
    """The modules of loopbp that `module` imports, anywhere in its code."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                above = package[: len(package) - (node.level - 1)]
                base = above + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "loopbp" or node.module.startswith("loopbp.")):
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                name = ".".join(base + [alias.name])
                found.add(name if name in modules else ".".join(base))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "loopbp" or alias.name.startswith("loopbp."):
                    found.add(".".join(alias.name.split(".")[1:]))
    found.discard(module)
    unknown = found - set(modules)
    assert not unknown, f"loopbp.{module} imports unknown modules {sorted(unknown)}"
    return found


def _graph():
    modules = _modules()
    return {module: _imports(module, path, modules) for module, path in modules.items()}


def test_every_module_is_in_a_layer():
    for module in _modules():
        _layer(module)


def test_no_module_imports_from_a_layer_above_it():
    upward = [
        f"loopbp.{a} (layer {_layer(a) + 1}) imports loopbp.{b} (layer {_layer(b) + 1})"
        for a, targets in _graph().items()
        for b in targets
        if _layer(b) > _layer(a)
    ]
    assert upward == []


def test_the_backends_do_not_import_each_other():
    def sibling(module):
        return next((s for s in SIBLINGS if (module + ".").startswith(s)), None)

    crossing = [
        f"loopbp.{a} imports loopbp.{b}"
        for a, targets in _graph().items()
        for b in targets
        if sibling(a) and sibling(b) and sibling(a) != sibling(b)
    ]
    assert crossing == []


def _cycles(graph):
    """Every import cycle a depth-first walk of `graph` meets, as "a -> b -> a"."""
    cycles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_there_is_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path):
    # The checks above read the source: show on a made-up package that they would fail.
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import x\n")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert _cycles(graph) == ["a -> b -> a"]
    annotations_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n"
    (tmp_path / "c.py").write_text(annotations_only)
    assert _imports("c", tmp_path / "c.py", {**modules, "c": tmp_path / "c.py"}) == set()
    assert _layer("cpu.engine") < _layer("network") < _layer("cli")


def test_no_module_imports_a_private_name_from_another():
    # Between loopbp's modules only public names cross: `from .x import _y` and `x._y` on
    # one of loopbp's modules are refused.
    modules = _modules()
    leaves = {name.rsplit(".", 1)[-1] for name in modules if name}
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("loopbp")):
                for alias in node.names:
                    if alias.name.startswith("_") and alias.name != "__version__":
                        found.append(f"{name}: from {node.module} import {alias.name}")
                    if alias.name in leaves:
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


def test_the_architecture_page_lists_every_module_once():
    # The architecture page's tree is the package's folder tree, one line per module.
    section = ARCHITECTURE_PAGE.read_text().split("## The package tree\n", 1)[1].split("\n## ", 1)[0]
    tree = section.split("```text\n", 1)[1].split("```", 1)[0]
    listed, folders = [], []
    for line in tree.splitlines()[1:]:
        if re.fullmatch(r"│\s+── .+ ──", line):
            continue  # a heading: the layer of the lines below
        match = re.match(r"^((?:│   |    )*)(?:├── |└── )(\S+)", line)
        assert match, f"not a line of the tree: {line!r}"
        depth, name = len(match.group(1)) // 4, match.group(2)
        folders[depth:] = [name.rstrip("/")] if name.endswith("/") else []
        if name.endswith(".py"):
            listed.append("/".join(folders[:depth] + [name]))
    expected = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    assert sorted(listed) == expected
    assert len(listed) == len(set(listed))
