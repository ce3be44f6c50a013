"""The chat service the surfaces call, on the fake application and the real runner."""

from __future__ import annotations

import asyncio

from bot.config import AccessPolicy
from bot.loop.runner import LoopRunner
from bot.loop.service import STOPPED_ELSEWHERE, OpsloopService
from bot.surface import Coordinates, Incoming
from domain.limits import LoopLimits
from tests.port_fakes import (
    FakeApp,
    FakeSandbox,
    RecordingProgress,
    ScriptedModel,
    simple_prompt,
    unavailable,
)

HERE = Coordinates(platform="slack", workspace="T1", channel="C1", thread="1.0")


def service_with(
    turns: list, *, access: dict[str, AccessPolicy] | None = None
) -> tuple[OpsloopService, FakeApp, ScriptedModel]:
    app = FakeApp()
    model = ScriptedModel(turns=turns)
    runner = LoopRunner(
        app=app, model=model, sandbox=FakeSandbox(), limits=LoopLimits(), build_prompt=simple_prompt
    )
    service = OpsloopService(app=app, runner=runner, model_name=model.name, access=access)
    return service, app, model


def incoming(key: str, text: str = "why is disk full?", where: Coordinates = HERE) -> Incoming:
    return Incoming(coordinates=where, message_key=key, author="U1", text=text)


async def test_receive_records_the_message_without_running_the_loop() -> None:
    service, app, model = service_with(["answer"])

    receipt = await service.receive(incoming("e1"))

    assert receipt.status == "recorded"
    assert app.kinds(next(iter(app.events))) == ["MessageReceived"]
    assert model.seen == []


async def test_a_redelivered_message_is_recognised_as_a_duplicate() -> None:
    service, _, _ = service_with([])
    first = await service.receive(incoming("e1"))

    again = await service.receive(incoming("e1"))

    assert again.status == "duplicate" and again.conversation_id == first.conversation_id


ONLY_U0 = {"slack": AccessPolicy(allow_users=["U0"])}


async def test_a_message_from_someone_not_allowed_is_recorded_as_refused_with_a_reply() -> None:
    service, app, model = service_with([], access=ONLY_U0)

    receipt = await service.receive(incoming("e2"))

    assert receipt.status == "refused"
    assert (
        receipt.reply == "Sorry, I can't take this request: user U1 is not in [slack] allow_users."
    )
    assert model.seen == []
    assert app.kinds(next(iter(app.events))) == ["MessageRefused"]


async def test_a_redelivered_refused_message_is_a_duplicate_with_nothing_to_show() -> None:
    service, app, _ = service_with([], access=ONLY_U0)
    await service.receive(incoming("e2"))

    again = await service.receive(incoming("e2"))

    assert again.status == "duplicate" and again.reply == ""
    assert app.kinds(next(iter(app.events))) == ["MessageRefused"]


async def test_run_takes_an_id_as_text_and_returns_the_outcome() -> None:
    service, _, _ = service_with(["It is the logs."])
    receipt = await service.receive(incoming("e1"))

    outcome = await service.run(receipt.conversation_id, RecordingProgress())

    assert outcome.answer == "It is the logs."
    assert outcome.conversation_id == receipt.conversation_id


async def test_stop_cancels_a_loop_running_in_this_process() -> None:
    service, app, model = service_with(["never"])
    model.hold = asyncio.Event()
    receipt = await service.receive(incoming("e1"))
    task = asyncio.create_task(service.run(receipt.conversation_id, RecordingProgress()))
    while not model.seen:
        await asyncio.sleep(0)

    assert await service.stop(receipt.conversation_id) is True
    outcome = await task

    assert outcome.stopped_reason == "cancelled"
    assert app.timeline(next(iter(app.events)))[-1]["reason"] == "cancelled"


async def test_stop_of_an_open_conversation_with_no_loop_here_records_it_cancelled() -> None:
    service, app, _ = service_with([])
    receipt = await service.receive(incoming("e1"))  # e.g. left open by a killed process

    assert await service.stop(receipt.conversation_id) is True

    last = app.timeline(next(iter(app.events)))[-1]
    assert (last["type"], last["reason"], last["detail"]) == (
        "Stopped",
        "cancelled",
        STOPPED_ELSEWHERE,
    )
    assert await service.interrupted() == []  # so it is not resumed against the user's wish


async def test_stop_when_nothing_is_open_returns_false_and_records_nothing() -> None:
    service, app, _ = service_with(["done"])
    receipt = await service.receive(incoming("e1"))
    await service.run(receipt.conversation_id, RecordingProgress())
    before = len(app.timeline(next(iter(app.events))))

    assert await service.stop(receipt.conversation_id) is False
    assert len(app.timeline(next(iter(app.events)))) == before


async def test_interrupted_lists_open_conversations_of_one_platform() -> None:
    service, _, _ = service_with([])
    slack = await service.receive(incoming("e1"))
    await service.receive(incoming("e2", where=Coordinates("discord", "", "D1", "D1")))

    found = await service.interrupted(platform="slack")

    assert found == [(slack.conversation_id, HERE)]
    assert len(await service.interrupted()) == 2


async def test_a_conversation_whose_loop_runs_here_is_not_reported_interrupted() -> None:
    service, _, model = service_with(["x"])
    model.hold = asyncio.Event()
    receipt = await service.receive(incoming("e1"))
    task = asyncio.create_task(service.run(receipt.conversation_id, RecordingProgress()))
    while not model.seen:
        await asyncio.sleep(0)

    assert await service.interrupted() == []
    model.hold.set()
    await task


async def test_resume_after_a_model_failure_records_a_retry_of_the_last_message() -> None:
    service, app, _ = service_with([unavailable(), "Back up."])
    receipt = await service.receive(incoming("e1", text="status?"))
    stopped = await service.run(receipt.conversation_id, RecordingProgress())
    assert stopped.stopped_reason == "model_unavailable"

    assert await service.reopen_if_model_failed(receipt.conversation_id) is True
    outcome = await service.run(receipt.conversation_id, RecordingProgress())

    assert outcome.answer == "Back up."
    retry = [e for e in app.timeline(next(iter(app.events))) if e["type"] == "MessageReceived"][-1]
    assert retry["message_key"].startswith("resume:") and retry["text"] == "status?"


async def test_resume_does_not_reopen_a_conversation_stopped_for_another_reason() -> None:
    service, app, _ = service_with([])
    receipt = await service.receive(incoming("e1"))
    cid = next(iter(app.events))
    app.stop(cid, reason="cancelled")

    assert await service.reopen_if_model_failed(receipt.conversation_id) is False


async def test_new_conversation_gives_a_fresh_id_for_the_same_coordinates() -> None:
    service, _, _ = service_with([])
    first = await service.receive(incoming("e1"))

    fresh = await service.new_conversation(HERE)

    assert fresh != first.conversation_id
    assert await service.current_conversation(HERE) == fresh
