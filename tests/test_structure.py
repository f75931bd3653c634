"""The package's shape, checked from its source with :mod:`ast` (nothing is imported):

(a) the map: every import goes from a layer to the same or a lower one, in the order of
    :data:`LAYERS` (``core < stats < lexicon < generate < measure < train < tasks < mitigate <
    report < studies < api/cli/config``); the top of the package holds only the entry points;
(b) no import cycle among synthbias's modules, counting imports at module level *and* inside
    functions (a function-level import hides a cycle from the interpreter, not from a reader);
(c) no private name (one leading underscore) imported from another module, or read off one;
(d) imports of the package's own modules are made at module level, but for a few documented
    lazy ones (a plotting module that loads matplotlib only when a plot is drawn).

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

#: The layers, lowest first: the first name under ``synthbias/``; the entry points at the top of
#: the package (``api``, ``cli``, ``config``, ``__init__``, ``__main__``) form the last layer.
LAYERS = (
    "core",
    "stats",
    "lexicon",
    "generate",
    "measure",
    "train",
    "tasks",
    "mitigate",
    "report",
    "studies",
    "entry",
)
ENTRY_POINTS = {"api", "cli", "config", "__main__"}

#: Upward imports (importer -> imported) allowed, each with why; at most 3, and the list may
#: only shrink (an entry no longer needed fails :func:`test_known_upward_imports_are_needed`).
KNOWN_UPWARD_IMPORTS: dict[tuple[str, str], str] = {
    ("synthbias.studies.forecast", "synthbias.config"): (
        "a forecast reads a finished run's config.yaml, and only the entry layer can parse a "
        "whole config (it composes every study's section); to remove it, the caller passes "
        "the parsed config in"
    ),
}

#: Imports of the package's own modules made inside a function, by importer: the package's
#: ``__init__`` loads the API on first use (``import synthbias`` stays light), and the studies load
#: their matplotlib plotting modules only when a plot is drawn. The counts may only shrink.
KNOWN_FUNCTION_IMPORTS: dict[str, int] = {
    "synthbias": 2,
    "synthbias.studies.equilibrium.report": 2,
    "synthbias.studies.equilibrium.runner": 1,
    "synthbias.studies.inheritance.results": 1,
    "synthbias.studies.mitigation.runner": 1,
}


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


def layer_of(module: str) -> str:
    """The layer of a dotted module name (``synthbias.measure.rules`` -> ``measure``)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ENTRY_POINTS:
        return "entry"
    return parts[1]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Every edge that goes from a layer to a higher one."""
    return {
        (a, b)
        for a, deps in graph.items()
        for b in deps
        if LAYERS.index(layer_of(b)) > LAYERS.index(layer_of(a))
    }


def function_imports() -> dict[str, int]:
    """Importer -> number of import statements of the package's own modules inside functions."""
    out: dict[str, int] = {}
    for mod, (path, is_pkg) in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        count = 0
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in _imports(fn):
                if isinstance(node, ast.Import):
                    count += sum(1 for a in node.names if _internal(a.name))
                elif _internal(_base(mod, is_pkg, node)):
                    count += 1
        if count:
            out[mod] = count
    return out


# --------------------------------------------------------------------------- the checks


def test_scanner_sees_the_package() -> None:
    """The scanner finds known edges of every kind (so an empty result means something)."""
    assert len(MODULES) > 50
    assert "synthbias.core.store" in GRAPH["synthbias.studies.equilibrium.runner"]  # module level
    # inside a function
    assert "synthbias.studies.equilibrium.plots" in GRAPH["synthbias.studies.equilibrium.runner"]
    assert "synthbias.report.generic" in GRAPH["synthbias.studies"]  # ``from pkg import module``
    rel = ast.parse("from ..core import store").body[0]
    assert isinstance(rel, ast.ImportFrom)
    assert _base("synthbias.measure.rules", False, rel) == "synthbias.core"  # relative
    assert _base("synthbias.measure", True, rel) == "synthbias.core"
    assert layer_of("synthbias.cli") == layer_of("synthbias") == "entry"
    assert layer_of("synthbias.studies.equilibrium.fit") == "studies"
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
    names = [p.name for p in here.rglob("test_*.py")]
    missing = [name for name in LONGEST_FILES if name not in names]
    assert missing == []


def test_tests_mirror_the_package() -> None:
    """Each test folder is a package (or ``studies/<study>``) of synthbias, and test file names
    are unique (pytest imports them by name)."""
    here = Path(__file__).resolve().parent
    files = list(here.rglob("test_*.py"))
    names = [p.name for p in files]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)
    for p in files:
        rel = p.parent.relative_to(here)
        if rel.parts:
            assert (SRC / PKG / rel).is_dir(), f"{p}: no package synthbias/{rel.as_posix()}"


def test_every_module_belongs_to_a_layer() -> None:
    unknown = sorted(m for m in MODULES if layer_of(m) not in LAYERS)
    assert not unknown, f"modules outside every layer (add a layer or move them): {unknown}"


def test_top_of_the_package_holds_only_entry_points() -> None:
    top = sorted(
        m.rpartition(".")[2]
        for m, (_, is_pkg) in MODULES.items()
        if m.count(".") == 1 and not is_pkg
    )
    assert set(top) <= ENTRY_POINTS, f"modules at the top of synthbias: {top}"


def test_no_upward_imports() -> None:
    assert len(KNOWN_UPWARD_IMPORTS) <= 3
    new = sorted(upward_imports(GRAPH) - set(KNOWN_UPWARD_IMPORTS))
    assert not new, "imports from a higher layer:\n  " + "\n  ".join(
        f"{a} ({layer_of(a)}) -> {b} ({layer_of(b)})" for a, b in new
    )


def test_known_upward_imports_are_needed() -> None:
    stale = sorted(set(KNOWN_UPWARD_IMPORTS) - upward_imports(GRAPH))
    assert not stale, f"remove from KNOWN_UPWARD_IMPORTS: {stale}"


def test_layer_check_catches_an_upward_edge() -> None:
    toy = {"synthbias.core.store": {"synthbias.measure.rules"}, "synthbias.cli": {"synthbias.core"}}
    assert upward_imports(toy) == {("synthbias.core.store", "synthbias.measure.rules")}


def test_own_imports_at_module_level() -> None:
    """Own-module imports inside functions hide the structure; only the listed lazy ones stay."""
    found = function_imports()
    grown = {m: n for m, n in found.items() if n > KNOWN_FUNCTION_IMPORTS.get(m, 0)}
    shrunk = {m: n for m, n in KNOWN_FUNCTION_IMPORTS.items() if found.get(m, 0) < n}
    assert not grown, f"imports of synthbias modules inside functions: {grown}"
    assert not shrunk, f"lower the counts in KNOWN_FUNCTION_IMPORTS to {found}"
