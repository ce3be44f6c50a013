"""The loop runner on the real application (``memory:``), faking only the ports: the scripted
model, a sandbox with canned results, and a recording progress. One step at a time, each
recorded before the next one starts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from bot.app.application import ConversationApp
from bot.config import Policy
from bot.loop.failures import CANCELLED_BLOCK_DETAIL, INTERRUPTED_DETAIL
from bot.loop.runner import LoopRunner
from bot.prompt.builder import prompt_builder
from bot.providers.scripted import ScriptedTurn
from bot.surface import Coordinates
from domain.limits import LoopLimits
from sandbox.errors import SandboxUnavailable
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel, run_result

HERE = Coordinates(platform="terminal", workspace="host", channel="me", thread="chat")
TWO_BLOCKS = 'Let me look.\n<helpers>\nprint(1)\n</helpers>\n<helpers lang="bash">\nls\n</helpers>'
DOWN = ScriptedTurn(unavailable="503 Service Unavailable")


@dataclass
class Loop:
    """A conversation with one message recorded, and a runner wired to run it."""

    app: ConversationApp
    model: WatchedModel
    sandbox: FakeSandbox
    runner: LoopRunner
    cid: UUID

    def kinds(self) -> list[str]:
        """The types of its recorded events, in order."""
        return [e["type"] for e in self.app.timeline(self.cid)]

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Its recorded events of one type."""
        return [e for e in self.app.timeline(self.cid) if e["type"] == kind]


def runner_for(
    app: ConversationApp, model: WatchedModel, sandbox: FakeSandbox, **more: Any
) -> LoopRunner:
    """The real runner with the real prompt builder (so earlier replies reach the model as
    assistant messages, which is how the scripted model knows its turn)."""
    limits = more.pop("limits", LoopLimits())
    build_prompt = prompt_builder(policy=Policy(), model_name=model.name)
    return LoopRunner(
        app=app, model=model, sandbox=sandbox, limits=limits, build_prompt=build_prompt, **more
    )


def a_loop(
    app: ConversationApp,
    turns: list[str | ScriptedTurn],
    *,
    results: list[Any] | None = None,
    turns_per_message: int = 10,
    **runner: Any,
) -> Loop:
    cid, _ = app.receive_message(coordinates=HERE, message_key="m1", author="me", text="hello")
    model = WatchedModel(turns)
    sandbox = FakeSandbox(results=list(results or []))
    limits = LoopLimits(turns_per_message=turns_per_message)
    return Loop(app, model, sandbox, runner_for(app, model, sandbox, limits=limits, **runner), cid)


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop turn until ``condition`` holds (bounded by the test timeout)."""
    while not condition():
        await asyncio.sleep(0)


async def test_a_reply_without_blocks_is_recorded_then_answered(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["Hi there."])
    progress = RecordingProgress()

    outcome = await loop.runner.run(loop.cid, progress)

    assert outcome.answer == "Hi there." and outcome.stopped_reason is None
    assert loop.kinds() == ["Started", "MessageReceived", "ModelReplied", "Answered"]
    # The redactor holds back a word that might go on into a token until the reply is done.
    assert progress.names() == ["thinking", "model_text", "model_text", "answered"]
    assert "".join(text for name, text in progress.calls if name == "model_text") == "Hi there."
    assert loop.sandbox.ran == []


async def test_a_reply_with_two_blocks_runs_both_in_order_then_asks_the_model_again(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, [TWO_BLOCKS, "All done."])
    progress = RecordingProgress()

    outcome = await loop.runner.run(loop.cid, progress)

    assert outcome.answer == "All done."
    assert loop.kinds()[2:] == [
        "ModelReplied",
        "BlockStarted",
        "BlockFinished",
        "BlockStarted",
        "BlockFinished",
        "ModelReplied",
        "Answered",
    ]
    assert [(lang, code) for lang, code, _ in loop.sandbox.ran] == [
        ("python", "print(1)"),
        ("bash", "ls"),
    ]
    assert ("block_started", (2, 2, "bash", "ls")) in progress.calls
    assert len(loop.model.prompts) == 2
    assert "ran ls" in loop.model.prompts[1][-1].content  # the results went back to the model


async def test_every_step_is_recorded_before_the_next_one_starts(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, [TWO_BLOCKS, "Done."])
    loop.sandbox.snapshot = loop.kinds

    await loop.runner.run(loop.cid, RecordingProgress())

    # When each block ran, its own BlockStarted (and the previous block's outcome) was in the log.
    first, second = loop.sandbox.snapshots
    assert first[-1] == "BlockStarted" and first.count("BlockStarted") == 1
    assert second[-2:] == ["BlockFinished", "BlockStarted"]


async def test_blocks_run_in_the_conversation_s_own_workspace(memory_app: ConversationApp) -> None:
    loop = a_loop(memory_app, [TWO_BLOCKS, "Done."])

    await loop.runner.run(loop.cid, RecordingProgress())

    assert {workspace for _, _, workspace in loop.sandbox.ran} == {str(loop.cid)}


@pytest.mark.parametrize(
    "failure",
    [
        {"exit_code": 1, "stderr": "boom"},
        {"exit_code": None, "signal": 9},
        {"exit_code": 0, "timed_out": True},
        {"exit_code": 0, "memory_exceeded": True},
    ],
    ids=["non-zero exit", "signal", "timeout", "memory"],
)
async def test_after_a_failing_block_the_rest_of_the_turn_is_skipped(
    memory_app: ConversationApp, failure: dict[str, Any]
) -> None:
    loop = a_loop(memory_app, [TWO_BLOCKS, "It failed."], results=[run_result(**failure)])

    await loop.runner.run(loop.cid, RecordingProgress())

    assert loop.kinds()[3:6] == ["BlockStarted", "BlockFinished", "BlockSkipped"]
    assert len(loop.sandbox.ran) == 1


async def test_a_model_failure_stops_the_loop_as_model_unavailable_and_keeps_the_message(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, [DOWN])
    progress = RecordingProgress()

    outcome = await loop.runner.run(loop.cid, progress)

    assert outcome.stopped_reason == "model_unavailable"
    assert "503 Service Unavailable" in outcome.detail
    assert loop.kinds() == ["Started", "MessageReceived", "ModelFailed", "Stopped"]
    assert loop.events("MessageReceived")[0]["text"] == "hello"
    assert loop.events("ModelFailed")[0]["error"] == "503 Service Unavailable"
    assert progress.calls[-1] == ("stopped", "model_unavailable")


async def test_an_unexpected_model_error_is_recorded_like_a_failure(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["never played"])
    loop.model.error = RuntimeError("provider bug")

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert outcome.stopped_reason == "model_unavailable"
    failed = loop.events("ModelFailed")[0]
    assert (failed["provider"], failed["model"], failed["error"]) == (
        "scripted",
        "test",
        "provider bug",
    )


async def crashed_mid_block(loop: Loop, *, limits: dict[str, Any] | None = None) -> None:
    """Leave what a process killed while running block t1b1 leaves: the model's reply (as the
    runner records it) and the block's BlockStarted, nothing else."""
    prompt = loop.runner.build_prompt(loop.app.timeline(loop.cid))
    reply = await WatchedModel(loop.model.turns).reply(prompt.messages)
    loop.app.record_model_reply(loop.cid, reply=reply, prompt_fingerprint=prompt.fingerprint)
    loop.app.start_block(loop.cid, block_id="t1b1", limits=limits or {})


async def test_a_block_interrupted_by_a_crash_is_recorded_unknown_and_never_rerun(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, [TWO_BLOCKS, "The first block was interrupted, so I do not know."])
    await crashed_mid_block(loop)
    # long after the block's wall limit: it cannot still be running anywhere
    loop.runner.now = lambda: datetime.now(UTC) + timedelta(hours=1)

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert loop.kinds()[4:7] == ["BlockOutcomeUnknown", "BlockSkipped", "ModelReplied"]
    assert loop.events("BlockOutcomeUnknown")[0]["detail"] == INTERRUPTED_DETAIL
    assert loop.sandbox.ran == []
    assert outcome.answer == "The first block was interrupted, so I do not know."


async def test_a_model_that_writes_a_block_every_turn_is_ended_by_the_turn_limit(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["<helpers>\nprint(1)\n</helpers>"] * 5, turns_per_message=3)

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert outcome.stopped_reason == "turn_limit"
    assert loop.kinds().count("ModelReplied") == 3
    assert len(loop.sandbox.ran) == 3


async def test_a_sandbox_that_cannot_run_code_refuses_the_block_and_the_model_hears_of_it(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(
        memory_app,
        ["<helpers>\nprint(1)\n</helpers>", "The sandbox is down."],
        results=[SandboxUnavailable("nsjail is not installed; run scripts/test")],
    )

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert "BlockRefused" in loop.kinds()
    assert outcome.answer == "The sandbox is down."
    assert any("nsjail is not installed" in m.content for m in loop.model.prompts[-1])


async def test_a_block_in_an_unknown_language_is_refused_without_running(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ['<helpers lang="ruby">\nputs 1\n</helpers>', "No ruby then."])

    await loop.runner.run(loop.cid, RecordingProgress())

    assert loop.sandbox.ran == []
    refused = loop.events("BlockRefused")
    assert refused and "ruby" in refused[0]["reason"]


async def test_stop_while_a_block_runs_records_it_unknown_and_stops_as_cancelled(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["<helpers>\nimport time; time.sleep(60)\n</helpers>"])
    loop.sandbox.hold = asyncio.Event()  # never set: the block runs until cancelled
    progress = RecordingProgress()
    task = asyncio.create_task(loop.runner.run(loop.cid, progress))
    await until(lambda: bool(loop.sandbox.ran))

    assert await loop.runner.cancel(loop.cid) is True
    outcome = await task

    assert outcome.stopped_reason == "cancelled"
    assert loop.kinds()[-2:] == ["BlockOutcomeUnknown", "Stopped"]
    assert loop.events("BlockOutcomeUnknown")[0]["detail"] == CANCELLED_BLOCK_DETAIL
    assert progress.calls[-1] == ("stopped", "cancelled")


async def test_stop_while_waiting_for_the_model_records_no_reply(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["never seen"])
    loop.model.hold = asyncio.Event()
    task = asyncio.create_task(loop.runner.run(loop.cid, RecordingProgress()))
    await until(lambda: bool(loop.model.prompts))

    await loop.runner.cancel(loop.cid)
    outcome = await task

    assert outcome.stopped_reason == "cancelled"
    assert loop.kinds() == ["Started", "MessageReceived", "Stopped"]


async def test_stop_when_no_loop_runs_here_does_nothing(memory_app: ConversationApp) -> None:
    loop = a_loop(memory_app, [])

    assert await loop.runner.cancel(loop.cid) is False
    assert loop.kinds() == ["Started", "MessageReceived"]


async def test_one_conversation_never_runs_two_loops_at_once(memory_app: ConversationApp) -> None:
    loop = a_loop(memory_app, ["first answer"])
    loop.model.hold = asyncio.Event()
    first = asyncio.create_task(loop.runner.run(loop.cid, RecordingProgress()))
    second = asyncio.create_task(loop.runner.run(loop.cid, RecordingProgress()))
    await until(lambda: bool(loop.model.prompts))
    for _ in range(10):
        await asyncio.sleep(0)
    loop.model.hold.set()

    outcomes = await asyncio.gather(first, second)

    assert loop.model.max_active == 1
    assert [o.answer for o in outcomes] == ["first answer", None]  # the second had nothing to do
    assert loop.kinds().count("ModelReplied") == 1


async def test_different_conversations_run_at_the_same_time(memory_app: ConversationApp) -> None:
    loop = a_loop(memory_app, ["an answer"])
    other, _ = memory_app.receive_message(
        coordinates=Coordinates("terminal", "h", "me", "other"),
        message_key="m2",
        author="me",
        text="hi",
    )
    loop.model.hold = asyncio.Event()
    tasks = [
        asyncio.create_task(loop.runner.run(c, RecordingProgress())) for c in (loop.cid, other)
    ]
    await until(lambda: loop.model.active == 2)  # both wait for the model at once
    loop.model.hold.set()

    outcomes = await asyncio.gather(*tasks)

    assert [o.answer for o in outcomes] == ["an answer", "an answer"]
    assert {o.conversation_id for o in outcomes} == {str(loop.cid), str(other)}


@pytest.mark.parametrize("status", ["answered", "stopped"])
async def test_a_finished_conversation_is_idle(memory_app: ConversationApp, status: str) -> None:
    loop = a_loop(memory_app, ["x"])
    if status == "answered":
        await loop.runner.run(loop.cid, RecordingProgress())
    else:
        memory_app.stop(loop.cid, reason="cancelled")
    calls_before = len(loop.model.prompts)
    recorded = loop.kinds()

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert outcome.answer is None and outcome.stopped_reason is None
    assert len(loop.model.prompts) == calls_before
    assert loop.kinds() == recorded


class Clock:
    """A clock that only moves when the runner sleeps."""

    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep()


async def started_moments_ago(app: ConversationApp, clock: Clock) -> Loop:
    """Block t1b1 (wall limit 10 s) started elsewhere just now, by the clock of the runner."""
    loop = a_loop(app, ["<helpers>\nslow()\n</helpers>", "Done."], now=clock.now, sleep=clock.sleep)
    await crashed_mid_block(loop, limits={"wall_seconds": 10.0})
    clock.at = datetime.fromisoformat(loop.events("BlockStarted")[0]["timestamp"])
    return loop


async def test_a_block_started_moments_ago_is_declared_lost_only_after_its_wall_limit(
    memory_app: ConversationApp,
) -> None:
    clock = Clock()
    loop = await started_moments_ago(memory_app, clock)

    await loop.runner.run(loop.cid, RecordingProgress())

    assert 15.0 <= sum(clock.slept) <= 16.0  # wall limit 10 s + 5 s grace, checked each second
    assert max(clock.slept) <= 1.0
    assert loop.kinds()[4] == "BlockOutcomeUnknown"
    assert loop.sandbox.ran == []


async def test_a_block_another_process_finishes_meanwhile_is_not_declared_lost(
    memory_app: ConversationApp,
) -> None:
    clock = Clock()
    loop = await started_moments_ago(memory_app, clock)
    clock.on_sleep = lambda: memory_app.finish_block(
        loop.cid, block_id="t1b1", result=run_result(stdout="ok\n")
    )

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert "BlockOutcomeUnknown" not in loop.kinds()
    assert len(clock.slept) == 1
    assert outcome.answer == "Done."


async def test_a_conversation_moved_on_by_another_process_ends_this_loop_quietly(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["<helpers>\nprint(1)\n</helpers>"])
    loop.model.hold = asyncio.Event()
    progress = RecordingProgress()
    task = asyncio.create_task(loop.runner.run(loop.cid, progress))
    await until(lambda: bool(loop.model.prompts))
    memory_app.renew(coordinates=HERE, by="someone else")  # `new` in another process
    loop.model.hold.set()

    outcome = await task

    assert outcome.stopped_reason == "superseded" and "replaced" in outcome.detail
    assert progress.calls[-1] == ("stopped", "superseded")
    assert loop.kinds()[-1] == "Renewed"  # nothing recorded on it after the renewal


class BrokenProgress(RecordingProgress):
    """A surface whose every post fails (a chat API that is down)."""

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        raise ConnectionError("chat API down")

    async def answered(self, text: str) -> None:
        raise ConnectionError("chat API down")


async def test_a_surface_that_fails_to_show_a_step_does_not_stop_the_loop(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, [TWO_BLOCKS, "Done anyway."])

    outcome = await loop.runner.run(loop.cid, BrokenProgress())

    assert outcome.answer == "Done anyway."
    assert len(loop.sandbox.ran) == 2 and loop.kinds()[-1] == "Answered"


async def test_a_finished_loop_leaves_no_lock_behind(memory_app: ConversationApp) -> None:
    loop = a_loop(memory_app, ["done"])

    await loop.runner.run(loop.cid, RecordingProgress())

    assert loop.runner._locks == {} and loop.runner._users == {}
