"""Results out: what the loop produced, as rich renderables for a terminal (pure).

Text that others wrote (model, block, user, error, store) is ``shown``: control characters
made visible, and a rich ``Text`` so that ``[link=…]`` or ``:emoji:`` in it stays literal.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from bot.surface import ApprovalRequest, Totals, failed
from bot.visible import visible

if TYPE_CHECKING:
    from sandbox.result import RunResult

_LEXER = {"python": "python", "bash": "bash", "sh": "bash"}


def shown(text: str, *, style: str = "") -> Text:
    """Untrusted ``text`` as rich text: its control characters visible, never markup."""
    return Text(visible(text), style=style)


def render_result(result: RunResult, *, index: int, total: int, language: str) -> Panel:
    """A block's outcome as a panel: exit status, limits hit, stdout and stderr."""
    flags = [
        name
        for name, hit in (
            ("timed out", result.timed_out),
            ("memory limit hit", result.memory_exceeded),
            ("output truncated", result.output_truncated),
            ("UNSAFE local run", getattr(result, "unsafe_local", False)),
        )
        if hit
    ]
    status = f"exit {result.exit_code}" if result.signal is None else f"signal {result.signal}"
    ok = not failed(result) and not flags  # green only without failure or warning
    body = Text()
    if result.stdout.strip():
        body.append(visible(result.stdout.rstrip("\n")))
    if result.stderr.strip():
        body.append(("\n" if body else "") + visible(result.stderr.rstrip("\n")), style="red")
    if not body:
        body.append("(no output)", style="dim")
    title = f"result {index}/{total} · {status} · {result.duration_ms} ms"
    if flags:
        title += " · " + ", ".join(flags)
    return Panel(body, title=title, title_align="left", border_style="green" if ok else "red")


def render_code(*, index: int, total: int, language: str, code: str) -> Panel:
    """A block's code, highlighted, as it is about to run."""
    lexer = _LEXER.get(language, language)  # an unknown name falls back to plain text
    syntax = Syntax(visible(code), lexer, line_numbers=False, word_wrap=True)
    title = shown(f"block {index}/{total} · {language}")  # a str title would be markup
    return Panel(syntax, title=title, title_align="left", border_style="cyan")


def render_approval(request: ApprovalRequest) -> Panel:
    """A block that waits for a yes: its exact code, the tools it would call, the deadline."""
    lexer = _LEXER.get(request.language, request.language)
    syntax = Syntax(visible(request.code), lexer, line_numbers=False, word_wrap=True)
    tools = ", ".join(request.tools) if request.tools else "none"
    until = datetime.fromtimestamp(request.expires_at).strftime("%H:%M:%S")
    title = shown(
        f"block {request.index}/{request.total} · {request.language} · needs approval "
        f"· tools: {tools} · expires {until}"
    )
    return Panel(syntax, title=title, title_align="left", border_style="yellow")


def render_totals(totals: Totals, *, conversation_id: str) -> str:
    """The ``/cost`` line."""
    return (
        f"conversation {conversation_id[:8]}: {_count(totals.messages, 'message')}, "
        f"{_count(totals.model_turns, 'model turn')}, "
        f"{totals.input_tokens} in / {totals.output_tokens} out tokens, "
        f"${totals.cost:.4f}, {_count(totals.blocks, 'block')}, {totals.duration_ms / 1000:.1f} s"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
