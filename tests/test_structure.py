"""The package's shape, checked from its source with :mod:`ast` (nothing is imported):

(a) no import cycle among synthbias's modules, counting imports at module level *and* inside
    functions (a function-level import hides a cycle from the interpreter, not from a reader);
(b) no private name (one leading underscore) imported from another module, or read off one.

``if TYPE_CHECKING:`` imports are left out (they never run). Importing ``a.b.c`` also runs the
``__init__`` of ``a`` and ``a.b``; those implicit edges are left out too, otherwise every package
that re-exports its submodules would be a "cycle".

Known offenders that cannot be removed at once go in the two allowlists below (both empty
now). They must only shrink: an entry that is no longer needed fails the test, so whoever
removes a cycle or a private import also deletes its line here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "synthbias"

#: Import edges (importer -> imported) allowed to close a cycle, each with a comment saying how
#: to remove it. Empty: keep it so (a merge that brings a cycle back lists it here only as a
#: stopgap, and the stale-entry check forces its removal once fixed).
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()

#: (importer, source module, private name) imported across modules today.
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


# --------------------------------------------------------------------------- reading the source


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is_package) for every module of the package."""
    out = {}
    for p in sorted((SRC / PKG).rglob("*.py")):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (p, is_pkg)
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs, at any depth (not under ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _base(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """Absolute module named by a ``from X import`` (resolving relative imports)."""
    if not node.level:
        return node.module or ""
    package = mod if is_pkg else mod.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _internal(name: str) -> str | None:
    """The package module ``name`` refers to (the longest existing prefix), if any."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _scan() -> tuple[dict[str, set[str]], set[tuple[str, str, str]]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    private: set[tuple[str, str, str]] = set()
    for mod, (path, is_pkg) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module_aliases: dict[str, str] = {}
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _internal(alias.name)
                    if target:
                        graph[mod].add(target)
                        if alias.asname:
                            module_aliases[alias.asname] = target
                continue
            base = _base(mod, is_pkg, node)
            src = _internal(base)
            if src is None:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # ``from pkg import submodule``
                    graph[mod].add(sub)
                    module_aliases[alias.asname or alias.name] = sub
                    continue
                graph[mod].add(src)
                if alias.name.startswith("_") and not alias.name.startswith("__") and src != mod:
                    private.add((mod, src, alias.name))
        for node in ast.walk(tree):  # ``module._private`` on an imported package module
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.add((mod, module_aliases[node.value.id], node.attr))
        graph[mod].discard(mod)
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
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
                        out.append(sorted(comp))
    return out


def _path(graph: dict[str, set[str]], comp: list[str]) -> str:
    """One concrete cycle inside a component, for the failure message."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    chain = [v]  # v, its predecessor, ..., start
                    while chain[-1] != start:
                        chain.append(prev[chain[-1]])
                    return " -> ".join([*reversed(chain), start])
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(comp)


GRAPH, PRIVATE = _scan()


# --------------------------------------------------------------------------- the checks


def test_scanner_sees_the_package() -> None:
    """The scanner finds known edges of every kind (so an empty result means something)."""
    assert len(MODULES) > 50
    assert "synthbias.core.store" in GRAPH["synthbias.experiment"]  # module level
    assert "synthbias.scale" in GRAPH["synthbias.generate.factory"]  # inside a function
    assert "synthbias.generate.protocol" in GRAPH["synthbias.generate.fake"]  # relative
    assert "synthbias.report.console" in GRAPH["synthbias.cli"]  # ``from pkg import module``
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(toy) == [["a", "b", "c"]]
    assert _path(toy, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_core_and_stats_import_nothing_else_from_the_package() -> None:
    assert "synthbias.stats.divergence" in GRAPH["synthbias.measure.lexical"]
    for layer in ("synthbias.core", "synthbias.stats"):
        for mod, deps in GRAPH.items():
            if mod.startswith(layer):
                assert all(d.startswith(layer) for d in deps), (mod, deps)


def test_no_import_cycles() -> None:
    graph = {m: set(deps) for m, deps in GRAPH.items()}
    for a, b in KNOWN_CYCLE_EDGES:
        graph[a].discard(b)
    cycles = [_path(graph, c) for c in _cycles(graph)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_known_cycle_edges_are_still_needed() -> None:
    """Each allowlisted edge exists and closes a cycle; delete the line once it does not."""
    stale = []
    for edge in sorted(KNOWN_CYCLE_EDGES):
        a, b = edge
        if b not in GRAPH.get(a, set()):
            stale.append(f"{edge}: edge gone")
            continue
        graph = {m: set(deps) for m, deps in GRAPH.items()}
        for other in KNOWN_CYCLE_EDGES - {edge}:
            graph[other[0]].discard(other[1])
        if not any(a in c and b in c for c in _cycles(graph)):
            stale.append(f"{edge}: no longer closes a cycle")
    assert not stale, "remove from KNOWN_CYCLE_EDGES:\n  " + "\n  ".join(stale)


def test_no_private_names_across_modules() -> None:
    new = sorted(PRIVATE - KNOWN_PRIVATE_IMPORTS)
    stale = sorted(KNOWN_PRIVATE_IMPORTS - PRIVATE)
    assert not new, "private names imported across modules:\n  " + "\n  ".join(map(str, new))
    assert not stale, "remove from KNOWN_PRIVATE_IMPORTS:\n  " + "\n  ".join(map(str, stale))


def test_longest_files_list_names_existing_test_files() -> None:
    """The scheduling list in conftest names real files, each once (a typo would silently drop
    a long file to the end of the queue)."""
    from conftest import LONGEST_FILES

    here = Path(__file__).resolve().parent
    assert len(set(LONGEST_FILES)) == len(LONGEST_FILES)
    missing = [name for name in LONGEST_FILES if not (here / name).is_file()]
    assert missing == []
