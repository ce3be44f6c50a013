"""Every test checks something: a test that cannot fail except by hanging or crashing is a
test of nothing.

The rule, read from the source with ``ast``: a test as pytest collects it (a ``test*``
function, or a ``test*`` method of a ``Test*`` class; sync or async) in ``tests/**/test_*.py``
passes when its own body, not counting the functions and classes defined inside it
(callbacks may never run), contains

- an ``assert`` statement, or
- a call of ``pytest.raises``, ``pytest.warns`` or ``pytest.fail`` (each fails the test when
  what it expects does not happen), or
- a call of a checking helper: a function or method named ``assert_*``, ``check_*`` or
  ``expect_*`` that is defined under ``tests/`` (matched by name) and itself passes this
  rule, transitively. The name says it is there to check; that it is ours and checks says
  it really does. A product function that happens to be called ``check_*`` does not count.

Exceptions are listed below by ``path::name`` with the reason; a listed test that has come to
check something must leave the list, so it only ever shrinks.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
HELPER_PREFIXES = ("assert_", "check_", "expect_")
PYTEST_CHECKS = {"raises", "warns", "fail"}

# Tests that deliberately check nothing, with why. Keep it empty unless there is a reason.
DELIBERATE: dict[str, str] = {}

# Tests in files another change owns, to be fixed there; listed so the rule holds for the rest.
NOT_YET_FIXED: dict[str, str] = {}


def own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``function``'s body, without descending into nested defs and classes."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def called_name(call: ast.Call) -> str | None:
    """``f`` for ``f(...)`` and ``x.f(...)``."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def is_pytest_check(call: ast.Call, *, imported: set[str]) -> bool:
    """``pytest.raises(...)`` and the like, or a bare ``raises(...)`` imported from pytest."""
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id == "pytest" and func.attr in PYTEST_CHECKS
    return isinstance(func, ast.Name) and func.id in imported


def pytest_imports(tree: ast.Module) -> set[str]:
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "pytest"
        for alias in node.names
        if alias.name in PYTEST_CHECKS
    }


def checks(function: ast.AST, *, imported: set[str], helpers: set[str]) -> bool:
    """Whether ``function``'s own body asserts, expects through pytest, or calls a helper that
    checks."""
    for node in own_nodes(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            if is_pytest_check(node, imported=imported):
                return True
            if called_name(node) in helpers:
                return True
    return False


def parsed(paths: list[Path]) -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in paths}


def checking_helpers(modules: dict[Path, ast.Module]) -> set[str]:
    """Names of the ``assert_*``/``check_*``/``expect_*`` functions under tests/ that check,
    found by iterating to a fixed point (a helper may check through another)."""
    candidates = [
        (node, pytest_imports(tree))
        for tree in modules.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith(HELPER_PREFIXES)
    ]
    found: set[str] = set()
    while True:
        more = {
            node.name
            for node, imported in candidates
            if node.name not in found and checks(node, imported=imported, helpers=found)
        }
        if not more:
            return found
        found |= more


def collected_tests(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """What pytest collects as tests: ``test*`` functions at module level and ``test*``
    methods of module-level ``Test*`` classes."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            candidates = node.body
        else:
            candidates = [node]
        for item in candidates:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith(
                "test"
            ):
                yield item


@functools.cache
def unchecked_tests() -> tuple[str, ...]:
    every = parsed(sorted(TESTS.rglob("*.py")))
    helpers = checking_helpers(every)
    found = []
    for path, tree in every.items():
        if not path.name.startswith("test_"):
            continue
        imported = pytest_imports(tree)
        for function in collected_tests(tree):
            if not checks(function, imported=imported, helpers=helpers):
                found.append(f"{path.relative_to(ROOT)}::{function.name}")
    return tuple(found)


def test_every_test_asserts_something_or_is_a_listed_exception() -> None:
    excused = DELIBERATE.keys() | NOT_YET_FIXED.keys()
    unchecked = [name for name in unchecked_tests() if name not in excused]
    assert unchecked == [], "these tests check nothing (see this file's docstring):\n" + "\n".join(
        unchecked
    )


def test_the_exceptions_list_only_tests_that_still_check_nothing() -> None:
    still = set(unchecked_tests())
    stale = sorted((DELIBERATE.keys() | NOT_YET_FIXED.keys()) - still)
    assert stale == [], "these tests check something now; take them off the list:\n" + "\n".join(
        stale
    )


def test_the_rule_sees_asserts_expectations_and_checking_helpers_only() -> None:
    tree = ast.parse(
        "import pytest\n"
        "def check_posted(x):\n    assert x\n"
        "def check_nothing(x):\n    return x\n"
        "def test_asserts():\n    assert 1\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_helper():\n    check_posted(1)\n"
        "def test_helper_that_does_not_check():\n    check_nothing(1)\n"
        "async def test_only_waits():\n    while not ready():\n        await sleep(0)\n"
        "def test_assert_in_a_callback_only():\n    def on_event():\n        assert 1\n"
    )
    helpers = checking_helpers({Path("t.py"): tree})
    verdicts = {f.name: checks(f, imported=set(), helpers=helpers) for f in collected_tests(tree)}

    assert helpers == {"check_posted"}
    assert verdicts == {
        "test_asserts": True,
        "test_raises": True,
        "test_helper": True,
        "test_helper_that_does_not_check": False,
        "test_only_waits": False,
        "test_assert_in_a_callback_only": False,
    }
