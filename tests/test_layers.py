"""The layering stated in replay/__init__.py holds in the source (issue 13).

The import graph is built from the source with ``ast`` (every import counts:
module level, inside functions, and under ``if TYPE_CHECKING``), then checked:
no module imports a higher layer, there is no import cycle anywhere in
``replay/`` or ``tui/``, ``tui`` sees only the public ``replay`` package, every
layer package says what it may import, and no module is over 500 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("replay", "tui")

LAYERS: tuple[tuple[str, int], ...] = (
    ("replay._cassette", 1),
    ("replay._capture", 2),
    ("replay._runs", 3),
    ("replay._analysis", 4),
    ("replay._cli", 5),
    ("replay._pytest", 5),
    ("replay._service", 5),
    ("replay._boot", 5),
    ("replay.pytest_plugin", 5),
    ("replay.testing", 5),
    ("replay", 5),  # the public facade, replay/__init__.py
    ("tui", 5),  # a surface too; it may import only the public facade (see below)
)
LAYER_PACKAGES = ("replay._cassette", "replay._capture", "replay._runs", "replay._analysis",
                  "replay._cli", "replay._pytest", "replay._service")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every project module ``name`` imports, with the line of the import."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield (sub if sub in known else module), node.lineno


def _graph() -> dict[str, list[tuple[str, int]]]:
    sources = _sources()
    known = set(sources)
    return {name: [(t, line) for t, line in _imports(name, path, known) if t != name]
            for name, path in sources.items()}


def _rank(module: str) -> int:
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def test_every_module_has_a_layer() -> None:
    for name in _sources():
        _rank(name)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [f"{src} (layer {_rank(src)}) imports {dst} (layer {_rank(dst)}) at line {line}"
              for src, targets in _graph().items() for dst, line in targets
              if _rank(dst) > _rank(src)]
    assert not upward, "\n".join(upward)


def test_tui_imports_only_the_public_api() -> None:
    bad = [f"{src} imports {dst} at line {line}" for src, targets in _graph().items()
           if src.startswith("tui") for dst, line in targets
           if dst.startswith("replay") and dst != "replay"]
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
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
        for w, _ in graph.get(v, ()):
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


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = {"a": [("b", 1)], "b": [("c", 1)], "c": [("a", 1)], "d": [("a", 1)]}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", LAYER_PACKAGES)
def test_each_layer_says_what_it_holds_and_may_import(package: str) -> None:
    init = ROOT / package.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert "Holds" in doc and "May import" in doc, f"{init}: say what it holds and may import"


def test_no_module_over_500_lines() -> None:
    long = [f"{p.relative_to(ROOT)}: {n}" for p in _sources().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "split by concept:\n" + "\n".join(long)


def test_architecture_page_shows_every_subpackage() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = page.split("```text", 1)[1].split("```", 1)[0]
    subpackages = sorted(p.parent.name for p in (ROOT / "replay").glob("*/__init__.py"))
    missing = [name for name in subpackages if f"  {name}/" not in tree]
    assert not missing, f"docs/architecture.md's tree lacks {missing}"
