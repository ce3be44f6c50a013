"""Rendering a conversation's timeline: text for people, JSON lines for tools, markdown for tickets.

The timeline is one plain dict per event: ``type``, ``version``, ``timestamp`` (ISO 8601),
``conversation_id`` and the event's payload fields (docs/events.md has the schema).

Each event is shown with its number (``#3``: the version ``audit verify`` names) and its time
with the zone. Every field is data, whoever wrote it: control characters are shown, never
sent to the terminal (``bot.visible``); a one-line field (an author, an error) cannot start a
line that looks like another event; in markdown, no output can close the fence around it, and the
answer is quoted so that its own markdown cannot spill into the events after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from bot.audit.replay_lines import (
    FILE_EVENTS,
    LATE,
    LOOP_EVENTS,
    approval_line,
    file_line,
    keyed_line,
    loop_line,
)
from bot.visible import visible, visible_json
from domain.chain import NOT_PAYLOAD
from domain.runaway import CUT_BY

FORMATS = ("text", "json", "markdown")
_MULTILINE = frozenset(
    {"text", "code", "stdout", "result", "stderr"}
)  # shown as indented or fenced lines
_INFO_STRING = re.compile(r"[\w.+#-]+")  # a language safe to put after a markdown fence


def timeline_of(events: Iterable[tuple[type, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Plain dicts of stored events, in order, from (event class, decoded state) pairs."""
    out = []
    ids: dict[UUID, str] = {}
    for cls, state in events:
        oid = state["originator_id"]
        cid = ids.get(oid) or ids.setdefault(oid, str(oid))
        item: dict[str, Any] = {
            "type": cls.__name__,
            "version": state["originator_version"],
            "timestamp": state["timestamp"].isoformat(),
            "conversation_id": cid,
        }
        for key, value in state.items():
            if key not in NOT_PAYLOAD:
                item[key] = value
        if "successor_id" in item:  # the only UUID in a payload
            item["successor_id"] = str(item["successor_id"])
        out.append(item)
    return out


def when_of(iso: str, *, millis: bool = True) -> str:
    """An event's time with its zone shown: ``2026-11-30 10:00:00.123 UTC`` (or ``UTC+0100``)."""
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return visible(iso)
    offset = at.utcoffset()
    zone = "(no zone)" if offset is None else "UTC" if not offset else at.strftime("UTC%z")
    fraction = f".{at.microsecond // 1000:03d}" if millis else ""
    return f"{at:%Y-%m-%d %H:%M:%S}{fraction} {zone}"


def render(items: list[dict[str, Any]], *, fmt: str) -> Iterator[str]:
    """Lines of the timeline in ``fmt`` (text | json | markdown)."""
    if fmt == "json":
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        return (visible_json(dumps(item)) for item in items)
    shown = [_shown(item) for item in items]
    if fmt == "markdown":
        return _markdown(shown)
    return _text(shown)


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    """The event with its text made visible; a one-line field's newlines shown as ``␊``."""
    out = dict(item)
    for key, value in item.items():
        if isinstance(value, str):
            value = visible(value)
            out[key] = value if key in _MULTILINE else value.replace("\n", "\u240a")
    return out


def _lines(text: str) -> list[str]:
    """Lines split at newlines only (``splitlines`` would also split at other separators)."""
    return text.removesuffix("\n").split("\n") if text else []


def _limits_hit(e: dict[str, Any]) -> list[str]:
    hit = []
    if e.get("timed_out"):
        hit.append("time limit")
    if e.get("memory_exceeded"):
        hit.append("memory limit")
    if e.get("output_truncated"):
        hit.append("output truncated")
    return hit


def _kernel(e: dict[str, Any]) -> str:
    """The interpreter a block ran in, when it was not a fresh one (BlockFinished.kernel)."""
    return {"warm": ", warm interpreter", "restarted": ", interpreter restarted"}.get(
        str(e.get("kernel")), ""
    )


def _exit(e: dict[str, Any]) -> str:
    if e.get("signal"):
        return f"killed by signal {e['signal']}"
    return f"exit {e.get('exit_code')}"


def _model_line(e: dict[str, Any]) -> str:
    est = " (estimated)" if e.get("tokens_estimated") else ""
    cost = f"${e['cost']:.4f}" if e.get("priced", True) else "unpriced"
    cut = f", cut by {_CUT_BY.get(e['truncated'], e['truncated'])}" if e.get("truncated") else ""
    dropped = e.get("discarded_chars") or 0
    gone = f", {dropped} characters after its block discarded" if dropped else ""
    return (
        f"{e['provider']}/{e['model']}, {e['input_tokens']} in / {e['output_tokens']} out "
        f"tokens{est}, {cost}, {e['latency_ms']} ms, attempt {e['attempts']}{cut}{gone}"
    )


_KEYS = {"tokens": " ([models] max_output_tokens)", "time": " ([models] turn_seconds)"}
_CUT_BY = {why: words + _KEYS.get(why, "") for why, words in CUT_BY.items()}


def _indent(text: str, prefix: str = "    ") -> Iterator[str]:
    for line in _lines(text or "") or [""]:
        yield prefix + line


def _text(items: list[dict[str, Any]]) -> Iterator[str]:
    requests: dict[str, dict[str, Any]] = {}
    author = ""  # whose message the blocks (and their tool calls) are working on
    for e in items:
        author = e["author"] if e["type"] == "MessageReceived" else author
        t = e["type"]
        head = f"#{e.get('version', '?')}  {when_of(e['timestamp'])}  "
        if t.startswith("Approval"):
            yield f"{head}{approval_line(e, requests)}"
            continue
        if t in LOOP_EVENTS:
            yield f"{head}{loop_line(e)}"
            continue
        if t == "Started":
            yield (
                f"{head}conversation {e['conversation_id']} started by {e['started_by']} "
                f"on {e['platform']} {e['workspace']}/{e['channel']}/{e['thread']}"
                + (f" (generation {e['generation']})" if e.get("generation") else "")
            )
        elif t == "MessageReceived":
            yield f"{head}{e['author']} said{_redacted(e)}:"
            yield from _indent(e["text"])
        elif t == "MessageRefused":
            yield f"{head}{e['author']} was refused ({e['reason']}){_redacted(e)}:"
            yield from _indent(e["text"])
        elif t == "ModelReplied":
            yield f"{head}model turn {e['turn']}: {_model_line(e)}{_redacted(e)}"
            yield from _indent(e["text"])
        elif t == "ModelFailed":
            yield (
                f"{head}model failed: {e['provider']}/{e.get('model') or '?'} after "
                f"{e['attempts']} attempt(s): {e['error']}"
            )
        elif t.startswith("Block"):
            yield from _text_block(e, head)
        elif t.startswith("Tool"):
            yield from (
                f"{head}  {line}" if i == 0 else f"    {line}"
                for i, line in enumerate(_tool(e, author))
            )
        elif t == "Answered":
            yield f"{head}answer{_redacted(e)}:"
            yield from _indent(e["text"])
        elif t == "Stopped":
            yield f"{head}stopped: {e['reason']}" + (f" ({e['detail']})" if e.get("detail") else "")
        elif t == "Renewed":
            yield f"{head}replaced by {e['successor_id']} (new, by {e.get('by', '?')})"
        elif t == "UserErased":
            yield f"{head}the words of {e['user']} were erased (their key was destroyed)"
        elif t == "AuditKeyed":
            yield f"{head}{keyed_line(e)}"
        elif t in FILE_EVENTS:
            yield f"{head}{file_line(e, e.get('name', ''))}"
        else:
            yield f"{head}{t}"


def _redacted(e: dict[str, Any]) -> str:
    """Where an event's text had secrets taken out: `` (redacted: stdout: TOKEN)``."""
    where = e.get("redacted")
    if not isinstance(where, dict) or not where:
        return ""
    said = "; ".join(f"{field}: {', '.join(names)}" for field, names in sorted(where.items()))
    return f" (redacted: {visible(said)})"


def _text_block(e: dict[str, Any], head: str) -> Iterator[str]:
    """A block's event in the text replay."""
    t = e["type"]
    if t == "BlockStarted":
        yield (
            f"{head}block {e['block_id']} ({e['language']}) started, limits "
            f"{json.dumps(e['limits'], sort_keys=True)}:"
        )
        yield from _indent(e["code"])
    elif t in ("BlockFinished", "BlockFinishedLate"):
        flags = _limits_hit(e)
        unsafe = "  UNSAFE-LOCAL" if e.get("unsafe_local") else ""
        limits = f", limit hit: {', '.join(flags)}" if flags else ""
        yield (
            f"{head}block {e['block_id']} finished{LATE if t == 'BlockFinishedLate' else ''}: "
            f"{_exit(e)} in {e['duration_ms']} ms{_kernel(e)}{limits}{unsafe}{_redacted(e)}"
        )
        if e.get("stdout"):
            yield "    stdout:"
            yield from _indent(e["stdout"], "      ")
        if e.get("stderr"):
            yield "    stderr:"
            yield from _indent(e["stderr"], "      ")
    elif t in ("BlockSkipped", "BlockRefused"):
        yield f"{head}block {e['block_id']} {t[5:].lower()}: {e['reason']}"
    elif t == "BlockOutcomeUnknown":
        yield f"{head}block {e['block_id']} outcome unknown: {e['detail']}"


def _tool(e: dict[str, Any], author: str) -> list[str]:
    """A tool event as a headline and the lines of its result (nested under its block);
    a call names the person whose message its block works on."""
    t = e["type"]
    redacted = f" (redacted: {', '.join(e['redacted'])})" if e.get("redacted") else ""
    if t == "ToolCalled":
        arguments = visible(json.dumps(e["arguments"], sort_keys=True, ensure_ascii=False))
        who = f" for {author}" if author else ""
        return [
            f"tool call {e['call_id']} by block {e['block_id']}{who}: {e['tool']} "
            f"{arguments}{redacted}"
        ]
    if t == "ToolRefused":
        return [f"tool call {e['call_id']} ({e['tool']}) refused: {e['reason']}"]
    if t == "ToolOutcomeUnknown":
        return [f"tool call {e['call_id']} outcome unknown: {e['detail']}"]
    cut = ", truncated" if e.get("truncated") else ""
    if not e.get("ok"):
        return [f"tool call {e['call_id']} failed in {e['duration_ms']} ms: {e['error']}{redacted}"]
    result = e.get("result")
    shown = result if isinstance(result, str) else json.dumps(result, indent=2, ensure_ascii=False)
    shown = visible(shown)  # nested strings of a JSON result were not made visible above
    head = f"tool call {e['call_id']} returned {e['result_bytes']} bytes in {e['duration_ms']} ms"
    return [f"{head}{cut}{redacted}:", *_lines(shown or "")]


def _code(text: str) -> str:
    """``text`` as a markdown code span no backtick in it can close."""
    ticks = "`"
    while ticks in text:
        ticks += "`"
    return f"{ticks} {text} {ticks}"


def _fence(text: str, lang: str = "") -> Iterator[str]:
    """``text`` in a fence longer than any run of backticks in it, so nothing inside closes it."""
    ticks = "```"
    while ticks in (text or ""):
        ticks += "`"
    info = lang if _INFO_STRING.fullmatch(lang) else ""  # backticks there would void the fence
    yield f"{ticks}{info}"
    yield from _lines(text or "")
    yield ticks


def _markdown(items: list[dict[str, Any]]) -> Iterator[str]:
    requests: dict[str, dict[str, Any]] = {}
    author = ""
    for e in items:
        author = e["author"] if e["type"] == "MessageReceived" else author
        t, when = e["type"], f"#{e.get('version', '?')}, {when_of(e['timestamp'], millis=False)}"
        if t.startswith("Approval") or t in LOOP_EVENTS:
            line = approval_line(e, requests) if t.startswith("Approval") else loop_line(e)
            yield f"*{line}* ({when})"
            yield ""
            continue
        if t == "Started":
            yield f"## Conversation `{e['conversation_id']}`"
            yield ""
            yield (
                f"Started {when_of(e['timestamp'], millis=False)} by **{e['started_by']}** on "
                f"{e['platform']} "
                f"`{e['workspace']}/{e['channel']}/{e['thread']}`."
            )
        elif t == "MessageReceived":
            yield f"**{e['author']}** ({when}):"
            yield ""
            yield from (f"> {line}" for line in _lines(e["text"]) or [""])
        elif t == "MessageRefused":
            yield f"**{e['author']}** ({when}), refused: {e['reason']}"
        elif t == "ModelReplied":
            yield f"**Model turn {e['turn']}** ({when}): {_model_line(e)}"
            yield ""
            yield from _fence(e["text"])
        elif t == "ModelFailed":
            yield f"*Model failed* ({when}): {e['provider']}/{e.get('model') or '?'}: {e['error']}"
        elif t.startswith("Block"):
            yield from _markdown_block(e)
        elif t.startswith("Tool"):
            first, *rest = _tool(e, author)
            yield f"- {first}"
            if rest:
                yield ""
                yield from ("  " + line for line in _fence("\n".join(rest)))
        elif t == "Answered":
            yield f"### Answer ({when})"
            yield ""
            yield from (f"> {line}" for line in _lines(e["text"]) or [""])
        elif t == "Stopped":
            yield f"**Stopped** ({when}): {e['reason']} {e.get('detail', '')}".rstrip()
        elif t == "Renewed":
            yield f"Replaced by `{e['successor_id']}` ({when})."
        elif t == "UserErased":
            yield f"*The words of {e['user']} were erased* ({when})."
        elif t == "AuditKeyed":
            line = keyed_line(e)
            yield f"*{line[0].upper()}{line[1:]}* ({when})."
        elif t in FILE_EVENTS:
            yield f"{file_line(e, _code(e.get('name', '')))} ({when})"
        yield ""


def _markdown_block(e: dict[str, Any]) -> Iterator[str]:
    """A block's event in the markdown replay."""
    t = e["type"]
    if t == "BlockStarted":
        yield f"**Block {e['block_id']}** ({e['language']}):"
        yield ""
        yield from _fence(e["code"], e["language"])
    elif t in ("BlockFinished", "BlockFinishedLate"):
        flags = _limits_hit(e)
        late = LATE if t == "BlockFinishedLate" else ""
        yield (
            f"Block {e['block_id']}{late}: **{_exit(e)}** in {e['duration_ms']} ms{_kernel(e)}"
            + (f", limit hit: {', '.join(flags)}" if flags else "")
            + (" — **UNSAFE-LOCAL**" if e.get("unsafe_local") else "")
        )
        for stream in ("stdout", "stderr"):
            if e.get(stream):
                yield ""
                yield f"{stream}:"
                yield from _fence(e[stream])
    elif t in ("BlockSkipped", "BlockRefused"):
        yield f"Block {e['block_id']} {t[5:].lower()}: {e['reason']}"
    elif t == "BlockOutcomeUnknown":
        yield f"Block {e['block_id']} outcome unknown: {e['detail']}"
