"""The layering of DESIGN.md, as a contract the tree must keep.

Every import counts: at module level, inside a function, and under ``TYPE_CHECKING`` (a
circle hidden behind ``TYPE_CHECKING`` is still a circle in the design).

- ``domain`` imports nothing of ours but itself;
- ``sandbox`` imports nothing of ``bot``, ``adapters`` or ``domain``;
- only the CLI and composition root (``bot.cli``) import ``adapters``;
- there are no import circles between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "bot", "adapters", "sandbox")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imports_of(path: Path, *, name: str, known: set[str]) -> Iterator[str]:
    """Our modules that ``path`` imports (``from a import b`` counts ``a.b`` when a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(path, name=name, known=known)) for name, path in found.items()}


def top(name: str) -> str:
    return name.partition(".")[0]


def violations(*, of: str, allowed: set[str]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        if top(name) == of
        for target in targets
        if top(target) not in allowed
    )


def test_domain_imports_nothing_of_ours_but_itself() -> None:
    assert violations(of="domain", allowed={"domain"}) == []


def test_sandbox_imports_nothing_of_the_bot_the_adapters_or_the_domain() -> None:
    assert violations(of="sandbox", allowed={"sandbox"}) == []


def test_only_the_cli_imports_the_adapters() -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        if top(name) == "bot" and not name.startswith("bot.cli")
        for target in targets
        if top(target) == "adapters"
    )
    assert offenders == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_there_are_no_import_circles_not_even_behind_type_checking() -> None:
    # A package's __init__ that imports its own modules is not a circle of the design.
    edges = {
        name: {t for t in targets if not name.startswith(t + ".")}
        for name, targets in graph().items()
    }
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_circle_and_only_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
