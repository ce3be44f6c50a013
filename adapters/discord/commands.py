"""The chat commands ``stop``, ``cost``, ``replay`` and ``new`` against the ``ChatService``.

``replay`` attaches the conversation's audit timeline as markdown when the service can give
it (``OpsloopService.timeline``, beyond the ``ChatService`` protocol); otherwise it says how
to replay it with the CLI.
"""

from __future__ import annotations

from typing import Any

from adapters.discord.inbound import Command
from adapters.discord.outbound import Attachment, Outgoing
from bot.errors import NotFound
from bot.surface import ChatService, Totals


def render_totals(totals: Totals, *, conversation_id: str) -> str:
    """The ``cost`` reply: tokens, cost, blocks and time of this conversation."""
    seconds = totals.duration_ms / 1000
    return (
        f"Conversation `{conversation_id[:8]}`: {totals.messages} message(s), "
        f"{totals.model_turns} model turn(s), {totals.input_tokens:,} tokens in / "
        f"{totals.output_tokens:,} out, ${totals.cost:.4f}, {totals.blocks} block(s) run, "
        f"{seconds:.1f} s."
    )


def render_replay(totals: Totals, *, conversation_id: str) -> str:
    """The ``replay`` reply: where the full audit trail of this conversation is."""
    return (
        f"{render_totals(totals, conversation_id=conversation_id)}\n"
        f"Every step (model calls, code, output, answer) is in the audit log: "
        f"`opsloop replay {conversation_id}` shows it and `opsloop audit verify` proves it intact."
    )


async def execute(service: ChatService, command: Command) -> Outgoing:
    """Carry out ``command`` and return the reply to show."""
    if command.name == "new":
        await service.new_conversation(command.coordinates)
        return Outgoing(
            "Started a fresh conversation. Earlier messages here are kept in the audit log."
        )
    try:
        return await _about_current(service, command)
    except NotFound:
        return Outgoing("There is no conversation here yet: send a message to start one.")


async def _about_current(service: ChatService, command: Command) -> Outgoing:
    conversation_id = await service.current_conversation(command.coordinates)
    if command.name == "stop":
        stopped = await service.stop(conversation_id)
        return Outgoing("Stopping." if stopped else "Nothing is running here.")
    totals = await service.totals(conversation_id)
    if command.name == "cost":
        return Outgoing(render_totals(totals, conversation_id=conversation_id))
    text = render_replay(totals, conversation_id=conversation_id)
    timeline = getattr(service, "timeline", None)
    if timeline is None:
        return Outgoing(text)
    return Outgoing(text, files=(await _replay_file(timeline, conversation_id),))


async def _replay_file(timeline: Any, conversation_id: str) -> Attachment:
    from bot.audit.replay import render

    lines = render(await timeline(conversation_id), fmt="markdown")
    content = "\n".join(lines).encode("utf-8")
    return Attachment(filename=f"replay-{conversation_id[:8]}.md", content=content)
