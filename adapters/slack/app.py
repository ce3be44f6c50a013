"""Slack in front of a ``ChatService``: Bolt listeners, acknowledgement first, loops behind.

Order for every event: translate it, record it (``ChatService.receive``), *then* ack Slack,
*then* run the loop in a background task. Bolt runs with ``process_before_response=True``
so that the ack really comes after the listener has recorded the message (with ``False``
Bolt acks Events API requests before the listener even starts, and a crash between the
two would lose the message). The listener itself only records and spawns, so Slack's
3-second deadline holds however slow the model is. A redelivery is answered by the
receipt's ``duplicate`` status: nothing visible happens and no second loop starts.

A click on an approval button is the other way round: acknowledged at once, then decided in
the background (``adapters.slack.approvals``); a lost click costs a second click, while a
decision that outlived Slack's 3 seconds would show the clicker an error for a click that
counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import outbound
from adapters.slack.approvals import ApprovalClicks, ApprovalMessages
from adapters.slack.assistant import AssistantThreads
from adapters.slack.attach import files_in
from adapters.slack.inbound import (
    Click,
    EventKind,
    Ignored,
    Inbound,
    click_from_action,
    inbound_from_event,
)
from adapters.slack.memory import remember
from adapters.slack.pacer import ChannelPacer
from adapters.slack.progress import SlackProgress
from adapters.slack.thread import Capabilities, Thread
from bot.errors import OpsloopError
from bot.loop.ownership import LEASE_SECONDS
from bot.ports import ChatService
from bot.surface import Command, Coordinates

log = logging.getLogger(__name__)


@dataclass
class _Run:
    """A conversation whose loop is running; ``next`` asks for one more run after it."""

    next: SlackProgress | None


class SlackSurface:
    """Connects a ``ChatService`` to Slack through a Bolt ``AsyncApp``."""

    def __init__(
        self,
        *,
        service: ChatService,
        client: AsyncWebClient,
        signing_secret: str = "",
        pacer_interval: float = 1.0,
        status_interval: float = 1.5,
        ack_priority_seconds: float = 1.0,
        resume_every: float = LEASE_SECONDS,
        suggested_prompts: Sequence[str] = (),
    ) -> None:
        self.service = service
        self.client = client
        self.pacer = ChannelPacer(interval=pacer_interval)
        self.capabilities = Capabilities()
        self._status_interval = status_interval
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runs: dict[str, _Run] = {}
        self._threads: OrderedDict[Coordinates, None] = OrderedDict()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()  # commands, notices
        self._acking_now = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._ack_priority = ack_priority_seconds
        self._resume_every = resume_every  # how often to look for loops of dead replicas
        self.app = AsyncApp(
            client=client,
            signing_secret=signing_secret,
            process_before_response=True,
            name="opsloop",
        )
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.action(outbound.APPROVE_ACTION)(self._on_click)
        self.app.action(outbound.DENY_ACTION)(self._on_click)
        self.approvals = ApprovalMessages()
        self.clicks = ApprovalClicks(
            service=service, client=client, messages=self.approvals, resume=self._after_click
        )
        self._watcher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Future[None] | None = None  # resumes loops of dead replicas
        self.assistant = AssistantThreads(
            client=client, service=service, prompts=suggested_prompts, spawn=self._spawn
        )
        self.assistant.register(self.app)

    # -- acknowledgements first ---------------------------------------------------------------

    async def dispatch(self, request: AsyncBoltRequest) -> BoltResponse:
        """Hand one Events API request to Bolt; HTTP mode calls this."""
        with self._acking():
            return await self.app.async_dispatch(request)

    @contextlib.contextmanager
    def _acking(self) -> Iterator[None]:
        self._acking_now += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._acking_now -= 1
            if self._acking_now == 0:
                self._quiet.set()

    async def _acks_first(self) -> None:
        """Under a burst, let pending acknowledgements out before loops compete for the CPU
        and the store; bounded, so a steady stream of events cannot starve the loops."""
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands
        # as the wait completes, and a stop must always reach the loop task.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._ack_priority):
                await self._quiet.wait()

    # -- listeners (must stay fast: they run before the ack) --------------------------------

    async def _on_mention(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> None:
        with self._acking():  # Socket Mode reaches the listeners without ``dispatch``
            await self._handle(body=body, event=event, kind="mention", context=context, ack=ack)

    async def _on_message(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> None:
        with self._acking():
            await self._handle(body=body, event=event, kind="message", context=context, ack=ack)

    async def _on_click(
        self, body: dict[str, Any], context: AsyncBoltContext, ack: AsyncAck
    ) -> None:
        """Approve or Deny: acknowledged first, decided and shown in the background."""
        with self._acking():
            await ack()
            click = click_from_action(body, team_id=context.team_id or "")
            if isinstance(click, Ignored):
                log.info("ignored a slack click: %s", click.reason)
                return
            self._spawn(self.clicks.handle(click))

    async def _handle(
        self,
        *,
        body: Mapping[str, Any],
        event: Mapping[str, Any],
        kind: EventKind,
        context: AsyncBoltContext,
        ack: AsyncAck,
    ) -> None:
        team = str(body.get("team_id") or event.get("team") or context.team_id or "")
        inbound = inbound_from_event(
            event, kind=kind, team_id=team, bot_user_id=context.bot_user_id or ""
        )
        if isinstance(inbound, Ignored):
            log.debug("ignored slack event %s: %s", body.get("event_id"), inbound.reason)
            await ack()
            return
        if inbound.needs_thread_check and not await self._in_thread(inbound.coordinates):
            await ack()
            return
        incoming = inbound.incoming
        if inbound.command is not None:
            await ack()
            if remember(self._seen, ("command", incoming.message_key)):
                self._spawn(self._command(inbound))
            return
        try:
            receipt = await self.service.receive(incoming)
        except OpsloopError:
            # Not acknowledged (Bolt answers 500 and logs why), so Slack redelivers it. The
            # error's text may name the database, so the thread gets a plain sentence.
            self._notify(inbound, outbound.NOT_RECORDED_TEXT)
            raise
        await ack()
        self._notify(inbound, receipt.reply if receipt.status == "refused" else "")
        if receipt.status != "recorded":
            return
        remember(self._threads, inbound.coordinates)
        self._spawn(self._start(receipt.conversation_id, self._progress(inbound), inbound))

    # -- background work --------------------------------------------------------------------

    def _notify(self, inbound: Inbound, text: str) -> None:
        """Post ``text`` in the thread once per message, however often Slack redelivers it."""
        if text and remember(self._seen, ("notice", inbound.incoming.message_key)):
            self._spawn(self._progress(inbound).post_text(outbound.escape(text)))

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # keep a reference: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)

    def _progress(self, inbound: Inbound) -> SlackProgress:
        return self._progress_at(
            Thread(
                team=inbound.coordinates.workspace,
                channel=inbound.channel,
                thread_ts=inbound.thread_ts,
                message_ts=inbound.message_ts,
                user=inbound.incoming.author,
                assistant=inbound.assistant_thread,
            )
        )

    def _progress_at(self, thread: Thread, *, preface: str = "") -> SlackProgress:
        return SlackProgress(
            client=self.client,
            pacer=self.pacer,
            capabilities=self.capabilities,
            thread=thread,
            status_interval=self._status_interval,
            approvals=self.approvals,
            preface=preface,
        )

    def _progress_in(
        self, coordinates: Coordinates, *, user: str = "", preface: str = ""
    ) -> SlackProgress:
        """Progress in a conversation's thread when no message of it is at hand (a click, a
        restart, an expiry): reactions go on the thread's first message."""
        c = coordinates
        thread = Thread(
            team=c.workspace, channel=c.channel, thread_ts=c.thread, message_ts=c.thread, user=user
        )
        return self._progress_at(thread, preface=preface)

    def _after_click(self, conversation_id: str, click: Click) -> None:
        """A recorded decision: the loop runs on in the thread, as after a message."""
        coordinates = click.decision.coordinates
        remember(self._threads, coordinates)
        self._kick(conversation_id, self._progress_in(coordinates, user=click.decision.by))

    async def _in_thread(self, coordinates: Coordinates) -> bool:
        """Whether the bot takes part in this thread (a conversation has messages there)."""
        if coordinates in self._threads:
            return True
        try:
            known = await self.service.takes_part(coordinates)
        except OpsloopError:
            return False
        if known:
            remember(self._threads, coordinates)
        return known

    async def _start(self, conversation_id: str, progress: SlackProgress, inbound: Inbound) -> None:
        await self._acks_first()
        await progress.react("eyes")
        if inbound.assistant_thread:
            await self.assistant.title(inbound.channel, inbound.thread_ts, inbound.incoming.text)
        if inbound.files:
            await files_in(self.service, self.client, conversation_id, inbound, progress)
        self._kick(conversation_id, progress)

    def _kick(self, conversation_id: str, progress: SlackProgress) -> None:
        """Run the loop, or ask the running loop for one more run once it ends."""
        running = self._runs.get(conversation_id)
        if running is not None:
            running.next = progress
            return
        self._runs[conversation_id] = _Run(next=progress)
        self._spawn(self._drive(conversation_id))

    async def _drive(self, conversation_id: str) -> None:
        try:
            while (progress := self._runs[conversation_id].next) is not None:
                self._runs[conversation_id].next = None
                try:
                    outcome = await self.service.run(conversation_id, progress)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("loop of conversation %s failed", conversation_id)
                    if not progress.finished:
                        await progress.failed()
                    continue
                await progress.send_files(outcome)
                if outcome.awaiting is not None or outcome.elsewhere:
                    continue  # paused for an approver, or run (and shown) by another replica
                if not progress.finished and outcome.stopped_reason is None:
                    # Nothing left to do: the run before this one already answered the
                    # message (it arrived while that run was going), so mark it done too.
                    await progress.react("white_check_mark")
        finally:
            del self._runs[conversation_id]

    async def _command(self, inbound: Inbound) -> None:
        assert inbound.command is not None
        decision = None
        try:
            reply = await self.service.handle(Command(inbound.command, inbound.incoming))
        except OpsloopError as exc:  # its text may name the database: keep it in the log
            log.warning("slack command %s failed: %s", inbound.command, exc)
            text = outbound.failure_sentence()
        except Exception:
            log.exception("slack command %s failed", inbound.command)
            text = outbound.failure_sentence()
        else:
            if reply.duplicate:
                return
            text, decision = outbound.command_text(reply), reply.decision
        progress = self._progress(inbound)
        await progress.post_text(text)
        if decision is not None and decision.resumes and decision.conversation_id:
            # approve/deny typed in the thread: as a click, the buttons go and the loop runs on
            await self.clicks.settled_elsewhere(decision)
            self._kick(decision.conversation_id, progress)

    # -- life cycle ---------------------------------------------------------------------------

    async def resume_interrupted(self) -> int:
        """Restart the loops a killed process (this one before a restart, or another replica)
        left running and no process holds; returns how many. The thread hears that it was
        picked up only from the replica that gets its lease."""
        pairs = await self.service.interrupted(platform="slack")
        pairs = [(cid, c) for cid, c in pairs if cid not in self._runs]
        for conversation_id, c in pairs:
            remember(self._threads, c)
            self._kick(conversation_id, self._progress_in(c, preface=outbound.RESUMED_TEXT))
        return len(pairs)

    async def watch_interrupted(self, *, every: float) -> None:
        """Resume, every ``every`` seconds, loops whose holder died (its lease expired)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.resume_interrupted()
            except OpsloopError as exc:  # the store is down: look again next time
                log.warning("could not look for interrupted loops: %s", exc)

    def watch_approvals(self) -> None:
        """Start expiring approval requests on time (``close`` stops it); the servers start it
        beside the listener, after ``resume_interrupted``."""
        if self._watcher is None:
            work = self.service.watch_approvals(platform="slack", progress_for=self._expiring)
            self._watcher = asyncio.ensure_future(work)
            self._sweeper = asyncio.ensure_future(self.watch_interrupted(every=self._resume_every))

    @property
    def watching(self) -> bool:
        """Whether the approval watcher runs."""
        return self._watcher is not None and not self._watcher.done()

    def _expiring(self, conversation_id: str, coordinates: Coordinates) -> SlackProgress:
        """The progress of a loop the watcher runs because its request expired."""
        self._spawn(self.clicks.expired_in(conversation_id))
        return self._progress_in(coordinates)

    async def idle(self) -> None:
        """Wait until no background work is left (tests and graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, *, grace: float = 5.0) -> None:
        """Give running work ``grace`` seconds, then cancel it (the log lets it resume later)."""
        watcher, self._watcher = self._watcher, None
        sweeper, self._sweeper = self._sweeper, None
        for task in (watcher, sweeper):  # the next process's watcher expires what is left
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
