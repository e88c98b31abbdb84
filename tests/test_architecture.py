"""The shape of the library, checked: imports go one way, the library never talks to the
terminal, the store owns every SQL statement, nothing is unpickled, and commands that do
not read text start without spaCy."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "qualcode"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The qualcode modules a module imports anywhere in its body, inside functions too."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or round about."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
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
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


GRAPH = {name: imports_of(name) for name in MODULES}


def test_the_import_graph_has_no_cycle():
    # A package's __init__ is imported before any of its modules, so a module importing its own
    # package's __init__ is an edge like any other.
    cycles = [group for group in strongly_connected(GRAPH) if len(group) > 1]
    assert cycles == [], f"modules importing each other: {cycles}"


def test_the_cycle_check_can_fail():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"], ["d"]]


# The stages, lowest first: a module may import its own stage and those below it, never one above. The folders name the
# stages (docs/architecture.md): what every stage uses sits at the top of the package; then transcripts come in
# (ingest), are kept (store, opened through the project), counted (analysis: `code` reports its counts too, so it sits
# below the pipeline), suggested (suggest), run in batches (run), reviewed (review) and exchanged (exchange), with the
# terminal (cli) above everything.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("shared nouns", ("qualcode", "qualcode.errors", "qualcode.vocabulary", "qualcode.suggestion", "qualcode.statistics", "qualcode.database_url", "qualcode.leftovers", "qualcode.files")),
    ("ingest", ("qualcode.ingest",)),
    ("definitions", ("qualcode.codebook", "qualcode.settings")),
    ("store", ("qualcode.store",)),
    ("project", ("qualcode.project",)),
    ("analysis", ("qualcode.analysis",)),
    ("suggest", ("qualcode.suggest",)),
    ("run", ("qualcode.run",)),
    ("review", ("qualcode.review",)),
    ("exchange", ("qualcode.exchange",)),
    ("cli", ("qualcode.cli", "qualcode.__main__")),
]


def layer_of(name: str) -> int:
    """The rank of a module's stage: the longest listed name it is, or lies under (the package itself only as itself)."""
    best, rank = -1, -1
    for index, (_stage, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or (prefix != "qualcode" and name.startswith(prefix + "."))) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
            for name, targets in sorted(graph.items()) for target in sorted(targets) if layer_of(target) > layer_of(name)]


def test_every_module_belongs_to_a_stage():
    assert [name for name in MODULES if layer_of(name) < 0] == []


def test_no_stage_imports_a_stage_above_it():
    assert upward_imports(GRAPH) == []


def test_the_layer_check_can_fail():
    assert upward_imports({"qualcode.store.x": {"qualcode.review.session"}, "qualcode.review.session": {"qualcode.store"}}) == [
        "qualcode.store.x (store) imports qualcode.review.session (review)"]
    assert layer_of("qualcode.storey") == -1 and layer_of("qualcode.project.starter") == layer_of("qualcode.project")


def test_the_top_of_the_package_holds_only_the_stages_and_the_shared_nouns():
    top = sorted(path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
                 if (path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists())) and path.name != "__pycache__")
    listed = {prefix.split(".")[1] for _stage, prefixes in LAYERS for prefix in prefixes if "." in prefix}
    assert set(top) - {"__init__"} == listed


def test_the_library_never_imports_the_cli_or_terminal_libraries_and_never_prints_or_exits():
    for name, path in MODULES.items():
        if name.startswith("qualcode.cli") or name == "qualcode.__main__":
            continue
        assert not any(target.startswith("qualcode.cli") for target in GRAPH[name]), name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(module.split(".")[0] in ("typer", "rich", "click") for module in modules), f"{name} imports {modules}"
            if isinstance(node, ast.Call):
                function = node.func
                called = function.id if isinstance(function, ast.Name) else function.attr if isinstance(function, ast.Attribute) else ""
                assert called not in ("print", "exit", "_exit", "input"), f"{name}:{node.lineno} calls {called}()"


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|PRAGMA\s)", re.I | re.S)


def test_every_sql_statement_lives_in_the_store():
    for name, path in MODULES.items():
        if name.startswith("qualcode.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL.search(node.value), f"{name}:{node.lineno} holds SQL: {node.value[:60]!r}"


def test_nothing_is_unpickled():
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M), name
        assert "allow_pickle=True" not in text, name


def test_importing_the_cli_loads_no_heavy_library():
    code = "import sys, qualcode.cli; print(sorted(m for m in ('spacy', 'pandas', 'sklearn', 'openpyxl', 'numpy', 'scipy') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"
