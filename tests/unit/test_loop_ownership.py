"""One loop per conversation across processes: the runner's lease, on the real application
(``memory:``), faking only the ports. Another process is played by claiming the lease (or
recording a stop) through the same store, as a replica would; tests with real processes are
in tests/integration/test_replicas_*.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

from bot.app.application import ConversationApp
from bot.loop.ownership import LeasePolicy
from bot.ports import ModelReply
from domain.coherence import incoherence
from tests.port_fakes import RecordingProgress
from tests.unit.test_loop_runner import a_loop

FAST = LeasePolicy(holder="replica-here", seconds=30.0, tick=0.02)


def story(app: ConversationApp, cid: UUID) -> list[tuple[str, dict[str, object]]]:
    return [(e["type"], e) for e in app.timeline(cid)]


async def test_a_run_records_which_replica_ran_it_and_lets_the_lease_go(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["Hi."], lease=FAST)
    await loop.runner.run(loop.cid, RecordingProgress())
    [claimed] = loop.events("LoopClaimed")
    assert (claimed["by"], claimed["token"], claimed["taken_over_from"]) == ("replica-here", 1, "")
    assert [e["type"] for e in memory_app.timeline(loop.cid)][2:] == [
        "LoopClaimed",
        "ModelReplied",
        "Answered",
    ]
    assert memory_app.held_loops() == {}


async def test_nothing_to_do_claims_nothing(memory_app: ConversationApp) -> None:
    loop = a_loop(memory_app, ["Hi."], lease=FAST)
    await loop.runner.run(loop.cid, RecordingProgress())
    await loop.runner.run(loop.cid, RecordingProgress())  # answered already: idle
    assert len(loop.events("LoopClaimed")) == 1


async def test_a_message_answered_elsewhere_between_the_look_and_the_claim_claims_nothing(
    memory_app: ConversationApp,
) -> None:
    """The race CI caught: this runner saw work, then another process answered it and let
    the lease go before this one claimed; a claim then would end the log on a bare
    ``LoopClaimed``."""
    loop = a_loop(memory_app, ["never asked"], lease=FAST)
    claim_here = memory_app.claim_loop

    def answered_there_first(cid: UUID, **kwargs: object) -> object:
        there = claim_here(cid, holder="replica-there", seconds=30)
        assert there is not None
        memory_app.record_model_reply(
            cid,
            reply=ModelReply("Answered there.", "test", "m", 1, 1, False, 0.0, True, 1, 1),
            prompt_fingerprint="f",
        )
        memory_app.answer(cid, text="Answered there.")
        memory_app.release_loop(cid, holder="replica-there", token=there.token)
        return claim_here(cid, **kwargs)  # type: ignore[arg-type]

    memory_app.claim_loop = answered_there_first  # type: ignore[method-assign]
    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert not outcome.elsewhere and outcome.answer is None  # the asker reads the log
    assert loop.model.prompts == []
    assert loop.kinds()[-1] == "Answered"
    assert [e["by"] for e in loop.events("LoopClaimed")] == ["replica-there"]
    assert memory_app.held_loops() == {}


async def test_a_loop_held_by_another_process_is_left_to_it_and_taken_when_let_go(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["Hi."], lease=FAST)
    other = memory_app.claim_loop(loop.cid, holder="replica-there", seconds=30)
    assert other is not None

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert outcome.elsewhere and outcome.answer is None
    assert loop.model.prompts == []  # nothing ran here: the message waits for its holder
    assert memory_app.held_loops() == {loop.cid: "replica-there"}
    memory_app.release_loop(loop.cid, holder="replica-there", token=other.token)
    done = await loop.runner.run(loop.cid, RecordingProgress())
    assert done.answer == "Hi."
    holders = [(e["by"], e["token"]) for e in loop.events("LoopClaimed")]
    assert holders == [("replica-there", 1), ("replica-here", 2)]


async def test_a_dead_holder_s_loop_is_taken_over_after_expiry_and_its_block_never_rerun(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["<helpers>print(1)</helpers>", "It was lost; done."], lease=FAST)
    dead = memory_app.claim_loop(loop.cid, holder="replica-dead", seconds=0.05)
    assert dead is not None
    memory_app.record_model_reply(  # what the replica recorded before it died
        loop.cid,
        reply=ModelReply("<helpers>print(1)</helpers>", "test", "m", 1, 1, False, 0.0, True, 1, 1),
        prompt_fingerprint="f",
    )
    memory_app.start_block(loop.cid, block_id="t1b1", limits={"wall_seconds": 1})
    await asyncio.sleep(0.1)  # the dead replica's lease runs out
    loop.runner.now = lambda: datetime.now(UTC) + timedelta(seconds=60)  # past wall + grace

    outcome = await loop.runner.run(loop.cid, RecordingProgress())

    assert outcome.answer == "It was lost; done."
    [_, takeover] = loop.events("LoopClaimed")
    assert (takeover["by"], takeover["taken_over_from"]) == ("replica-here", "replica-dead")
    assert [e["block_id"] for e in loop.events("BlockOutcomeUnknown")] == ["t1b1"]
    assert loop.sandbox.ran == []  # the dead replica's block was not run again
    assert incoherence(story(memory_app, loop.cid)) is None


async def test_a_stop_recorded_by_another_process_stops_the_running_loop(
    memory_app: ConversationApp,
) -> None:
    loop = a_loop(memory_app, ["never answered"], lease=FAST)
    loop.model.hold = asyncio.Event()
    running = asyncio.ensure_future(loop.runner.run(loop.cid, RecordingProgress()))
    while not loop.model.prompts:
        await asyncio.sleep(0.01)

    assert memory_app.request_stop(loop.cid, message_key="stop-1", by="bob")  # elsewhere
    outcome = await running

    assert outcome.stopped_reason == "cancelled"
    assert loop.kinds()[-2:] == ["StopRequested", "Stopped"]
    assert loop.events("Stopped")[0]["detail"] == "stopped by bob"
    assert memory_app.held_loops() == {}


async def test_a_stop_arriving_while_a_block_runs_gives_it_an_outcome_and_skips_the_rest(
    memory_app: ConversationApp,
) -> None:
    two = "<helpers>print(1)</helpers><helpers>print(2)</helpers>"
    loop = a_loop(memory_app, [two, "unused"], lease=FAST)
    loop.sandbox.hold = asyncio.Event()
    running = asyncio.ensure_future(loop.runner.run(loop.cid, RecordingProgress()))
    while not loop.sandbox.ran:
        await asyncio.sleep(0.01)

    memory_app.request_stop(loop.cid, message_key="stop-1", by="bob")
    outcome = await running

    assert outcome.stopped_reason == "cancelled"
    assert loop.kinds()[-4:] == ["StopRequested", "BlockOutcomeUnknown", "BlockSkipped", "Stopped"]
    assert incoherence(story(memory_app, loop.cid)) is None
