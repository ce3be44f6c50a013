"""The loop runner: ask ``next_step``, perform that one step through a port, record it, repeat.

The continuation of a conversation is its event log, so the runner keeps no state of its own
between steps: each iteration reloads the aggregate, asks the pure ``domain.steps.next_step``
what to do, performs exactly that step (a model call, one block in the sandbox, or a record),
and records the outcome *before* asking again. A process killed mid-loop therefore resumes
from the log: a block with ``BlockStarted`` but no outcome is recorded as unknown (the
decision returns ``ResolveUnknown``) and never re-run.

The application is synchronous (eventsourcing); its commands run in a worker thread so the
event loop stays free for streaming and for ``stop``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, assert_never
from uuid import UUID

from bot import metrics
from bot.errors import ModelUnavailable, one_line
from bot.loop import approval_steps, files, tool_calls
from bot.loop.budget import over_budget
from bot.loop.failures import INTERRUPTED_DETAIL, LoopCancelled, record_failure
from bot.loop.ownership import LeasePolicy, claim, kept
from bot.loop.plumbing import Running, call_app, cancellable
from bot.loop.redacting import no_secrets, show
from bot.loop.safe_progress import SafeProgress
from bot.loop.turn_cap import DEFAULT_TURN_SECONDS, bounded_reply, cut_note
from bot.policy.approvals import ApprovalPolicy
from bot.ports import ChatModel, Progress, PromptBuilder, ProviderFailure, Sandbox
from bot.ports_app import LoopApp
from bot.surface import Outcome
from bot.tools.broker import BlockBroker
from bot.tools.registry import ToolRegistry
from bot.tools.values import Caller
from domain import steps as step_types
from domain.budgets import DailyBudgets
from domain.errors import DomainError, LoopTakenOver
from domain.helpers import SUPPORTED_LANGUAGES
from domain.steps import next_step

if TYPE_CHECKING:
    from domain.limits import LoopLimits
    from domain.redaction import Redactor
    from domain.state import BlockState, LoopState
    from sandbox.limits import Limits
    from sandbox.result import RunResult

log = logging.getLogger(__name__)
T = TypeVar("T")

RECHECK_SECONDS = 1.0  # how often to look at a block another process may still be running


@dataclass
class LoopRunner:
    """Runs conversations' loops: one per conversation at a time in this process, and across
    processes through a lease in the shared store (bot/loop/ownership.py)."""

    app: LoopApp
    model: ChatModel
    sandbox: Sandbox
    limits: LoopLimits
    build_prompt: PromptBuilder
    sandbox_limits: Limits | None = None
    workspace_for: Callable[[UUID], str] = str
    tools: ToolRegistry | None = None  # what blocks may call through their broker
    approvals: ApprovalPolicy = field(default_factory=ApprovalPolicy)  # default: never ask
    budgets: DailyBudgets = field(default_factory=DailyBudgets)  # default: unlimited
    mounts_for: Callable[[Caller], tuple[str, ...]] = lambda _caller: ()  # [sandbox] mounts
    turn_seconds: float = DEFAULT_TURN_SECONDS  # [models] turn_seconds: one model turn's cap
    file_caps: files.FileCaps = field(default_factory=files.FileCaps)  # [files]
    redactor: Redactor = field(default_factory=no_secrets)  # what surfaces are shown passes it
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    lease: LeasePolicy = field(default_factory=LeasePolicy)
    _locks: dict[UUID, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)
    _running: dict[UUID, Running] = field(default_factory=dict, init=False, repr=False)
    _users: dict[UUID, int] = field(default_factory=dict, init=False, repr=False)

    def is_running(self, conversation_id: UUID) -> bool:
        """Whether a loop of this conversation is running in this process."""
        return conversation_id in self._running

    async def run(self, conversation_id: UUID, progress: Progress) -> Outcome:
        """Run the loop until it answers, stops, or has nothing to do."""
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        self._users[conversation_id] = self._users.get(conversation_id, 0) + 1
        try:
            async with lock:
                running = Running()
                self._running[conversation_id] = running
                try:
                    return await self._owned(
                        conversation_id, SafeProgress(show(progress, self.redactor)), running
                    )
                finally:
                    self._running.pop(conversation_id, None)
        finally:
            # A long-lived server sees many conversations: drop a lock nobody holds or awaits.
            self._users[conversation_id] -= 1
            if not self._users[conversation_id]:
                del self._users[conversation_id]
                del self._locks[conversation_id]

    async def cancel(self, conversation_id: UUID) -> bool:
        """Stop the running loop of this conversation now; False when none runs here."""
        running = self._running.get(conversation_id)
        return running is not None and running.interrupt(forced=True)

    def interrupt(self, conversation_id: UUID) -> bool:
        """Interrupt what the loop here awaits, so it decides again from the log (where a
        ``StopRequested`` makes it stop); False when none runs here."""
        running = self._running.get(conversation_id)
        return running is not None and running.interrupt(forced=False)

    # -- the loop ----------------------------------------------------------------------

    async def _owned(self, cid: UUID, progress: Progress, running: Running) -> Outcome:
        """Claim the loop, run it, release it; look again after releasing (a message another
        process recorded meanwhile found the lease held, and is ours to answer)."""
        outcome = Outcome(conversation_id=str(cid), answer=None, stopped_reason=None)
        while not isinstance((await self._decide(cid))[1], step_types.Idle):
            held = await claim(self.app, cid, self.lease, wanted=self._has_work)
            if held is None:
                if isinstance((await self._decide(cid))[1], step_types.Idle):
                    return outcome  # another process answered it meanwhile: see the log
                return dataclasses.replace(outcome, elsewhere=True)  # the holder answers it
            async with kept(self.app, held, self.lease, on_stop=lambda: self.interrupt(cid)):
                with metrics.LOOPS_RUNNING.track_inprogress():
                    latest = await self._loop(cid, progress, running)
            outcome = latest if latest.answer or latest.stopped_reason else outcome
            if latest.awaiting or latest.elsewhere or latest.stopped_reason == "superseded":
                return latest
        return outcome

    async def _decide(self, cid: UUID) -> tuple[LoopState, step_types.Step]:
        state: LoopState = await self._call(self.app.get, cid)
        return state, self._next(state)

    def _next(self, state: LoopState) -> step_types.Step:
        rules = self.approvals.rules_for(approval_steps.coordinates_of(state))
        return next_step(state, self.limits, now=self.now().timestamp(), approvals=rules)

    def _has_work(self, state: LoopState) -> bool:
        return not isinstance(self._next(state), step_types.Idle)

    async def _loop(self, cid: UUID, progress: Progress, running: Running) -> Outcome:
        while True:
            try:
                outcome = await self._step(cid, progress, running)
            except LoopCancelled:
                if not running.cancelled:  # a stop request: the log says what comes next
                    continue
                outcome = await self._stop(
                    cid, progress, reason="cancelled", detail="stopped by the user"
                )
            except LoopTakenOver as exc:  # the new holder shows progress, not us
                log.warning("loop of %s: %s", cid, exc)
                return Outcome(str(cid), None, stopped_reason=None, elsewhere=True, detail=str(exc))
            except DomainError as exc:  # another process stopped, renewed or moved it on
                detail = f"another process changed this conversation: {one_line(exc)}"
                await progress.stopped(reason="superseded", detail=detail)
                outcome = Outcome(
                    conversation_id=str(cid),
                    answer=None,
                    stopped_reason="superseded",
                    detail=detail,
                )
            if outcome is not None:
                return outcome

    async def _step(self, cid: UUID, progress: Progress, running: Running) -> Outcome | None:
        """Decide and perform one step; an ``Outcome`` when the loop is over."""
        running.interrupted = False  # the decision below reads the log a stop is recorded in
        state, step = await self._decide(cid)
        now = self.now().timestamp()
        if not isinstance(step, step_types.Idle) and running.cancelled:
            raise LoopCancelled
        match step:
            case step_types.Idle():
                return Outcome(conversation_id=str(cid), answer=None, stopped_reason=None)
            case step_types.Answer():
                return await self._answer(cid, step.text, progress)
            case step_types.Stop():
                return await self._stop(cid, progress, reason=step.reason, detail=step.detail)
            case step_types.CallModel():
                return await self._call_model(cid, state, progress, running)
            case step_types.RunBlock():
                await self._run_block(cid, step, state, progress, running)
            case step_types.RequestApproval():
                await self._request_approval(cid, step, state, progress)
            case step_types.AwaitApproval():  # no slot, no clock: the loop ends until a decision
                request = approval_steps.approval_request(str(cid), state, step.block)
                return Outcome(str(cid), answer=None, stopped_reason=None, awaiting=request)
            case step_types.ExpireApproval():
                await self._call(self.app.expire_approval, cid, request_id=step.request_id, now=now)
            case step_types.RefuseBlock():
                await self._call(
                    self.app.refuse_block, cid, block_id=step.block.block_id, reason=step.reason
                )
            case step_types.SkipBlock():
                await self._call(
                    self.app.skip_block, cid, block_id=step.block.block_id, reason=step.reason
                )
            case step_types.Wait():  # another process may still be running it: look again
                await cancellable(running, self.sleep(min(step.until - now, RECHECK_SECONDS)))
            case step_types.ResolveUnknown():
                await self._call(
                    self.app.mark_block_unknown,
                    cid,
                    block_id=step.block.block_id,
                    detail=INTERRUPTED_DETAIL,
                )
            case _:
                assert_never(step)
        return None

    async def _answer(self, cid: UUID, text: str, progress: Progress) -> Outcome:
        """Record the files of the outbox not sent yet, then the answer they go out with."""
        out = await files.send(
            self.app,
            self.sandbox,
            cid,
            workspace=self.workspace_for(cid),
            caps=self.file_caps,
            call=self._call,
            redactor=self.redactor,
        )
        await self._call(self.app.answer, cid, text=text)
        await progress.answered(text)
        skipped = tuple(f"{s.name}: {s.reason}" for s in out.skipped)
        return Outcome(str(cid), text, None, files=out.files, files_skipped=skipped)

    async def _call_model(
        self, cid: UUID, state: LoopState, progress: Progress, running: Running
    ) -> Outcome | None:
        if not self.budgets.unlimited:  # the spend is read only when a budget is set
            over = await self._call(over_budget, self.app, state, self.budgets, now=self.now())
            if over is not None:  # before the prompt is built: nothing more is spent
                return await self._stop(cid, progress, reason="budget", detail=over)
        timeline = await self._call(self.app.timeline, cid)
        tools = await tool_calls.tools_for(self.tools, state, self.approvals)
        mounts = self.mounts_for(approval_steps.conversation_caller(state, self.approvals))
        prompt = self.build_prompt(timeline, tools=tools, mounts=mounts)
        await progress.thinking()
        try:
            call = bounded_reply(
                self.model,
                prompt.messages,
                on_text=progress.model_text,
                turn_seconds=self.turn_seconds,
            )
            reply = await cancellable(running, call)
        except (LoopCancelled, asyncio.CancelledError):
            raise
        except ModelUnavailable as exc:
            failures = tuple(f for f in exc.failures if isinstance(f, ProviderFailure))
            return await self._model_failed(cid, progress, failures=failures, error=str(exc))
        except Exception as exc:  # a provider bug must not crash the bot: record it like a failure
            log.exception("model %s raised", self.model.name)
            provider, _, model = self.model.name.partition(":")
            failure = ProviderFailure(
                provider=provider, model=model, error=one_line(exc), attempts=1
            )
            return await self._model_failed(cid, progress, failures=(failure,), error=failure.error)
        await self._call(
            self.app.record_model_reply,
            cid,
            reply=reply,
            prompt_fingerprint=prompt.fingerprint,
            prompt_notes=prompt.notes,
        )
        if note := cut_note(reply):  # every surface shows streamed text: say it was cut
            await progress.model_text(note)
        return None

    async def _model_failed(
        self, cid: UUID, progress: Progress, *, failures: tuple[ProviderFailure, ...], error: str
    ) -> Outcome:
        for failure in failures:
            await self._call(
                self.app.record_model_failure,
                cid,
                provider=failure.provider,
                model=failure.model,
                error=failure.error,
                attempts=failure.attempts,
            )
        return await self._stop(cid, progress, reason="model_unavailable", detail=error)

    async def _request_approval(
        self, cid: UUID, step: step_types.RequestApproval, state: LoopState, progress: Progress
    ) -> None:
        """Record the request (bound to the block's code), then show it on the surface."""
        now = self.now().timestamp()
        request = approval_steps.new_request(str(cid), state, step, self.approvals, now=now)
        expires_at = datetime.fromtimestamp(request.expires_at, UTC)
        await self._call(
            self.app.request_approval,
            cid,
            block_id=request.block_id,
            request_id=request.request_id,
            tools=request.tools,
            requested_from=request.requested_from,
            expires_at=expires_at,
        )
        await progress.approval_requested(request)

    async def _run_block(
        self,
        cid: UUID,
        step: step_types.RunBlock,
        state: LoopState,
        progress: Progress,
        running: Running,
    ) -> None:
        block = step.block
        total = len(state.last_turn_blocks)
        if block.language not in SUPPORTED_LANGUAGES:  # nothing to start: refuse it outright
            known = " or ".join(SUPPORTED_LANGUAGES)
            reason = f"unknown language {block.language!r}; blocks run {known}"
            await self._call(self.app.refuse_block, cid, block_id=block.block_id, reason=reason)
            return
        limits = _as_dict(self.sandbox_limits)
        await self._call(self.app.start_block, cid, block_id=block.block_id, limits=limits)
        await progress.block_started(
            index=block.index, total=total, language=block.language, code=block.code
        )
        broker = tool_calls.block_broker(
            self.tools,
            self.app,
            cid,
            block,
            state,
            self.approvals,
            approved=step.approved,
            call=self._call,
        )
        mounts = self.mounts_for(approval_steps.conversation_caller(state, self.approvals))
        try:
            run = self._in_sandbox(cid, block, broker, mounts)
            result = await cancellable(running, run)
        except BaseException as exc:
            if broker is not None:
                await broker.settle()  # every call's outcome before the block's
            await record_failure(self.app, self._call, cid, block.block_id, exc)
            return
        if broker is not None:
            await broker.settle()
        await self._call(self.app.finish_block, cid, block_id=block.block_id, result=result)
        await progress.block_finished(
            index=block.index, total=total, language=block.language, code=block.code, result=result
        )

    def _in_sandbox(
        self, cid: UUID, block: BlockState, broker: BlockBroker | None, mounts: tuple[str, ...]
    ) -> Awaitable[RunResult]:
        """The sandbox run of one block (with its broker's relay when it has tools, and the
        read-only mounts its caller may have)."""
        extra: dict[str, Any] = {"tools": broker.relay} if broker is not None else {}
        if mounts:
            extra["mounts"] = mounts
        return self.sandbox.run(
            language=block.language,
            code=block.code,
            limits=self.sandbox_limits,
            workspace=self.workspace_for(cid),
            **extra,
        )

    async def _stop(self, cid: UUID, progress: Progress, *, reason: str, detail: str) -> Outcome:
        await self._call(self.app.stop, cid, reason=reason, detail=detail)
        await progress.stopped(reason=reason, detail=detail)
        return Outcome(conversation_id=str(cid), answer=None, stopped_reason=reason, detail=detail)

    # -- plumbing ----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a synchronous application call in a thread; a record is never half-cancelled."""
        return await call_app(fn, *args, **kwargs)


def _as_dict(limits: object) -> dict[str, Any]:
    if limits is None:
        return {}
    if dataclasses.is_dataclass(limits) and not isinstance(limits, type):
        return dataclasses.asdict(limits)
    dump = getattr(limits, "model_dump", None)
    return dict(dump()) if callable(dump) else dict(vars(limits))
