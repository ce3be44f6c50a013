"""Slack's AI app surface (the assistant side panel), where the workspace has it.

``assistant_thread_started`` sets the suggested prompts of ``[slack] suggested_prompts`` (at
most 4); ``assistant_thread_context_changed`` is acknowledged and the channel the person is
looking at is kept (in memory, bounded) for that thread; the first question asked in a new
assistant thread becomes its title. Questions in an assistant thread are ordinary messages
of an IM thread: they take the same path as every other message (recorded first, then the
loop), and each answer there ends with Slack's feedback buttons, whose clicks are recorded
as ``FeedbackGiven``. Channel mentions and DMs outside the panel are unchanged.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import (
    AsyncAssistantThreadContextStore,
)
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import (
    AsyncSetSuggestedPrompts,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.memory import remember
from adapters.slack.stream import SLACK_ERRORS
from bot.errors import OpsloopError
from bot.ports import ChatService
from bot.surface import Coordinates

log = logging.getLogger(__name__)
FEEDBACK_ACTION = "opsloop_feedback"
TITLE_CHARS = 80


class MemoryContexts(AsyncAssistantThreadContextStore):
    """Thread contexts in memory, bounded (Bolt's default store calls the Web API)."""

    def __init__(self) -> None:
        self.contexts: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        """Keep the context of one thread."""
        remember(self.contexts, (channel_id, thread_ts), dict(context), refresh=True)

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        """The context kept for a thread, if any."""
        found = self.contexts.get((channel_id, thread_ts))
        return AssistantThreadContext(found) if found is not None else None


class AssistantThreads:
    """The assistant listeners of one Slack app, and what they learn about its threads."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        service: ChatService,
        prompts: Sequence[str],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.client = client
        self.service = service
        self._spawn = spawn
        self.prompts = list(prompts)[:4]
        self.contexts = MemoryContexts()
        self._untitled: OrderedDict[tuple[str, str], None] = OrderedDict()

    def register(self, app: AsyncApp) -> None:
        """Listen to the assistant events on ``app``."""
        assistant = AsyncAssistant(thread_context_store=self.contexts)
        assistant.thread_started(self._started)
        assistant.thread_context_changed(self._context_changed)
        app.assistant(assistant)
        app.action(FEEDBACK_ACTION)(self._on_feedback)

    async def _on_feedback(
        self, body: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> None:
        """A thumbs up or down: acknowledged at once, recorded in the background."""
        await ack()
        feedback = feedback_from_action(body, team_id=context.team_id or "")
        if feedback is None:
            log.info("ignored a slack feedback click without its parts")
            return
        self._spawn(self._record(feedback))

    async def _record(self, feedback: Feedback) -> None:
        try:
            recorded = await self.service.feedback(
                feedback.coordinates,
                by=feedback.by,
                value=feedback.value,
                answer_sha256=feedback.answer_sha256,
            )
        except OpsloopError as exc:
            log.warning("slack feedback not recorded: %s", exc)
            return
        if not recorded:
            log.info("slack feedback on an answer this thread did not give: ignored")

    async def _started(
        self, payload: dict[str, Any], set_suggested_prompts: AsyncSetSuggestedPrompts
    ) -> None:
        thread = payload.get("assistant_thread") or {}
        channel, ts = str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or "")
        remember(self._untitled, (channel, ts), refresh=True)
        await self.contexts.save(channel_id=channel, thread_ts=ts, context=_context(thread))
        if not self.prompts:
            return
        try:
            await set_suggested_prompts(prompts=self.prompts, title="Try asking:")
        except SLACK_ERRORS as exc:
            log.warning("slack assistant.threads.setSuggestedPrompts failed: %s", exc)

    async def _context_changed(self, payload: dict[str, Any]) -> None:
        thread = payload.get("assistant_thread") or {}
        channel, ts = str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or "")
        await self.contexts.save(channel_id=channel, thread_ts=ts, context=_context(thread))

    async def title(self, channel: str, thread_ts: str, question: str) -> None:
        """Name a new assistant thread after its first question (once)."""
        if (channel, thread_ts) not in self._untitled:
            return
        del self._untitled[(channel, thread_ts)]
        title = " ".join(question.split())[:TITLE_CHARS] or "opsloop"
        try:
            await self.client.assistant_threads_setTitle(
                channel_id=channel, thread_ts=thread_ts, title=title
            )
        except SLACK_ERRORS as exc:
            log.warning("slack assistant.threads.setTitle failed: %s", exc)


def _context(thread: Mapping[str, Any]) -> dict[str, str]:
    context = thread.get("context") or {}
    return {str(k): str(v) for k, v in context.items()} if isinstance(context, Mapping) else {}


def feedback_blocks(answer_sha256: str) -> list[dict[str, Any]]:
    """Slack's thumbs up / down under an answer, bound to that answer by its sha256."""

    def button(emoji: str, value: str, label: str) -> dict[str, Any]:
        return {
            "text": {"type": "plain_text", "text": emoji},
            "value": f"{value}:{answer_sha256}",
            "accessibility_label": label,
        }

    return [
        {
            "type": "context_actions",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": FEEDBACK_ACTION,
                    "positive_button": button("👍", "good", "This answer helped"),
                    "negative_button": button("👎", "bad", "This answer did not help"),
                }
            ],
        }
    ]


@dataclass(frozen=True)
class Feedback:
    """A click on a feedback button: who, which answer, good or bad, and where."""

    coordinates: Coordinates
    by: str
    value: str
    answer_sha256: str


def feedback_from_action(body: Mapping[str, Any], *, team_id: str = "") -> Feedback | None:
    """Translate a ``block_actions`` payload of the feedback buttons (pure); None if it is not
    one or lacks a part."""
    actions = body.get("actions") or [{}]
    action = actions[0] if isinstance(actions[0], Mapping) else {}
    value, _, sha = str(action.get("value") or "").partition(":")
    user = str((body.get("user") or {}).get("id") or "")
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    thread = str(message.get("thread_ts") or container.get("thread_ts") or "")
    team = str((body.get("team") or {}).get("id") or team_id)
    if action.get("action_id") != FEEDBACK_ACTION or not (value and sha and user and channel):
        return None
    if not thread:
        return None
    where = Coordinates(platform="slack", workspace=team, channel=channel, thread=thread)
    return Feedback(coordinates=where, by=user, value=value, answer_sha256=sha)
