"""Warm kernels in the loop: the interpreter a block ran in is recorded in its
``BlockFinished`` (``kernel``), the replay shows it, and the model is told when its
interpreter restarted, in the sandbox's words (real application and runner; the model,
sandbox and progress are the ports' fakes)."""

from __future__ import annotations

from uuid import UUID

from bot.app.application import ConversationApp
from bot.audit.replay import render
from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.settings import Settings
from bot.surface import Coordinates, Incoming
from sandbox.result import RESTARTED
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel, run_result

REPLY = "<helpers>\nx = 41\n</helpers>\n<helpers>\nprint(x + 1)\n</helpers>"


async def test_the_kernel_of_each_block_is_recorded_replayed_and_a_restart_told(
    memory_app: ConversationApp,
) -> None:
    model = WatchedModel([REPLY, "Done."])
    sandbox = FakeSandbox(
        [
            run_result(kernel="warm"),
            run_result(exit_code=1, stderr=f"{RESTARTED}\nNameError: x\n", kernel="restarted"),
        ]
    )
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=Policy(),
        model=model,
        sandbox=sandbox,
        app=memory_app,
    )
    where = Coordinates("terminal", "local", "local", "1")
    receipt = await service.receive(Incoming(where, "m1", "ann", "what is x + 1?"))
    await service.run(receipt.conversation_id, RecordingProgress())

    timeline = memory_app.timeline(UUID(str(receipt.conversation_id)))
    finished = [e for e in timeline if e["type"] == "BlockFinished"]
    assert [e["kernel"] for e in finished] == ["warm", "restarted"]
    text = "\n".join(render(timeline, fmt="text"))
    assert "exit 0 in 1 ms, warm interpreter" in text
    assert "exit 1 in 1 ms, interpreter restarted" in text
    told = model.prompts[1][-1].content
    assert told.count(RESTARTED) == 1 and "NameError: x" in told
    assert "variables, imports and loaded data survive" in model.prompts[0][0].content


async def test_with_warm_kernels_off_the_model_is_told_nothing_survives_but_files(
    memory_app: ConversationApp,
) -> None:
    model = WatchedModel(["Done."])
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=Policy.model_validate({"sandbox": {"warm_kernels": False}}),
        model=model,
        sandbox=FakeSandbox(),
        app=memory_app,
    )
    where = Coordinates("terminal", "local", "local", "2")
    receipt = await service.receive(Incoming(where, "m2", "ann", "hi"))
    await service.run(receipt.conversation_id, RecordingProgress())
    system = model.prompts[0][0].content
    assert "each block starts a fresh process" in system and "survive" not in system
