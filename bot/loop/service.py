"""The ``ChatService`` that chat surfaces (Slack, Discord, the terminal) call.

It decides who may use the bot (``bot.policy.access``), records every incoming message
*before* any work starts (so a surface may acknowledge its platform as soon as ``receive``
returns), runs loops through the ``LoopRunner``, and carries out the thread commands
(``handle``). Ids cross this boundary as strings; a short prefix is accepted wherever a
person may type one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID, uuid4

from bot.config import AccessPolicy
from bot.errors import NotFound, OpsloopError
from bot.loop import commands, decisions, files
from bot.loop.redacting import redacted_outcome, redacted_timeline
from bot.loop.runner import LoopRunner
from bot.loop.safe_progress import NoProgress
from bot.policy.access import refusal
from bot.policy.roles import RolesTable
from bot.ports import Progress, StopStatus
from bot.ports_app import ServiceApp
from bot.surface import (
    RESUME_KEY_PREFIX,
    ApprovalRequest,
    Attachment,
    Command,
    CommandReply,
    Coordinates,
    Decision,
    DecisionReply,
    FileNote,
    Incoming,
    Outcome,
    Receipt,
    Totals,
)
from domain.errors import DomainError

T = TypeVar("T")
log = logging.getLogger(__name__)

STOP_OR_MESSAGE = ("Stopped", "MessageReceived", "Answered")
WATCH_SECONDS = 30.0  # the expiry watcher looks at the log at least this often


class OpsloopService:
    """The application as a chat surface sees it (implements ``bot.surface.ChatService``)."""

    def __init__(
        self,
        *,
        app: ServiceApp,
        runner: LoopRunner,
        model_name: str = "",
        access: Mapping[str, AccessPolicy] | None = None,
    ) -> None:
        self.app = app
        self.runner = runner
        self.model_name = model_name  # "provider:model", for banners and doctor
        self.access = dict(access or {})  # platform -> who may use the bot there

    @property
    def roles(self) -> RolesTable:
        """``[roles]``: a role may stand wherever a user list is accepted."""
        return self.runner.approvals.roles

    async def receive(self, incoming: Incoming) -> Receipt:
        """Record the message, or its refusal (access), or recognise a redelivery; never runs
        the loop itself."""
        reason = refusal(
            self.access, coordinates=incoming.coordinates, author=incoming.author, roles=self.roles
        )
        if reason is not None:
            return await self.record_refusal(incoming, reason=reason)
        cid, recorded = await _thread(
            self.app.receive_message,
            coordinates=incoming.coordinates,
            message_key=incoming.message_key,
            author=incoming.author,
            text=incoming.text,
        )
        return Receipt(conversation_id=str(cid), status="recorded" if recorded else "duplicate")

    async def record_refusal(self, incoming: Incoming, *, reason: str) -> Receipt:
        """Record that this message was refused and return the reply to show.

        A redelivery of a refused message is a ``duplicate``, so no replica shows the
        refusal twice.
        """
        cid, recorded = await _thread(
            self.app.refuse_message,
            coordinates=incoming.coordinates,
            message_key=incoming.message_key,
            author=incoming.author,
            text=incoming.text,
            reason=reason,
        )
        if not recorded:
            return Receipt(conversation_id=str(cid), status="duplicate")
        reply = f"Sorry, I can't take this request: {reason}."
        return Receipt(conversation_id=str(cid), status="refused", reply=reply)

    async def decide(self, decision: Decision) -> DecisionReply:
        """Record an approver's decision on a request of the thread at its coordinates.

        The surface acknowledges the click, shows the reply (``not_approver`` to the clicker
        only), and runs the loop when ``reply.resumes``."""
        now = self.runner.now().timestamp()
        return await decisions.decide(self.app, self.runner.approvals, decision, now=now)

    async def pending_approvals(self) -> list[ApprovalRequest]:
        """Approval requests still waiting in conversations no loop here is running."""
        return await decisions.pending(self.app, running=self.runner.is_running)

    async def watch_approvals(
        self, *, platform: str | None, progress_for: Callable[[str, Coordinates], Progress]
    ) -> None:
        """Run, forever, the loop of each conversation whose approval request expired, on
        time (it records ``ApprovalExpired`` and tells the model the block was refused).

        A surface starts this beside its listener. It reads the log, so requests made before
        a restart, or by another replica, expire on time too. It looks again at least as
        often as the shortest timeout, so it sees every request before it expires."""
        poll = min(WATCH_SECONDS, self.runner.approvals.approvals.timeout_minutes * 60)
        while True:
            now = self.runner.now().timestamp()
            try:
                waiting = [
                    r
                    for r in await self.pending_approvals()
                    if platform is None or r.coordinates.platform == platform
                ]
            except OpsloopError as exc:  # the store is down: look again, the log keeps them
                log.warning("approval watcher: cannot read pending requests: %s", exc)
                waiting = []
            for request in (r for r in waiting if r.expires_at <= now):
                await self._expire(request, progress_for)
            later = [r.expires_at - now for r in waiting if r.expires_at > now]
            await self.runner.sleep(min([poll, *later]))

    async def _expire(
        self, request: ApprovalRequest, progress_for: Callable[[str, Coordinates], Progress]
    ) -> None:
        """Run the loop of an expired request; one that fails is logged, and the watch goes on
        (the next look finds it again if nothing was recorded)."""
        try:
            await self.run(
                request.conversation_id, progress_for(request.conversation_id, request.coordinates)
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("approval watcher: the loop of %s failed", request.conversation_id)

    async def handle(self, command: Command) -> CommandReply:
        """Carry out a thread command for the conversation at its coordinates."""
        return await commands.handle(self, command)

    async def takes_part(self, coordinates: Coordinates) -> bool:
        """Whether a conversation at these coordinates has messages (a thread we are in)."""
        try:
            totals = await self.totals(await self.current_conversation(coordinates))
        except NotFound:
            return False
        return totals.messages > 0

    async def attach(
        self, conversation_id: str, files: Sequence[Attachment], *, by: str
    ) -> list[FileNote]:
        """Save a recorded message's attachments in the inbox, or refuse them; each recorded."""
        cid = await self.resolve(conversation_id)
        return await files_in(self.app, self.runner, cid, attachments=files, by=by)

    async def feedback(
        self, coordinates: Coordinates, *, by: str, value: str, answer_sha256: str
    ) -> bool:
        """Record a rating of an answer of the conversation at these coordinates; False when
        that conversation gave no answer with this sha256 (or the value is not one), or when
        ``by`` may not use the bot there."""
        if refusal(self.access, coordinates=coordinates, author=by, roles=self.roles):
            return False
        try:
            cid = await _thread(self.app.current_id, coordinates)
            await _thread(
                self.app.record_feedback, cid, by=by, value=value, answer_sha256=answer_sha256
            )
        except (NotFound, DomainError):
            return False
        return True

    async def run(self, conversation_id: str, progress: Progress) -> Outcome:
        """Run the loop of this conversation until it answers, stops or has nothing to do."""
        cid = await self.resolve(conversation_id)
        return redacted_outcome(await self.runner.run(cid, progress), self.runner.redactor)

    async def stop(
        self, conversation_id: str, *, by: str = "the user", message_key: str = ""
    ) -> StopStatus:
        """Stop a loop wherever it runs: ``StopRequested`` is recorded, and the process running
        the loop (this one, or another replica) stops it within a second, recording
        ``Stopped(reason="cancelled")``. When no process holds the loop (its holder died), it
        is carried out here. ``idle``: nothing was being worked on; ``duplicate``: this
        ``message_key`` (a redelivered ``stop``) was recorded before."""
        cid = await self.resolve(conversation_id)
        key = message_key or f"stop:{uuid4().hex}"
        if not await _thread(self.app.request_stop, cid, message_key=key, by=by):
            state = await _thread(self.app.get, cid)
            return "duplicate" if state.has_message(key) else "idle"
        if not self.runner.interrupt(cid):  # not here: its holder sees it, or we carry it out
            await self.runner.run(cid, NoProgress())
        return "stopping"

    async def totals(self, conversation_id: str) -> Totals:
        """Tokens, cost, blocks and duration so far."""
        return await _thread(self.app.totals, await self.resolve(conversation_id))

    async def current_conversation(self, coordinates: Coordinates) -> str:
        """The id of the conversation these coordinates currently map to."""
        return str(await _thread(self.app.current_id, coordinates))

    async def new_conversation(self, coordinates: Coordinates, *, by: str | None = None) -> str:
        """Start a fresh conversation at the same coordinates; returns its id."""
        if by is None:  # the protocol does not carry the author; a terminal's channel is its user
            by = coordinates.channel if coordinates.platform in ("terminal", "cli") else "user"
        return str(await _thread(self.app.renew, coordinates=coordinates, by=by))

    async def interrupted(self, *, platform: str | None = None) -> list[tuple[str, Coordinates]]:
        """Conversations whose loop was interrupted (process killed), to resume at start-up
        and, on a surface, every ``lease`` seconds (a replica that died mid-loop).

        A conversation whose lease another process holds is running there. A conversation
        waiting for an approval was not interrupted: it waits for a click, or
        for ``watch_approvals`` to expire its request."""
        found = await _thread(self.app.open_conversations)
        waiting = {r.conversation_id for r in await self.pending_approvals()}
        held = await _thread(self.app.held_loops)  # another process runs these
        return [
            (str(cid), coords)
            for cid, coords in found
            if (platform is None or coords.platform == platform)
            and not self.runner.is_running(cid)
            and str(cid) not in waiting
            and cid not in held
        ]

    async def resume_all(
        self, *, platform: str | None, progress_for: Callable[[str, Coordinates], Progress]
    ) -> list[Outcome]:
        """Resume every interrupted conversation of ``platform``, one after the other."""
        outcomes = []
        for cid, coords in await self.interrupted(platform=platform):
            outcomes.append(await self.run(cid, progress_for(cid, coords)))
        return outcomes

    async def timeline(self, conversation_id: str) -> list[dict[str, Any]]:
        """The recorded events of a conversation, as ``replay --format json`` shows them, with
        every secret taken out (the ``replay`` command posts them in the thread)."""
        timeline = await _thread(self.app.timeline, await self.resolve(conversation_id))
        return redacted_timeline(timeline, self.runner.redactor)

    async def coordinates_of(self, conversation_id: str) -> Coordinates:
        """Where a conversation lives (to send another message into it)."""
        state = await _thread(self.app.get, await self.resolve(conversation_id))
        platform, workspace, channel, thread = state.coordinates
        return Coordinates(platform=platform, workspace=workspace, channel=channel, thread=thread)

    async def reopen_if_model_failed(self, conversation_id: str, *, by: str = "resume") -> bool:
        """Let ``opsloop resume ID`` retry a loop that stopped because no model answered.

        Only a new message reopens a stopped conversation, so the retry is recorded as the
        last user message again, under a ``resume:`` key; the prompt builder leaves such
        repeats out, so the model sees what it would have seen the first time.
        """
        timeline = await self.timeline(conversation_id)
        last_stop = next((e for e in reversed(timeline) if e["type"] in STOP_OR_MESSAGE), None)
        if last_stop is None or last_stop["type"] != "Stopped":
            return False
        if last_stop.get("reason") != "model_unavailable":
            return False
        message = next(e for e in reversed(timeline) if e["type"] == "MessageReceived")
        key = f"{RESUME_KEY_PREFIX}{last_stop['version']}:{message['message_key']}"
        await _thread(
            self.app.receive_message,
            coordinates=await self.coordinates_of(conversation_id),
            message_key=key,
            author=message["author"],
            text=message["text"],
        )
        return True

    async def aclose(self) -> None:
        """Close the model's network clients, the tools, the sandbox (its warm kernels, its
        client) and the event store."""
        close_model = getattr(self.runner.model, "aclose", None)
        if close_model is not None:
            await close_model()
        close_sandbox = getattr(self.runner.sandbox, "aclose", None)
        if close_sandbox is not None:
            await close_sandbox()
        if self.runner.tools is not None:
            await self.runner.tools.aclose()  # MCP servers, HTTP pool
        close_app = getattr(self.app, "close", None)
        if close_app is not None:
            await _thread(close_app)

    async def resolve(self, id_or_prefix: str) -> UUID:
        """A full conversation id from an id or a unique prefix (``NotFound``/``AmbiguousId``)."""
        try:
            return UUID(id_or_prefix)
        except ValueError:
            return await _thread(self.app.resolve, id_or_prefix)


async def files_in(
    app: ServiceApp, runner: LoopRunner, cid: UUID, *, attachments: Sequence[Attachment], by: str
) -> list[FileNote]:
    """``files.receive`` with the runner's sandbox, workspace and caps."""
    return await files.receive(
        app,
        runner.sandbox,
        cid,
        workspace=runner.workspace_for(cid),
        files=attachments,
        by=by,
        caps=runner.file_caps,
    )


async def _thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)
