"""The package's imports go one way: no circle, and no module imports one of a higher layer.

Every module under runner/ is parsed (not imported) and each of its imports of the runner's own modules is
read, at the top of the file or inside a function alike; imports under `if TYPE_CHECKING:` never run and
are left out. Layers, bottom to top:

    errors, calls -> settings, inputs, records, money, folders, tokens, redact, variant, local_web, words,
    stopping, json_schema
    -> providers, tasks, scorers -> calling -> analysis -> __main__, callbacks, comparison, compare

An import up the layers needs an entry in ALLOWED with the reason. A module at runner/'s root that no layer
names (a new command: runner.view, runner.chat) counts as a command, the top layer.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "runner"
LAYERS = [
    ["runner.errors", "runner.calls"],
    ["runner.settings", "runner.inputs", "runner.records", "runner.money", "runner.folders", "runner.tokens",
     "runner.redact", "runner.variant", "runner.local_web", "runner.words", "runner.stopping", "runner.json_schema",
     "runner.yaml_files"],
    ["runner.providers", "runner.tasks", "runner.scorers"],
    ["runner.calling"],
    ["runner.analysis"],
    ["runner.__main__", "runner.callbacks", "runner.comparison", "runner.compare", "runner"],
]
# (importer, imported): why it may import up the layers
ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    """The layer of a module: that of the longest name in LAYERS it is, or is inside."""
    best, found = -1, None
    for number, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), number
    assert found is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return found


def exists(module: str) -> bool:
    path = REPO.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> set[str]:
    """The runner modules a file imports, anywhere in it but under `if TYPE_CHECKING:`."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "runner")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .base import y
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "runner":
                for alias in node.names:  # `from runner import folders` imports the module runner.folders
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if exists(candidate) else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    found.discard(own)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups


def test_the_runners_imports_have_no_circle():
    assert circles(graph()) == []


def test_no_module_imports_a_higher_layer_without_a_reason():
    upward = sorted((importer, imported) for importer, targets in graph().items() for imported in targets
                    if layer(imported) > layer(importer) and (importer, imported) not in ALLOWED)
    assert upward == [], "imports up the layers (add a reason to ALLOWED, or move the code): " + \
        ", ".join(f"{a} -> {b}" for a, b in upward)


def test_the_check_finds_a_circle_and_an_upward_import():
    """The checks above are worth something only if they can fail."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("runner.settings") < layer("runner.providers.base") < layer("runner.calling.engine") \
        < layer("runner.analysis.report") < layer("runner.callbacks")
    probe = PACKAGE / "settings.py"
    edges = imports(probe)
    assert "runner.errors" in edges and not any(layer(m) > layer("runner.settings") for m in edges)
