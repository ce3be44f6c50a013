"""The loop's progress as the Discord surface shows it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from adapters.discord.progress import DiscordProgress, TypingKeeper
from bot.surface import Coordinates, Incoming, Outcome
from sandbox.result import RunResult
from tests.discord_fakes import RecordingPoster, scripted_service

DM = Coordinates("discord", "", "500", "500")


async def within_turns(condition: Callable[[], bool], *, turns: int = 50) -> bool:
    """Whether ``condition`` holds within a few turns of the event loop (not a timing)."""
    for _ in range(turns):
        if condition():
            return True
        await asyncio.sleep(0)
    return condition()


async def within_seconds(condition: Callable[[], bool], *, seconds: float = 5.0) -> bool:
    """Whether ``condition`` holds within ``seconds``, checked every millisecond."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.001)
    return True


async def test_prose_then_the_block_with_its_result_then_the_answer_are_posted_in_order() -> None:
    poster = RecordingPoster()
    service = scripted_service(answer="It is the logs.")
    receipt = await service.receive(Incoming(DM, "m1", "42", "why is the disk full?"))
    outcome = await service.run(receipt.conversation_id, DiscordProgress(poster))
    texts = [m.text for m in poster.posted]
    assert texts[0] == "Let me check."
    assert texts[1].startswith("**Block 1/1** · `python` · exit 0")
    assert "usage(total=10)" in texts[1]
    assert texts[2] == "It is the logs."
    assert outcome.answer == "It is the logs."


async def test_settle_posts_an_outcome_the_loop_did_not_report_and_never_twice() -> None:
    poster = RecordingPoster()
    progress = DiscordProgress(poster)
    await progress.settle(Outcome("c1", answer=None, stopped_reason="budget"))
    await progress.settle(Outcome("c1", answer=None, stopped_reason="budget"))
    assert [m.text for m in poster.posted] == [
        "Stopped: this conversation has used its token or cost budget."
    ]


async def test_settle_after_an_answer_shown_by_the_loop_adds_nothing() -> None:
    poster = RecordingPoster()
    progress = DiscordProgress(poster)
    await progress.answered("42")
    await progress.settle(Outcome("c1", answer="42", stopped_reason=None))
    assert [m.text for m in poster.posted] == ["42"]


async def test_an_idle_outcome_posts_nothing() -> None:
    poster = RecordingPoster()
    await DiscordProgress(poster).settle(Outcome("c1", answer=None, stopped_reason=None))
    assert poster.posted == []


async def test_typing_is_refreshed_while_a_long_loop_runs_and_stops_before_the_answer() -> None:
    poster = RecordingPoster()
    async with TypingKeeper(poster, interval=0.01) as typing:
        # refreshed again and again, however long the loop takes
        assert await within_seconds(lambda: poster.typings >= 3)
        progress = DiscordProgress(poster, typing=typing)
        await progress.answered("done")
        after_answer = poster.typings
        await asyncio.sleep(0.05)
        assert poster.typings == after_answer  # "typing…" does not outlive the answer


async def test_a_posted_block_kicks_the_typing_indicator_at_once() -> None:
    poster = RecordingPoster()
    async with TypingKeeper(poster, interval=3600) as typing:
        assert await within_turns(lambda: poster.typings == 1)
        progress = DiscordProgress(poster, typing=typing)
        result = RunResult(exit_code=0, signal=None, stdout="", stderr="", duration_ms=1)
        await progress.block_finished(index=1, total=1, language="bash", code="true", result=result)

        # the next refresh is an hour away, so only the block's kick can bring it this soon
        assert await within_turns(lambda: poster.typings == 2)
    assert poster.posted[0].text.startswith("**Block 1/1**")


async def test_stop_right_after_a_kick_stops_the_keeper() -> None:
    # On Python 3.11 asyncio.wait_for could swallow this cancel and hang stop() forever.
    poster = RecordingPoster()
    keeper = TypingKeeper(poster, interval=3600)
    await keeper.__aenter__()
    assert await within_turns(lambda: poster.typings >= 1)
    keeper.kick()
    stopping = asyncio.create_task(keeper.stop())
    for _ in range(50):  # a few turns of the event loop, not a timing
        await asyncio.sleep(0)
    assert stopping.done()
    typed = poster.typings
    for _ in range(20):
        await asyncio.sleep(0)
    assert poster.typings == typed


async def test_a_failing_typing_request_does_not_stop_the_keeper() -> None:
    class Flaky(RecordingPoster):
        async def typing(self) -> None:
            self.typings += 1
            raise RuntimeError("429")

    poster = Flaky()
    async with TypingKeeper(poster, interval=0.001):
        # each request raised, and the keeper went on to the next one
        assert await within_seconds(lambda: poster.typings >= 3)


async def test_a_budget_stop_from_the_loop_is_posted_as_its_sentence() -> None:
    poster = RecordingPoster()
    sentence = (
        "You (42) have used 120,500 of your 100,000 daily tokens today; "
        "it resets at 00:00 UTC, in 2 h."
    )
    await DiscordProgress(poster).settle(
        Outcome("c1", answer=None, stopped_reason="budget", detail=sentence)
    )
    assert [m.text for m in poster.posted] == [sentence]
