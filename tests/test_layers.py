"""Imports point down (issue "One way through the house"): every ``import`` in ``movierec``
(at module level, inside functions and under ``TYPE_CHECKING`` alike) goes to a module of the
same layer or a lower one, and no set of modules imports itself in a circle when it runs.

The allowed order, lowest first. A module belongs to the deepest prefix listed; a name missing
from this map fails the test, so a new module has to be placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import movierec

#: the layers, lowest first. ``evaluation.metrics`` and ``topn`` are pure functions of arrays
#: (they import nothing of movierec): every layer may use them. ``models`` never import
#: ``evaluation`` otherwise; the metric a model validates on is handed to ``fit``.
LAYERS: list[tuple[str, ...]] = [
    ("movierec.settings", "movierec.topn", "movierec.evaluation.metrics", "movierec.distributed"),
    ("movierec.data",),
    ("movierec.content", "movierec.storage"),
    ("movierec.models",),
    ("movierec.ranking", "movierec.retrieval"),
    ("movierec.asking", "movierec.evaluation"),
    ("movierec.serving",),
    ("movierec.service",),
    ("movierec.cli", "movierec.__main__"),
    ("movierec",),  # the package root re-exports lazily (by name, not by import)
]

ROOT = Path(movierec.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    if best < 0:
        raise AssertionError(f"{module} is in no layer: place it in LAYERS")
    return best


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                out.update(id(n) for n in ast.walk(child))
    return out


def imports_of(module: str, *, runtime_only: bool = False) -> set[str]:
    """The movierec modules ``module`` imports (``from pkg import mod`` names the sub-module);
    ``runtime_only``: leave out imports under ``if TYPE_CHECKING:``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_only(tree) if runtime_only else set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}
#: what runs: a type-only import (``if TYPE_CHECKING:``) cannot close a circle at import time
RUNTIME = {m: imports_of(m, runtime_only=True) for m in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    mine = layer_of(module)
    upward = sorted(m for m in GRAPH[module] if layer_of(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports higher layers: {upward}"


def test_no_circles() -> None:
    """Tarjan's strongly connected components of the imports that run: any with more than one
    module is a circle. A package's ``__init__`` that re-exports its own modules is not a
    circle with them; a type-only import back (a function typed by its caller's class) is none."""

    def edges(m: str) -> set[str]:
        return {t for t in RUNTIME[m] if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))}

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                circles.append(sorted(part))

    for m in sorted(MODULES):
        if m not in index:
            visit(m)
    assert not circles, f"import circles: {circles}"


def test_the_checker_sees_an_upward_import() -> None:
    """The checker itself: layers in the right order, imports found, type-only ones told apart."""
    assert layer_of("movierec.models.ncf") < layer_of("movierec.evaluation.harness")
    assert layer_of("movierec.evaluation.metrics") < layer_of("movierec.models.base")
    assert "movierec.topn" in GRAPH["movierec.ranking"]
    assert "movierec.service.state" in GRAPH["movierec.service.reload"]
    assert "movierec.service.state" not in RUNTIME["movierec.service.reload"]
