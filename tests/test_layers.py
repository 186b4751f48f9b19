"""Imports point down: the package's layers, checked on the source (issue 16, item 2).

Every import of cloudfree code (at module level or inside a function: a lazy import must not
hide a loop) goes from a layer to a lower one, or within one package. No package imports a
package of its own layer, and no modules import each other in a circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top. A package may import packages of lower layers only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cloudfree", "errors"),
    (
        "bands",
        "windows",
        "tiles",
        "arrays",
        "home",
        "runs",
        "outputs",
        "locks",
        "workers",
        "argtypes",
    ),
    # units reads band counts (bands) to choose its rules.
    ("io", "units"),
    # overviews stages its level files with io.
    ("overviews",),
    ("masks", "metrics", "losses", "render"),
    ("inpaint",),
    ("data",),
    ("config",),
    ("models",),
    ("weights",),
    ("methods",),
    ("train", "predict"),
    ("evaluate",),
    ("viewer",),
    ("demo",),
    ("cli",),
)
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "cloudfree").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cloudfree"


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the cloudfree modules it imports (a name imported from a package that is a
    submodule counts as that submodule)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] != "cloudfree":
                    continue
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    graph[module].add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[module].update(a.name for a in node.names if a.name in modules)
        # A submodule importing its own package's __init__ is not a loop.
        graph[module] = {t for t in graph[module] if t != module and not module.startswith(t + ".")}
    return graph


def test_every_package_has_a_layer() -> None:
    missing = sorted({_package(m) for m in _modules()} - set(LEVEL))
    assert not missing, f"packages without a layer in LAYERS: {missing}"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in graph.items():
        src = _package(module)
        for target in targets:
            dst = _package(target)
            if dst != src and LEVEL[dst] >= LEVEL[src]:
                out.append(f"{module} -> {target}")
    return sorted(out)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        cycles.append(sorted(comp))
    return cycles


def test_imports_point_down() -> None:
    upward = _upward(_imports(_modules()))
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_no_module_cycles() -> None:
    cycles = _cycles(_imports(_modules()))
    assert not cycles, f"modules importing each other in a circle: {cycles}"


def test_the_checks_find_what_they_look_for() -> None:
    """On a made-up graph: an upward import, a sideways one, and a three-module circle."""
    graph = {
        "cloudfree.masks.csm": {"cloudfree.evaluate.run", "cloudfree.bands"},
        "cloudfree.train.loop": {"cloudfree.predict.scene"},
        "cloudfree.evaluate.a": {"cloudfree.evaluate.b"},
        "cloudfree.evaluate.b": {"cloudfree.evaluate.c"},
        "cloudfree.evaluate.c": {"cloudfree.evaluate.a"},
    }
    assert _upward(graph) == [
        "cloudfree.masks.csm -> cloudfree.evaluate.run",
        "cloudfree.train.loop -> cloudfree.predict.scene",
    ]
    assert _cycles(graph) == [
        ["cloudfree.evaluate.a", "cloudfree.evaluate.b", "cloudfree.evaluate.c"]
    ]


def test_lazy_imports_are_seen(tmp_path: Path) -> None:
    pkg = tmp_path / "cloudfree"
    (pkg / "masks").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "masks" / "__init__.py").write_text("")
    (pkg / "masks" / "x.py").write_text("def f():\n    from cloudfree.masks import y\n")
    (pkg / "masks" / "y.py").write_text("import cloudfree.masks.x\n")
    modules = {
        "cloudfree.masks.x": pkg / "masks" / "x.py",
        "cloudfree.masks.y": pkg / "masks" / "y.py",
    }
    graph = _imports(modules)
    assert graph["cloudfree.masks.x"] == {"cloudfree.masks.y"}
    assert _cycles(graph) == [["cloudfree.masks.x", "cloudfree.masks.y"]]
