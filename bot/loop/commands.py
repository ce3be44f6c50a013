"""The thread commands (``stop``, ``cost``, ``replay``, ``new``, ``approve``, ``deny``), carried
out once for every
surface: each surface translates a message into a ``Command`` and renders the
``CommandReply`` in its own words.

``handle`` works on any ``CommandTarget`` (the service, or a surface test's fake service),
so what a command does is written here only. The author's access is checked first; a
refused command is recorded as a refused message, like any other.
"""

from __future__ import annotations

from typing import assert_never

from bot.errors import NotFound
from bot.policy.access import refusal
from bot.ports import CommandTarget
from bot.surface import (
    Command,
    CommandName,
    CommandReply,
    Decision,
    Incoming,
    command_reason,
)


async def handle(target: CommandTarget, command: Command) -> CommandReply:
    """Carry out ``command`` against ``target``."""
    incoming, name = command.incoming, command.name
    reason = refusal(
        target.access, coordinates=incoming.coordinates, author=incoming.author, roles=target.roles
    )
    if reason is not None:
        receipt = await target.record_refusal(incoming, reason=reason)
        return CommandReply(
            name=name, refused=receipt.reply, duplicate=receipt.status == "duplicate"
        )
    match name:
        case CommandName.NEW:
            new = await target.new_conversation(incoming.coordinates, by=incoming.author)
            return CommandReply(name=name, new_conversation_id=new)
        case CommandName.APPROVE | CommandName.DENY:  # the latest request of this thread
            decision = Decision(
                coordinates=incoming.coordinates,
                by=incoming.author,
                approve=name is CommandName.APPROVE,
                reason=command_reason(incoming.text) if name is CommandName.DENY else "",
            )
            reply = await target.decide(decision)
            return CommandReply(name=name, conversation_id=reply.conversation_id, decision=reply)
        case CommandName.STOP | CommandName.COST | CommandName.REPLAY:
            return await _about_current(target, name, incoming)
        case _:
            assert_never(name)


async def _about_current(
    target: CommandTarget, name: CommandName, incoming: Incoming
) -> CommandReply:
    """A command about the conversation at the message's coordinates; none there yet is a
    reply too."""
    try:
        cid = await target.current_conversation(incoming.coordinates)
        totals = await target.totals(cid)
    except NotFound:
        return CommandReply(name=name)
    if name is CommandName.STOP:
        stopped = await target.stop(cid, by=incoming.author, message_key=incoming.message_key)
        if stopped == "duplicate":  # another replica got this stop first and answered it
            return CommandReply(name=name, conversation_id=cid, duplicate=True)
        return CommandReply(name=name, conversation_id=cid, stopped=stopped == "stopping")
    timeline = tuple(await target.timeline(cid)) if name is CommandName.REPLAY else ()
    return CommandReply(name=name, conversation_id=cid, totals=totals, timeline=timeline)
