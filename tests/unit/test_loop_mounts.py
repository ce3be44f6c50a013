"""Read-only mounts in the loop: a block gets the ``[sandbox] mounts`` its author may have,
and the model is told where they are; someone else's blocks get neither (real application
and runner; the model, sandbox and progress are the ports' fakes)."""

from __future__ import annotations

from typing import Any

from bot.app.application import ConversationApp
from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.settings import Settings
from bot.surface import Coordinates, Incoming
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel

HERE = Coordinates("slack", "T1", "C1", "1.0")
BLOCK = "Let me look.\n<helpers>\nls /mnt\n</helpers>"
POLICY: dict[str, Any] = {
    "roles": {"oncall": ["slack:U0ONCALL"]},
    "sandbox": {
        "mounts": {
            "runbooks": "/srv/runbooks",
            "logs": {"path": "/var/log/app", "allow_users": ["role:oncall"]},
        }
    },
}


async def ask(app: ConversationApp, author: str, thread: str) -> tuple[FakeSandbox, WatchedModel]:
    model = WatchedModel([BLOCK, "Done."])
    sandbox = FakeSandbox()
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=Policy.model_validate(POLICY),
        model=model,
        sandbox=sandbox,
        app=app,
    )
    where = Coordinates("slack", "T1", "C1", thread)
    receipt = await service.receive(Incoming(where, f"m-{thread}", author, "what is in /mnt?"))
    await service.run(receipt.conversation_id, RecordingProgress())
    return sandbox, model


async def test_a_block_gets_the_mounts_its_author_may_have_and_the_model_is_told(
    memory_app: ConversationApp,
) -> None:
    sandbox, model = await ask(memory_app, "U0ONCALL", "1.0")

    assert sandbox.mounts == [("runbooks", "logs")]
    system = model.prompts[0][0].content
    assert "Read-only data the operator offers you: /mnt/runbooks, /mnt/logs." in system


async def test_someone_else_s_block_gets_only_the_mounts_open_to_everyone(
    memory_app: ConversationApp,
) -> None:
    sandbox, model = await ask(memory_app, "U0GUEST", "2.0")

    assert sandbox.mounts == [("runbooks",)]
    system = model.prompts[0][0].content
    assert "/mnt/runbooks." in system and "/mnt/logs" not in system
