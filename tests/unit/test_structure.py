"""The shape of the packages: layered imports without cycles, functions and modules
of a size one can read.

The import graph is grimp's, which records every import statement of a module,
those inside functions (lazy) and under ``TYPE_CHECKING`` included: a lazy import
hides a cycle from the interpreter, not from whoever reads the code. An import of
``pkg.sub`` is an edge to ``pkg.sub`` alone: ``pkg/__init__.py`` runs first too, but
counting that would make every package whose ``__init__`` re-exports a submodule a
cycle with its own members. Each failure lists every offender with its file and
line, so that one run says all there is to fix.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("drift", "consumers", "db", "retrain", "service")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400

# service -> retrain | consumers -> db -> drift: what each package must not import.
# consumers and retrain share a layer and stay independent of each other; drift is
# pure statistics (no Kafka, SQL or HTTP), and retrain reads verdicts through db,
# never from Kafka.
FORBIDDEN: Mapping[str, frozenset[str]] = {
    "drift": frozenset(
        {"consumers", "db", "retrain", "service", "kafka", "sqlalchemy", "httpx", "fastapi"}
    ),
    "db": frozenset({"consumers", "retrain", "service"}),
    "consumers": frozenset({"retrain", "service"}),
    "retrain": frozenset({"consumers", "service", "kafka"}),
    "service": frozenset(),
}

Graph = Mapping[str, frozenset[str]]


def import_graph(*packages: str) -> tuple[grimp.ImportGraph, Graph]:
    """grimp's graph (external packages squashed to their top-level name) and, for
    each module of ``packages``, the modules of ``packages`` it imports."""
    graph = grimp.build_graph(*packages, include_external_packages=True, cache_dir=None)
    internal = {m for m in graph.modules if m.split(".")[0] in packages}
    edges = {m: frozenset(graph.find_modules_directly_imported_by(m) & internal) for m in internal}
    return graph, edges


def cycles(edges: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in order:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            for nxt in pending:
                if nxt not in order:
                    order[nxt] = low[nxt] = len(order)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], order[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == order[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def imports_of(graph: grimp.ImportGraph, importer: str, imported: str) -> list[str]:
    """``file:line: statement`` of each import of ``imported`` in ``importer``."""
    return [
        f"{_path(importer)}:{d['line_number']}: {d['line_contents']}"
        for d in graph.get_import_details(importer=importer, imported=imported)
    ]


def _path(module: str) -> str:
    base = ROOT.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return str(path.relative_to(ROOT))


def describe_cycles(graph: grimp.ImportGraph, edges: Graph) -> list[str]:
    lines = []
    for component in cycles(edges):
        lines.append("cycle: " + " <-> ".join(component))
        members = set(component)
        for importer in component:
            for imported in sorted(edges[importer] & members):
                lines += [f"    {line}" for line in imports_of(graph, importer, imported)]
    return lines


@pytest.fixture(scope="module")
def project() -> tuple[grimp.ImportGraph, Graph]:
    return import_graph(*PACKAGES)


def test_no_module_imports_itself_back_lazily_or_not(
    project: tuple[grimp.ImportGraph, Graph],
) -> None:
    graph, edges = project
    found = describe_cycles(graph, edges)
    assert not found, "import cycles between modules:\n" + "\n".join(found)


def test_packages_import_only_the_layers_below_them(
    project: tuple[grimp.ImportGraph, Graph],
) -> None:
    graph, _ = project
    wrong = []
    for importer in sorted(graph.modules):
        forbidden = FORBIDDEN.get(importer.split(".")[0], frozenset())
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.split(".")[0] in forbidden:
                wrong += imports_of(graph, importer, imported)
    wrong.sort(key=lambda line: (line.split(":")[0], int(line.split(":")[1])))
    layering = "service -> retrain|consumers -> db -> drift"
    assert not wrong, f"imports against the layering {layering}:\n" + "\n".join(wrong)


def test_a_lazy_import_cycle_is_found_with_its_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "shapetoy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "runs.py").write_text(
        textwrap.dedent("""\
            def handlers():
                from shapetoy.phases import HANDLERS
                return HANDLERS
            """)
    )
    (package / "phases.py").write_text("from shapetoy.runs import handlers\nHANDLERS = {}\n")
    (package / "leaf.py").write_text("import shapetoy.phases\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph, edges = import_graph("shapetoy")
    assert cycles(edges) == [["shapetoy.phases", "shapetoy.runs"]]
    details = graph.get_import_details(importer="shapetoy.runs", imported="shapetoy.phases")
    assert [(d["line_number"], d["line_contents"]) for d in details] == [
        (2, "from shapetoy.phases import HANDLERS")
    ]


# -- sizes -------------------------------------------------------------------------------


def package_files() -> Iterable[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            # Alembic revisions are history: once released they are never split or edited.
            if "migrations" not in path.relative_to(ROOT).parts:
                yield path


def long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                found.append((node.lineno, f"{node.name} ({lines} lines)"))
    return [f"{path.relative_to(ROOT)}:{line} {what}" for line, what in sorted(found)]


def test_no_function_is_over_80_lines() -> None:
    found = [f for path in package_files() for f in long_functions(path, MAX_FUNCTION_LINES)]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_no_module_is_over_400_lines() -> None:
    found = []
    for path in package_files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not found, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(found)
