"""Approval messages in Slack after they are posted: clicks on their buttons, and showing how
each request was settled.

A click is acknowledged first (by the listener in ``app``), then translated
(``inbound.click_from_action``) and handed to ``ChatService.decide``, which alone says whether
it counts. What comes back is shown: a recorded decision replaces the buttons in place with
"✅ approved by @x" / "⛔ denied by @x" and the conversation's loop runs on, exactly as after a
message; a click that changed nothing is answered only to the clicker (``chat.postEphemeral``).

Approval messages this process posted are remembered (bounded, in memory) so that a request
settled without a click, by the ``approve``/``deny`` thread commands or by expiry, loses its
buttons too. After a restart that memory is empty: the next click on such a message finds the
request settled and updates it then.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import outbound
from adapters.slack.inbound import Click
from adapters.slack.stream import SLACK_ERRORS
from bot.errors import OpsloopError
from bot.ports import ChatService
from bot.surface import ApprovalRequest, DecisionReply

log = logging.getLogger(__name__)
_REMEMBERED = 1_000  # approval messages kept for an update without a click


@dataclass(frozen=True)
class Posted:
    """An approval message this process posted."""

    conversation_id: str
    request_id: str
    channel: str
    ts: str
    blocks: tuple[outbound.Block, ...]


class ApprovalMessages:
    """Where this process posted each approval request (oldest forgotten first)."""

    def __init__(self) -> None:
        self._posted: OrderedDict[str, Posted] = OrderedDict()

    def remember(
        self, request: ApprovalRequest, *, channel: str, ts: str, blocks: Sequence[Any]
    ) -> None:
        """Note the message showing ``request``."""
        self._posted[request.request_id] = Posted(
            conversation_id=request.conversation_id,
            request_id=request.request_id,
            channel=channel,
            ts=ts,
            blocks=tuple(blocks),
        )
        while len(self._posted) > _REMEMBERED:
            self._posted.popitem(last=False)

    def take(self, request_id: str) -> Posted | None:
        """The message of ``request_id``, forgotten as it is returned."""
        return self._posted.pop(request_id, None)

    def take_waiting_in(self, conversation_id: str) -> Posted | None:
        """The latest message of a request of ``conversation_id`` (one waits at a time)."""
        found = [p for p in self._posted.values() if p.conversation_id == conversation_id]
        return self.take(found[-1].request_id) if found else None


class ApprovalClicks:
    """Carries out clicks on Approve and Deny, and shows how requests were settled."""

    def __init__(
        self,
        *,
        service: ChatService,
        client: AsyncWebClient,
        messages: ApprovalMessages,
        resume: Callable[[str, Click], None],
    ) -> None:
        self.service = service
        self.client = client
        self.messages = messages
        self._resume = resume  # run the conversation's loop, as after a message

    async def handle(self, click: Click) -> None:
        """Decide, then show what the decision did; never raises (the click is acked)."""
        try:
            reply = await self.service.decide(click.decision)
        except OpsloopError as exc:  # its text may name the database: keep it in the log
            log.warning("approval click by %s not recorded: %s", click.decision.by, exc)
            await self._ephemeral(click, outbound.DECISION_NOT_RECORDED_TEXT)
            return
        except Exception:
            log.exception("approval click by %s failed", click.decision.by)
            await self._ephemeral(click, outbound.failure_sentence())
            return
        line = outbound.settled_line(reply)
        if line is not None:
            self.messages.take(reply.request_id)
            await self._update(click.channel, click.message_ts, click.blocks, line)
        if reply.resumes and reply.conversation_id:
            self._resume(reply.conversation_id, click)
        else:
            await self._ephemeral(click, outbound.click_reply(reply))

    async def settled_elsewhere(self, reply: DecisionReply) -> None:
        """A request was decided by a thread command: its message loses its buttons too."""
        line = outbound.settled_line(reply)
        posted = self.messages.take(reply.request_id) if line is not None else None
        if posted is not None and line is not None:
            await self._update(posted.channel, posted.ts, posted.blocks, line)

    async def expired_in(self, conversation_id: str) -> None:
        """The watcher expires the request waiting in ``conversation_id``: say so on it."""
        posted = self.messages.take_waiting_in(conversation_id)
        if posted is not None:
            line = outbound.settled_line(DecisionReply(status="expired", detail=""))
            await self._update(posted.channel, posted.ts, posted.blocks, line or "⌛ expired")

    async def _update(
        self, channel: str, ts: str, blocks: Sequence[outbound.Block], line: str
    ) -> None:
        message = outbound.settled_message(blocks, line=line)
        await self._call(
            "chat_update", channel=channel, ts=ts, text=message.text, blocks=list(message.blocks)
        )

    async def _ephemeral(self, click: Click, text: str) -> None:
        await self._call(
            "chat_postEphemeral",
            channel=click.channel,
            user=click.decision.by,
            thread_ts=click.thread_ts,
            text=text,
        )

    async def _call(self, method: str, /, **kwargs: Any) -> None:
        try:
            await getattr(self.client, method)(**kwargs)
        except SLACK_ERRORS as exc:  # the decision is in the log either way
            log.warning("slack %s failed in %s: %s", method, kwargs.get("channel"), exc)
