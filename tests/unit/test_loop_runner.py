"""The loop runner against hand-written fakes: one step at a time, each recorded first."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from bot.loop.runner import CANCELLED_BLOCK_DETAIL, INTERRUPTED_DETAIL, LoopRunner
from bot.surface import Coordinates
from domain.limits import LoopLimits
from sandbox.errors import SandboxUnavailable
from tests.port_fakes import (
    FakeApp,
    FakeSandbox,
    RecordingProgress,
    Result,
    ScriptedModel,
    reply,
    simple_prompt,
    unavailable,
)

HERE = Coordinates(platform="terminal", workspace="host", channel="me", thread="chat")
TWO_BLOCKS = 'Let me look.\n<helpers>\nprint(1)\n</helpers>\n<helpers lang="bash">\nls\n</helpers>'


def setup(turns: list, *, results: list | None = None, turns_per_message: int = 10):
    app = FakeApp()
    model = ScriptedModel(turns=turns, app=app)
    sandbox = FakeSandbox(results=list(results or []), app=app)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=sandbox,
        limits=LoopLimits(turns_per_message=turns_per_message),
        build_prompt=simple_prompt,
    )
    cid, _ = app.receive_message(coordinates=HERE, message_key="m1", author="me", text="hello")
    return app, model, sandbox, runner, cid


async def test_a_reply_without_blocks_is_recorded_then_answered() -> None:
    app, _, sandbox, runner, cid = setup(["Hi there."])
    progress = RecordingProgress()

    outcome = await runner.run(cid, progress)

    assert outcome.answer == "Hi there." and outcome.stopped_reason is None
    assert app.kinds(cid) == ["MessageReceived", "ModelReplied", "Answered"]
    assert progress.names() == ["thinking", "model_text", "answered"]
    assert sandbox.ran == []


async def test_a_reply_with_two_blocks_runs_both_in_order_then_asks_the_model_again() -> None:
    app, model, sandbox, runner, cid = setup([TWO_BLOCKS, "All done."])
    progress = RecordingProgress()

    outcome = await runner.run(cid, progress)

    assert outcome.answer == "All done."
    assert app.kinds(cid) == [
        "MessageReceived",
        "ModelReplied",
        "BlockStarted",
        "BlockFinished",
        "BlockStarted",
        "BlockFinished",
        "ModelReplied",
        "Answered",
    ]
    assert [(lang, code) for lang, code, _ in sandbox.ran] == [
        ("python", "print(1)"),
        ("bash", "ls"),
    ]
    assert ("block_started", (2, 2, "bash", "ls")) in progress.calls
    assert len(model.seen) == 2


async def test_every_step_is_recorded_before_the_next_one_starts() -> None:
    app, _, sandbox, runner, cid = setup([TWO_BLOCKS, "Done."])

    await runner.run(cid, RecordingProgress())

    # When each block ran, its own BlockStarted (and the previous block's outcome) was in the log.
    first, second = sandbox.log_at_run
    assert first[-1] == "BlockStarted" and first.count("BlockStarted") == 1
    assert second[-2:] == ["BlockFinished", "BlockStarted"]


async def test_blocks_run_in_the_conversation_s_own_workspace() -> None:
    _, _, sandbox, runner, cid = setup([TWO_BLOCKS, "Done."])

    await runner.run(cid, RecordingProgress())

    assert {workspace for _, _, workspace in sandbox.ran} == {str(cid)}


async def test_after_a_failing_block_the_rest_of_the_turn_is_skipped() -> None:
    app, _, sandbox, runner, cid = setup(
        [TWO_BLOCKS, "It failed."], results=[Result(exit_code=1, stderr="boom")]
    )

    await runner.run(cid, RecordingProgress())

    assert app.kinds(cid)[2:5] == ["BlockStarted", "BlockFinished", "BlockSkipped"]
    assert len(sandbox.ran) == 1


async def test_a_model_failure_stops_the_loop_as_model_unavailable_and_keeps_the_message() -> None:
    app, _, _, runner, cid = setup([unavailable("no provider answered: ollama 503")])
    progress = RecordingProgress()

    outcome = await runner.run(cid, progress)

    assert outcome.stopped_reason == "model_unavailable"
    assert "ollama 503" in outcome.detail
    assert app.kinds(cid) == ["MessageReceived", "ModelFailed", "Stopped"]
    assert app.timeline(cid)[0]["text"] == "hello"
    assert app.timeline(cid)[1]["error"] == "503 Service Unavailable"
    assert progress.calls[-1] == ("stopped", "model_unavailable")


async def test_an_unexpected_model_error_is_recorded_like_a_failure() -> None:
    app, _, _, runner, cid = setup([RuntimeError("provider bug")])

    outcome = await runner.run(cid, RecordingProgress())

    assert outcome.stopped_reason == "model_unavailable"
    assert app.timeline(cid)[1]["error"] == "provider bug"


async def test_a_block_interrupted_by_a_crash_is_recorded_unknown_and_never_rerun() -> None:
    app, model, sandbox, _, cid = setup([])
    app.record_model_reply(cid, reply=reply(TWO_BLOCKS), prompt_fingerprint="x")
    app.start_block(cid, block_id="t1b1", limits={})  # ...and then the process was killed
    model.turns.append("The first block was interrupted, so I do not know.")
    runner = LoopRunner(
        app=app, model=model, sandbox=sandbox, limits=LoopLimits(), build_prompt=simple_prompt
    )

    outcome = await runner.run(cid, RecordingProgress())

    kinds = app.kinds(cid)
    assert kinds[3:6] == ["BlockOutcomeUnknown", "BlockSkipped", "ModelReplied"]
    assert app.timeline(cid)[3]["detail"] == INTERRUPTED_DETAIL
    assert sandbox.ran == []
    assert outcome.answer is not None


async def test_a_model_that_writes_a_block_every_turn_is_ended_by_the_turn_limit() -> None:
    app, _, sandbox, runner, cid = setup(
        ["<helpers>\nprint(1)\n</helpers>"] * 5, turns_per_message=3
    )

    outcome = await runner.run(cid, RecordingProgress())

    assert outcome.stopped_reason == "turn_limit"
    assert app.kinds(cid).count("ModelReplied") == 3
    assert len(sandbox.ran) == 3


async def test_a_sandbox_that_cannot_run_code_refuses_the_block_and_the_model_hears_of_it() -> None:
    app, model, _, runner, cid = setup(
        ["<helpers>\nprint(1)\n</helpers>", "The sandbox is down."],
        results=[SandboxUnavailable("nsjail is not installed; run scripts/test")],
    )

    outcome = await runner.run(cid, RecordingProgress())

    assert "BlockRefused" in app.kinds(cid)
    assert outcome.answer == "The sandbox is down."
    assert any("nsjail is not installed" in m.content for m in model.seen[-1])


async def test_a_block_in_an_unknown_language_is_refused_without_running() -> None:
    app, _, sandbox, runner, cid = setup(
        ['<helpers lang="ruby">\nputs 1\n</helpers>', "No ruby then."]
    )

    await runner.run(cid, RecordingProgress())

    assert sandbox.ran == []
    refused = [e for e in app.timeline(cid) if e["type"] == "BlockRefused"]
    assert refused and "ruby" in refused[0]["reason"]


async def test_stop_while_a_block_runs_records_it_unknown_and_stops_as_cancelled() -> None:
    app, _, sandbox, runner, cid = setup(["<helpers>\nimport time; time.sleep(60)\n</helpers>"])
    sandbox.hold = asyncio.Event()  # never set: the block runs until cancelled
    progress = RecordingProgress()
    task = asyncio.create_task(runner.run(cid, progress))
    while not sandbox.ran:
        await asyncio.sleep(0)

    assert await runner.cancel(cid) is True
    outcome = await task

    assert outcome.stopped_reason == "cancelled"
    assert app.kinds(cid)[-2:] == ["BlockOutcomeUnknown", "Stopped"]
    assert app.timeline(cid)[-2]["detail"] == CANCELLED_BLOCK_DETAIL
    assert progress.calls[-1] == ("stopped", "cancelled")


async def test_stop_while_waiting_for_the_model_records_no_reply() -> None:
    app, model, _, runner, cid = setup(["never seen"])
    model.hold = asyncio.Event()
    task = asyncio.create_task(runner.run(cid, RecordingProgress()))
    while not model.seen:
        await asyncio.sleep(0)

    await runner.cancel(cid)
    outcome = await task

    assert outcome.stopped_reason == "cancelled"
    assert app.kinds(cid) == ["MessageReceived", "Stopped"]


async def test_stop_when_no_loop_runs_here_does_nothing() -> None:
    _, _, _, runner, cid = setup([])

    assert await runner.cancel(cid) is False


async def test_one_conversation_never_runs_two_loops_at_once() -> None:
    app, model, _, runner, cid = setup(["first answer"])
    model.hold = asyncio.Event()
    first = asyncio.create_task(runner.run(cid, RecordingProgress()))
    second = asyncio.create_task(runner.run(cid, RecordingProgress()))
    while not model.seen:
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    model.hold.set()

    outcomes = await asyncio.gather(first, second)

    assert model.max_active == 1
    assert [o.answer for o in outcomes] == ["first answer", None]  # the second found nothing to do
    assert app.kinds(cid).count("ModelReplied") == 1


async def test_different_conversations_run_at_the_same_time() -> None:
    app, model, _, runner, cid = setup(["a", "b"])
    other, _ = app.receive_message(
        coordinates=Coordinates("terminal", "h", "me", "other"),
        message_key="m2",
        author="me",
        text="hi",
    )
    model.hold = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(c, RecordingProgress())) for c in (cid, other)]
    while model.active < 2:
        await asyncio.sleep(0)
    model.hold.set()

    outcomes = await asyncio.gather(*tasks)

    assert sorted(o.answer or "" for o in outcomes) == ["a", "b"]


def test_the_fake_application_derives_ids_as_uuids() -> None:
    _, _, _, _, cid = setup([])
    assert isinstance(cid, UUID)


@pytest.mark.parametrize("status", ["answered", "stopped"])
async def test_a_finished_conversation_is_idle(status: str) -> None:
    app, model, _, runner, cid = setup([])
    if status == "answered":
        app.answer(cid, text="x")
    else:
        app.stop(cid, reason="cancelled")

    outcome = await runner.run(cid, RecordingProgress())

    assert outcome.answer is None and outcome.stopped_reason is None
    assert model.seen == []


class Clock:
    """A clock that only moves when the runner sleeps."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.at = datetime(2026, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []
        self.on_sleep = None

    def now(self):  # type: ignore[no-untyped-def]
        return self.at

    async def sleep(self, seconds: float) -> None:
        from datetime import timedelta

        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep()


def started_moments_ago(clock: Clock):  # type: ignore[no-untyped-def]
    app, model, sandbox, _, cid = setup(["Done."])
    app.record_model_reply(
        cid, reply=reply("<helpers>\nslow()\n</helpers>"), prompt_fingerprint="x"
    )
    app.start_block(cid, block_id="t1b1", limits={"wall_seconds": 10.0})
    app.events[cid][-1][1]["timestamp"] = clock.at.isoformat()  # as the real timeline has it
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=sandbox,
        limits=LoopLimits(),
        build_prompt=simple_prompt,
        now=clock.now,
        sleep=clock.sleep,
    )
    return app, sandbox, runner, cid


async def test_a_block_started_moments_ago_is_declared_lost_only_after_its_wall_limit() -> None:
    clock = Clock()
    app, sandbox, runner, cid = started_moments_ago(clock)

    await runner.run(cid, RecordingProgress())

    assert 15.0 <= sum(clock.slept) <= 16.0  # wall limit 10 s + 5 s grace, checked each second
    assert app.kinds(cid)[3] == "BlockOutcomeUnknown"
    assert sandbox.ran == []


async def test_a_block_another_process_finishes_meanwhile_is_not_declared_lost() -> None:
    clock = Clock()
    app, _, runner, cid = started_moments_ago(clock)
    clock.on_sleep = lambda: app.finish_block(cid, block_id="t1b1", result=Result(stdout="ok\n"))

    outcome = await runner.run(cid, RecordingProgress())

    assert "BlockOutcomeUnknown" not in app.kinds(cid)
    assert outcome.answer == "Done."


async def test_a_conversation_moved_on_by_another_process_ends_this_loop_quietly() -> None:
    from domain.errors import ConversationRenewed

    app, _, _, runner, cid = setup(["<helpers>\nprint(1)\n</helpers>"])

    def renewed(*_: object, **__: object) -> None:
        raise ConversationRenewed("conversation x was replaced by y (new)")

    app.start_block = renewed  # type: ignore[method-assign]
    progress = RecordingProgress()

    outcome = await runner.run(cid, progress)

    assert outcome.stopped_reason == "superseded" and "replaced" in outcome.detail
    assert progress.calls[-1] == ("stopped", "superseded")


class BrokenProgress(RecordingProgress):
    """A surface whose every post fails (a chat API that is down)."""

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        raise ConnectionError("chat API down")

    async def answered(self, text: str) -> None:
        raise ConnectionError("chat API down")


async def test_a_surface_that_fails_to_show_a_step_does_not_stop_the_loop() -> None:
    app, _, sandbox, runner, cid = setup([TWO_BLOCKS, "Done anyway."])

    outcome = await runner.run(cid, BrokenProgress())

    assert outcome.answer == "Done anyway."
    assert len(sandbox.ran) == 2 and app.kinds(cid)[-1] == "Answered"


async def test_a_finished_loop_leaves_no_lock_behind() -> None:
    _, _, _, runner, cid = setup(["done"])

    await runner.run(cid, RecordingProgress())

    assert runner._locks == {} and runner._users == {}
