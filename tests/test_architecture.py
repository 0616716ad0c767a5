"""The layout's promises, read from the code itself (docs/architecture.md):
no import circles in gateway/ and drivers/, every module imports only its
own component and the layers below it, and the catalog is the only place
that speaks SQL.

Written over ``ast`` rather than with import-linter: one cycle check over the
whole graph (import-linter's contracts are per layer or per pair of
packages), imports inside functions counted like any other (a lazy import
is still a dependency, and hiding a circle in a function is how the last two
came back), and no extra tool in a package we build reproducibly."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("gateway", "drivers")

#: lowest first. A module may import modules of its own component and of any
#: lower layer; components of an ``independent`` layer may not import each
#: other. The packages ``gateway`` (``__version__``) and ``gateway.process``
#: are components of their own, not of the modules under them (``EXACT``).
LAYERS: list[tuple[str, bool, tuple[str, ...]]] = [
    ("foundation", False, ("gateway", "gateway.errors", "gateway.durable", "gateway.secrets", "gateway.config",
                           "gateway.values", "gateway.process", "gateway.process.supervise",
                           "gateway.process.runfiles", "gateway.process.logsetup", "gateway.timesync")),
    ("recorders", False, ("drivers",)),
    ("copy engine", False, ("gateway.copyhash",)),
    ("state and storage", True, ("gateway.catalog", "gateway.archive")),
    ("evidence", False, ("gateway.evidence",)),
    ("pipeline", False, ("gateway.pipeline",)),
    ("tenants", True, ("gateway.web", "gateway.telemetry", "gateway.casefile")),
    ("wiring", False, ("gateway.process.daemon",)),
    ("command line", False, ("gateway.cli",)),
]


EXACT = {"gateway", "gateway.process"}


def modules() -> dict[str, Path]:
    out = {}
    for tree in TREES:
        for p in sorted((ROOT / tree).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of gateway/ and drivers/ modules, wherever in
    the file they stand (module level, functions, TYPE_CHECKING blocks)."""
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(t for a in node.names if (t := _resolve(a.name, mods)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for a in node.names:  # `from pkg import submodule` depends on the submodule
                    target = f"{origin}.{a.name}" if f"{origin}.{a.name}" in mods else _resolve(origin, mods)
                    if target:
                        found.add(target)
        found.discard(mod)
        graph[mod] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def component(mod: str) -> tuple[int, str] | None:
    """(layer index, component) of a module: its longest listed prefix."""
    best: tuple[int, str] | None = None
    for i, (_, _, comps) in enumerate(LAYERS):
        for c in comps:
            if (mod == c or (c not in EXACT and mod.startswith(c + "."))) and (best is None or len(c) > len(best[1])):
                best = (i, c)
    return best


def test_there_are_no_import_circles_in_gateway_or_drivers() -> None:
    found = cycles(imports(modules()))
    assert not found, "import circles (move the shared piece below both): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_every_module_has_a_place_in_the_layers() -> None:
    """A new top-level module is placed on purpose (here and in
    docs/architecture.md), not by falling into some layer."""
    assert [m for m in modules() if component(m) is None] == []


def test_a_module_imports_only_its_own_component_and_the_layers_below() -> None:
    wrong = []
    for mod, targets in imports(modules()).items():
        mine = component(mod)
        assert mine is not None
        for t in sorted(targets):
            theirs = component(t)
            assert theirs is not None
            if theirs[1] == mine[1] or theirs[0] < mine[0]:
                continue
            if theirs[0] == mine[0] and not LAYERS[mine[0]][1]:
                continue
            wrong.append(f"{mod} ({LAYERS[mine[0]][0]}) imports {t} ({LAYERS[theirs[0]][0]})")
    assert wrong == []


def test_the_layer_rules_in_docs_architecture_md_are_these() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for name, _, comps in LAYERS:
        assert name in doc, f"docs/architecture.md does not name the layer {name!r}"
        for c in comps:
            assert f"`{c}`" in doc or f"`{c.replace('.', '/')}" in doc, f"docs/architecture.md does not place {c}"


# -- SQL lives in the catalog ----------------------------------------------------------------------------------

_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
                  r"CREATE\s+(TABLE|INDEX|VIEW|TRIGGER)|DROP\s+(TABLE|INDEX)|PRAGMA\s+\w+|ALTER\s+TABLE)\b",
                  re.IGNORECASE | re.DOTALL)


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, joined
            yield node.lineno, " ".join(v.value for v in node.values
                                        if isinstance(v, ast.Constant) and isinstance(v.value, str))


def _outside_catalog() -> Iterator[tuple[str, Path]]:
    for mod, path in modules().items():
        if mod != "gateway.catalog" and not mod.startswith("gateway.catalog."):
            yield mod, path


def test_no_sql_outside_the_catalog_package() -> None:
    found = []
    for _, path in _outside_catalog():
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            for line, text in _strings(node) if isinstance(node, (ast.Constant, ast.JoinedStr)) else ():
                if _SQL.search(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}")
    assert found == []


def test_only_the_catalog_opens_the_database() -> None:
    found = [str(path.relative_to(ROOT)) for mod, path in _outside_catalog() if "sqlite3" in imports_of(path)]
    assert found == []


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_sql_check_finds_sql() -> None:
    """The guard itself: it sees a query in a plain string and in an f-string."""
    tree = ast.parse('q = "SELECT a FROM clips WHERE x=?"\nr = f"UPDATE clips SET state={s}"\nt = "select a car"\n')
    assert {line for line, text in _strings(tree) if _SQL.search(text)} == {1, 2}


def test_a_module_over_400_lines_says_why_at_its_top() -> None:
    """Small modules named for what they do; a longer one gives its reason
    in its docstring ("Why ...")."""
    long = []
    for _, path in modules().items():
        text = path.read_text()
        if text.count("\n") > 400 and "Why" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert long == []
