"""``opsloop usage``: model spend per person, channel, model or day, from the event log.

It reads the usage ledger (bot/app/usage.py), which is caught up from the log first, so it
shows what every replica recorded. Bad input is one line on stderr and exit status 2, like
every opsloop error. What the store holds (user, channel and model names) is printed through
``bot.visible``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import typer

from bot.errors import ConfigError
from bot.visible import visible, visible_json

if TYPE_CHECKING:
    from bot.app.usage import UsageBy, UsageRow

_FORMATS = ("text", "json")


def usage(
    by: Annotated[str, typer.Option(help="user | channel | model | day")] = "user",
    since: Annotated[
        str | None, typer.Option(help="Replies at or after: ISO time or age (7d, 24h, 30m).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | json")] = "text",
) -> None:
    """Model spend (turns, tokens, USD) per person, channel, model or day, from the log."""
    from bot.app.usage import USAGE_BY
    from bot.cli.bootstrap import open_app
    from bot.cli.log import parse_when
    from bot.settings import read_settings

    if by not in USAGE_BY:
        raise ConfigError(f"unknown --by {by!r}: use one of {', '.join(USAGE_BY)}")
    if fmt not in _FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: use text or json")
    since_at = parse_when(since)
    app = open_app(read_settings())
    try:
        rows = app.usage(by=cast("UsageBy", by), since=since_at)
    finally:
        app.close()
    if fmt == "json":
        lines = [visible_json(json.dumps(r.as_json(), ensure_ascii=False)) for r in rows]
    else:
        lines = usage_lines(rows, by=by, since=since_at)
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def usage_lines(rows: Sequence[UsageRow], *, by: str, since: datetime | None) -> list[str]:
    """The text table: one line per key, largest cost first (days in order), then the total."""
    when = f"since {since:%Y-%m-%d %H:%M} UTC" if since else "since the log began"
    if not rows:
        return [f"no model spend {when}"]
    width = max(len(by), 5, *(len(visible(r.key)) for r in rows))
    head = f"{by:<{width}}  {'turns':>6}  {'tokens in':>11}  {'tokens out':>11}  {'cost USD':>10}"
    lines = [f"model spend by {by} {when}", head]
    for r in rows:
        lines.append(_line(visible(r.key), r.turns, r.input_tokens, r.output_tokens, r.cost, width))
    total = _line(
        "total",
        sum(r.turns for r in rows),
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
        sum(r.cost for r in rows),
        width,
    )
    return [*lines, total]


def _line(key: str, turns: int, tokens_in: int, tokens_out: int, cost: float, width: int) -> str:
    return f"{key:<{width}}  {turns:>6,}  {tokens_in:>11,}  {tokens_out:>11,}  {cost:>10.4f}"


def register(app: typer.Typer) -> None:
    """Add ``opsloop usage`` to ``app``."""
    app.command("usage")(usage)
