"""The event-log commands: ``opsloop replay``, ``opsloop conversations`` (and ``opsloop audit``,
whose commands are in ``bot.cli.audit``).

They open the store named by ``OPSLOOP_DATABASE_URL`` (default: a SQLite file in the data
directory) with ``OPSLOOP_CIPHER_KEY`` when set. Errors are opsloop errors, which
``bot.cli.main`` prints as one line. What the store holds is printed through
``bot.visible``: a channel name or a tampered event type cannot drive the terminal.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from bot.errors import ConfigError
from bot.visible import visible, visible_json

PLATFORMS = ("slack", "discord", "terminal", "cli")  # where conversations come from
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """An ISO 8601 date/time (UTC when no zone is given) or a relative age like ``7d``."""
    if not text:
        return None
    match = _RELATIVE.match(text.strip().lower())
    if match:
        try:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return (now or datetime.now(UTC)) - delta
        except (OverflowError, ValueError):  # 99999999999d: before year 1 (or digits galore)
            raise ConfigError(f"cannot read the time {text!r}: that age is too long") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"cannot read the time {text!r}: use ISO 8601 (2026-11-25 or 2026-11-25T10:00) "
            "or an age like 30m, 12h, 7d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _write(lines: object) -> None:
    out = sys.stdout
    buf: list[str] = []
    for line in lines:  # type: ignore[attr-defined]
        buf.append(line)
        if len(buf) >= 2000:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")
    out.flush()


def replay(
    conversation: Annotated[str, typer.Argument(help="Conversation id, or a unique prefix of it.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | json | markdown")] = "text",
) -> None:
    """Replay a conversation: who said what, every model turn, every block and its output
    (read-only: it works with a SELECT-only role or a read-only file)."""
    from bot.audit.reader import resolve_id
    from bot.audit.replay import FORMATS, render, timeline_of
    from bot.cli.source import audit_source
    from bot.errors import NotFound
    from bot.settings import read_settings

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    with audit_source(read_settings()) as source:
        cid = resolve_id(conversation, source.ids())
        items = timeline_of(source.mapper.to_state(s) for s in source.events(cid))
    if not items:
        raise NotFound(f"no conversation {cid}")
    _write(render(items, fmt=fmt))


def conversations(
    platform: Annotated[str | None, typer.Option(help="slack | discord | terminal | cli")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel id.")] = None,
    user: Annotated[str | None, typer.Option(help="Someone who started or wrote in it.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Active at or after: ISO time or age (7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Started at or before: ISO time or age.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | json")] = "text",
) -> None:
    """List conversations, most recently active first."""
    from bot.cli.bootstrap import open_app
    from bot.settings import read_settings

    if fmt not in ("text", "json"):
        raise ConfigError(f"unknown format {fmt!r}: use text or json")
    if platform is not None and platform not in PLATFORMS:
        raise ConfigError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    since_at, until_at = parse_when(since), parse_when(until)
    app = open_app(read_settings())
    try:
        rows = app.list_conversations(
            platform=platform, channel=channel, user=user, since=since_at, until=until_at
        )
    finally:
        app.close()
    if fmt == "json":
        _write(visible_json(json.dumps(r.as_json(), ensure_ascii=False)) for r in rows)
        return
    if not rows:
        print("no conversations")
        return
    lines = [
        f"{'id':36}  {'platform':8}  {'channel':14}  {'last active (UTC)':19}  "
        f"{'status':8}  {'msgs':>4}  {'turns':>5}  {'tokens':>7}  {'cost':>8}  started by"
    ]
    for r in rows:
        platform, channel, by = (visible(v) for v in (r.platform, r.channel, r.started_by))
        lines.append(
            f"{r.conversation_id!s:36}  {platform:8.8}  {channel:14.14}  "
            f"{r.last_at:%Y-%m-%d %H:%M:%S}  {r.status:8}  {r.messages:>4}  {r.model_turns:>5}  "
            f"{r.input_tokens + r.output_tokens:>7}  {r.cost:>8.4f}  {by}"
        )
    _write(lines)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("replay")(replay)
    app.command("conversations")(conversations)
