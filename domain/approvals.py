"""Whether a block must be approved before it runs, and which tools it may then call (pure).

Approval is decided before a block runs, on its exact code. The tools a block may call are
found by parsing it: in Python, every ``tools.NAME`` and ``tools.SERVER.TOOL`` (whatever the
module is imported as, and ``from tools import NAME``); in bash, the word after each
``tool``. The broker lets a block call only those (``Caller.allowed``): a name computed at
run time (``getattr(tools, x)``, ``t=tool; $t disk``) is refused, so what the parse finds is
exactly what a block can reach. Finding too much is safe (an approver sees one tool more);
finding too little only gets a call refused.

A block needs approval when the conversation's mode says so (``always``; ``with_tools`` and
the block names a tool), or when it names a tool whose declaration says ``approve =
"always"`` (an MCP server's name stands for all its tools).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

BlockApproval = Literal["never", "always", "with_tools"]


@dataclass(frozen=True)
class ApprovalRules:
    """What this conversation's policy says about approvals (built from opsloop.toml)."""

    blocks: BlockApproval = "never"
    approval_tools: frozenset[str] = frozenset()  # tools (or MCP servers) with approve=always
    timeout_seconds: float = 15 * 60


def code_sha256(code: str) -> str:
    """The fingerprint an approval is bound to: the exact code, byte for byte."""
    return hashlib.sha256(code.encode("utf-8", errors="surrogatepass")).hexdigest()


def tools_named(code: str, language: str) -> tuple[str, ...]:
    """The tools a block names, in order of first appearance (``NAME`` or ``SERVER.TOOL``)."""
    found = _python_tools(code) if language == "python" else _bash_tools(code)
    return tuple(dict.fromkeys(found))


def needs_approval(code: str, language: str, rules: ApprovalRules) -> tuple[str, ...] | None:
    """The tools to name in the request when the block needs approval, else None."""
    named = tools_named(code, language)
    if rules.blocks == "always" or (rules.blocks == "with_tools" and named):
        return named
    if any(_approval_only(name, rules.approval_tools) for name in named):
        return named
    return None


def _approval_only(name: str, approval_tools: Set[str]) -> bool:
    return name in approval_tools or name.partition(".")[0] in approval_tools


def _python_tools(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return _python_tools_by_text(code)
    aliases = {"tools"}
    direct: dict[str, str] = {}  # `from tools import disk as d` -> d: disk
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "tools"}
        elif isinstance(node, ast.ImportFrom) and node.module == "tools":
            direct |= {a.asname or a.name: a.name for a in node.names}
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases:
                found.append((node.lineno, node.col_offset, _dotted(node, tree)))
        elif isinstance(node, ast.Name) and node.id in direct:
            found.append((node.lineno, node.col_offset, _dotted_from(direct[node.id], node, tree)))
    return [
        name for *_, name in sorted(found) if name not in _MODULE_API and not name.startswith("_")
    ]


_MODULE_API = {"list", "ToolError"}  # the module's own names, not tools


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _dotted(node: ast.Attribute, tree: ast.AST) -> str:
    """``tools.X`` -> ``X``; ``tools.X.Y`` -> ``X.Y`` (an MCP server's tool)."""
    parent = _parents(tree).get(node)
    if isinstance(parent, ast.Attribute) and parent.value is node and parent.attr != "__doc__":
        return f"{node.attr}.{parent.attr}"
    return node.attr


def _dotted_from(name: str, node: ast.Name, tree: ast.AST) -> str:
    parent = _parents(tree).get(node)
    if isinstance(parent, ast.Attribute) and parent.value is node and parent.attr != "__doc__":
        return f"{name}.{parent.attr}"
    return name


_TEXT_CALL = re.compile(r"\btools\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")


def _python_tools_by_text(code: str) -> list[str]:
    """Code that does not parse will not run either; still, name what it mentions."""
    return [f"{a}.{b}" if b and b != "__doc__" else a for a, b in _TEXT_CALL.findall(code)]


_BASH_CALL = re.compile(r"(?<![\w./-])tool\s+([A-Za-z_]\w*(?:\.[A-Za-z_][\w-]*)?)")


def _bash_tools(code: str) -> list[str]:
    """Every name after a ``tool`` word: in a pipeline, ``$(…)``, a quoted ``bash -c`` alike."""
    return _BASH_CALL.findall(code)
