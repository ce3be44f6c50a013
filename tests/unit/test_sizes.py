"""The house sizes, kept by a test: no module over 400 lines (tests aside), and no function
over 60 lines (tests and benchmarks aside). Split by concept, or by step."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("domain", "bot", "adapters", "sandbox", "bench", "scripts")
MODULE_LINES = 400
FUNCTION_LINES = 60


def modules(*, with_bench: bool = True) -> list[Path]:
    return [
        path
        for top in SOURCES
        if with_bench or top != "bench"
        for path in sorted((ROOT / top).rglob("*.py"))
    ]


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in modules(with_bench=False):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = n
    assert long == {}
