"""The chat service the surfaces call, on the real application (``memory:``) and the real
runner, faking only the ports: the scripted model, the sandbox and the progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from uuid import UUID

from bot.app.application import ConversationApp
from bot.config import AccessPolicy, Policy
from bot.loop.runner import LoopRunner
from bot.loop.service import OpsloopService
from bot.prompt.builder import prompt_builder
from bot.providers.scripted import ScriptedTurn
from bot.surface import Coordinates, Incoming
from domain.limits import LoopLimits
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel

HERE = Coordinates(platform="slack", workspace="T1", channel="C1", thread="1.0")
DOWN = ScriptedTurn(unavailable="503 Service Unavailable")


def service_with(
    app: ConversationApp,
    turns: list[str | ScriptedTurn],
    *,
    access: dict[str, AccessPolicy] | None = None,
) -> tuple[OpsloopService, WatchedModel]:
    model = WatchedModel(turns)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=FakeSandbox(),
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name),
    )
    service = OpsloopService(app=app, runner=runner, model_name=model.name, access=access)
    return service, model


def incoming(key: str, text: str = "why is disk full?", where: Coordinates = HERE) -> Incoming:
    return Incoming(coordinates=where, message_key=key, author="U1", text=text)


def timeline(app: ConversationApp, conversation_id: str) -> list[dict[str, Any]]:
    return app.timeline(UUID(conversation_id))


def kinds(app: ConversationApp, conversation_id: str) -> list[str]:
    return [e["type"] for e in timeline(app, conversation_id)]


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop turn until ``condition`` holds (bounded by the test timeout)."""
    while not condition():
        await asyncio.sleep(0)


async def test_receive_records_the_message_without_running_the_loop(
    memory_app: ConversationApp,
) -> None:
    service, model = service_with(memory_app, ["answer"])

    receipt = await service.receive(incoming("e1"))

    assert receipt.status == "recorded"
    assert kinds(memory_app, receipt.conversation_id) == ["Started", "MessageReceived"]
    assert model.prompts == []


async def test_a_redelivered_message_is_recognised_as_a_duplicate(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [])
    first = await service.receive(incoming("e1"))

    again = await service.receive(incoming("e1"))

    assert again.status == "duplicate" and again.conversation_id == first.conversation_id
    assert kinds(memory_app, first.conversation_id).count("MessageReceived") == 1


ONLY_U0 = {"slack": AccessPolicy(allow_users=["U0"])}


async def test_a_message_from_someone_not_allowed_is_recorded_as_refused_with_a_reply(
    memory_app: ConversationApp,
) -> None:
    service, model = service_with(memory_app, [], access=ONLY_U0)

    receipt = await service.receive(incoming("e2"))

    assert receipt.status == "refused"
    assert (
        receipt.reply == "Sorry, I can't take this request: user U1 is not in [slack] allow_users."
    )
    assert model.prompts == []
    assert kinds(memory_app, receipt.conversation_id) == ["Started", "MessageRefused"]


async def test_a_redelivered_refused_message_is_a_duplicate_with_nothing_to_show(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [], access=ONLY_U0)
    first = await service.receive(incoming("e2"))

    again = await service.receive(incoming("e2"))

    assert again.status == "duplicate" and again.reply == ""
    assert kinds(memory_app, first.conversation_id) == ["Started", "MessageRefused"]


async def test_run_takes_an_id_as_text_and_returns_the_outcome(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, ["It is the logs."])
    receipt = await service.receive(incoming("e1"))

    outcome = await service.run(receipt.conversation_id, RecordingProgress())

    assert outcome.answer == "It is the logs."
    assert outcome.conversation_id == receipt.conversation_id


async def test_stop_cancels_a_loop_running_in_this_process(memory_app: ConversationApp) -> None:
    service, model = service_with(memory_app, ["never"])
    model.hold = asyncio.Event()
    receipt = await service.receive(incoming("e1"))
    task = asyncio.create_task(service.run(receipt.conversation_id, RecordingProgress()))
    await until(lambda: bool(model.prompts))

    assert await service.stop(receipt.conversation_id, by="alice") == "stopping"
    outcome = await task

    assert outcome.stopped_reason == "cancelled"
    events = timeline(memory_app, receipt.conversation_id)
    assert [e["type"] for e in events][-2:] == ["StopRequested", "Stopped"]
    assert (events[-1]["reason"], events[-1]["detail"]) == ("cancelled", "stopped by alice")


async def test_stop_of_an_open_conversation_with_no_loop_here_records_it_cancelled(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [])
    receipt = await service.receive(incoming("e1"))  # e.g. left open by a killed process

    assert await service.stop(receipt.conversation_id, by="alice") == "stopping"

    last = timeline(memory_app, receipt.conversation_id)[-1]
    assert (last["type"], last["reason"], last["detail"]) == (
        "Stopped",
        "cancelled",
        "stopped by alice",
    )
    assert await service.interrupted() == []  # so it is not resumed against the user's wish


async def test_stop_when_nothing_is_open_returns_false_and_records_nothing(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, ["done"])
    receipt = await service.receive(incoming("e1"))
    await service.run(receipt.conversation_id, RecordingProgress())
    before = len(timeline(memory_app, receipt.conversation_id))

    assert await service.stop(receipt.conversation_id) == "idle"
    assert len(timeline(memory_app, receipt.conversation_id)) == before


async def test_interrupted_lists_open_conversations_of_one_platform(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [])
    slack = await service.receive(incoming("e1"))
    await service.receive(incoming("e2", where=Coordinates("discord", "", "D1", "D1")))

    found = await service.interrupted(platform="slack")

    assert found == [(slack.conversation_id, HERE)]
    assert len(await service.interrupted()) == 2


async def test_a_conversation_whose_loop_runs_here_is_not_reported_interrupted(
    memory_app: ConversationApp,
) -> None:
    service, model = service_with(memory_app, ["x"])
    model.hold = asyncio.Event()
    receipt = await service.receive(incoming("e1"))
    task = asyncio.create_task(service.run(receipt.conversation_id, RecordingProgress()))
    await until(lambda: bool(model.prompts))

    assert await service.interrupted() == []
    model.hold.set()
    assert (await task).answer == "x"


async def test_resume_after_a_model_failure_records_a_retry_of_the_last_message(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [DOWN])
    receipt = await service.receive(incoming("e1", text="status?"))
    stopped = await service.run(receipt.conversation_id, RecordingProgress())
    assert stopped.stopped_reason == "model_unavailable"
    service.runner.model = back = WatchedModel(["Back up."])  # the model came back

    assert await service.reopen_if_model_failed(receipt.conversation_id) is True
    outcome = await service.run(receipt.conversation_id, RecordingProgress())

    assert outcome.answer == "Back up."
    received = [
        e for e in timeline(memory_app, receipt.conversation_id) if e["type"] == "MessageReceived"
    ]
    assert received[-1]["message_key"].startswith("resume:") and received[-1]["text"] == "status?"
    # the retry does not show the model the question twice
    assert [m.content for m in back.prompts[0] if m.role == "user"] == ["status?"]


async def test_resume_does_not_reopen_a_conversation_stopped_for_another_reason(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [])
    receipt = await service.receive(incoming("e1"))
    memory_app.stop(UUID(receipt.conversation_id), reason="cancelled")

    assert await service.reopen_if_model_failed(receipt.conversation_id) is False
    assert kinds(memory_app, receipt.conversation_id)[-1] == "Stopped"


async def test_new_conversation_gives_a_fresh_id_for_the_same_coordinates(
    memory_app: ConversationApp,
) -> None:
    service, _ = service_with(memory_app, [])
    first = await service.receive(incoming("e1"))

    fresh = await service.new_conversation(HERE)

    assert fresh != first.conversation_id
    assert await service.current_conversation(HERE) == fresh
