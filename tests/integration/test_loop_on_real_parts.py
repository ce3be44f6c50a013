# ruff: noqa: F811  (pytest fixtures imported from sandbox_fixtures are parameters here)
"""The whole loop on real parts: a SQLite event store, the nsjail sandbox, the scripted model.

Only the model is scripted (its replies are fixed); every block really runs in nsjail and every
step is really recorded, so these tests see exactly what a user and an auditor would.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app.application import open_app
from bot.cli.bootstrap import build_service
from bot.config import LoopPolicy, Policy
from bot.loop.service import OpsloopService
from bot.providers.scripted import ScriptedTurn
from bot.settings import Settings
from bot.surface import Coordinates, Incoming
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401
from tests.port_fakes import RecordingProgress, WatchedModel

WRITE = (
    '<helpers>\nopen("/workspace/notes.txt", "w").write("disk is 91% full\\n")\n'
    'print("saved")\n</helpers>'
)
READ = '<helpers lang="bash">\ncat /workspace/notes.txt\n</helpers>'
FAIL = "<helpers>\nimport sys\nprint('checking', file=sys.stderr)\nsys.exit(3)\n</helpers>"


def make_service(
    data_dir: Path,
    jail: Any,
    turns: Sequence[str | ScriptedTurn],
    **loop: Any,  # noqa: F811
) -> tuple[OpsloopService, WatchedModel]:
    settings = Settings(data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]
    policy = Policy(loop=LoopPolicy(**loop))
    model = WatchedModel(turns)
    app = open_app(database_url=f"sqlite:///{data_dir / 'events.sqlite3'}")
    return build_service(
        settings=settings, policy=policy, model=model, sandbox=jail, app=app
    ), model


async def say(
    service: OpsloopService, text: str, *, thread: str = "t1"
) -> tuple[Any, list[dict[str, Any]]]:
    coords = Coordinates(platform="terminal", workspace="host", channel="me", thread=thread)
    receipt = await service.receive(
        Incoming(coordinates=coords, message_key=str(uuid.uuid4()), author="me", text=text)
    )
    outcome = await service.run(receipt.conversation_id, RecordingProgress())
    return outcome, await service.timeline(receipt.conversation_id)


def of(timeline: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in timeline if e["type"] == kind]


@pytest.fixture
async def closing() -> Any:
    services: list[OpsloopService] = []
    yield services
    for service in services:
        await service.aclose()


async def test_files_written_in_workspace_are_there_in_later_turns_and_messages(
    data_dir: Path,
    jail: Any,
    closing: list[OpsloopService],  # noqa: F811
) -> None:
    service, _ = make_service(data_dir, jail, [WRITE, READ, "Noted.", READ, "Still there."])
    closing.append(service)

    first, timeline = await say(service, "remember the disk level")
    second, timeline = await say(service, "what did you note?")

    finished = of(timeline, "BlockFinished")
    assert [e["stdout"] for e in finished] == [
        "saved\n",
        "disk is 91% full\n",
        "disk is 91% full\n",
    ]
    assert first.answer == "Noted." and second.answer == "Still there."


async def test_a_reply_with_two_blocks_runs_both_and_sends_both_results_back(
    data_dir: Path,
    jail: Any,
    closing: list[OpsloopService],  # noqa: F811
) -> None:
    service, model = make_service(data_dir, jail, [f"Two steps.\n{WRITE}\n{READ}", "Done."])
    closing.append(service)

    outcome, timeline = await say(service, "write then read")

    assert [e["block_id"] for e in of(timeline, "BlockStarted")] == ["t1b1", "t1b2"]
    assert [e["exit_code"] for e in of(timeline, "BlockFinished")] == [0, 0]
    sent = model.prompts[-1][-1].content
    assert "t1b1" in sent and "saved" in sent and "t1b2" in sent and "91% full" in sent
    assert outcome.answer == "Done."


async def test_a_block_that_always_fails_is_shown_to_the_model_each_time_until_it_answers(
    data_dir: Path,
    jail: Any,
    closing: list[OpsloopService],  # noqa: F811
) -> None:
    service, model = make_service(data_dir, jail, [FAIL, FAIL, "The check fails with status 3."])
    closing.append(service)

    outcome, timeline = await say(service, "run the check")

    assert [e["exit_code"] for e in of(timeline, "BlockFinished")] == [3, 3]
    assert "exit status 3" in model.prompts[1][-1].content
    assert "checking" in model.prompts[2][-1].content
    assert outcome.answer == "The check fails with status 3."


async def test_a_model_that_writes_a_block_every_turn_is_stopped_by_the_turn_limit(
    data_dir: Path,
    jail: Any,
    closing: list[OpsloopService],  # noqa: F811
) -> None:
    service, _ = make_service(
        data_dir, jail, ["<helpers>\nprint('again')\n</helpers>"] * 6, turns_per_message=3
    )
    closing.append(service)

    outcome, timeline = await say(service, "loop forever")

    assert outcome.stopped_reason == "turn_limit" and outcome.answer is None
    assert len(of(timeline, "ModelReplied")) == 3
    assert len(of(timeline, "BlockFinished")) == 3
    assert of(timeline, "Stopped")[0]["reason"] == "turn_limit"


async def test_a_model_that_is_down_stops_the_loop_and_resume_retries_it_later(
    data_dir: Path,
    jail: Any,
    closing: list[OpsloopService],  # noqa: F811
) -> None:
    down = ScriptedTurn(unavailable="503 Service Unavailable")
    service, _ = make_service(data_dir, jail, [down])
    closing.append(service)
    outcome, timeline = await say(service, "is it up?")
    assert outcome.stopped_reason == "model_unavailable"
    assert "503" in of(timeline, "ModelFailed")[0]["error"]
    assert of(timeline, "MessageReceived")[0]["text"] == "is it up?"
    cid = outcome.conversation_id

    later, model = make_service(data_dir, jail, ["It is up now."])  # the model came back
    closing.append(later)
    assert await later.reopen_if_model_failed(cid) is True
    retried = await later.run(cid, RecordingProgress())

    assert retried.answer == "It is up now."
    # the retry did not show the model the question twice
    assert [m.content for m in model.prompts[0] if m.role == "user"] == ["is it up?"]
    assert await later.reopen_if_model_failed(cid) is False  # answered: nothing to retry


async def test_a_block_left_running_by_a_dead_process_is_recorded_unknown_and_not_rerun(
    data_dir: Path,
    jail: Any,
    closing: list[OpsloopService],  # noqa: F811
) -> None:
    marker = '<helpers lang="bash">\necho ran >> /workspace/runs.txt\n</helpers>'
    service, _ = make_service(data_dir, jail, [marker, READ.replace("notes", "runs"), "ok"])
    closing.append(service)
    coords = Coordinates(platform="terminal", workspace="host", channel="me", thread="crash")
    receipt = await service.receive(
        Incoming(coordinates=coords, message_key="k", author="me", text="go")
    )
    cid = uuid.UUID(receipt.conversation_id)
    app = service.app
    # What a process killed mid-block leaves behind: the reply and BlockStarted, nothing else.
    prompt = service.runner.build_prompt(app.timeline(cid))
    reply = await WatchedModel([marker]).reply(prompt.messages)
    app.record_model_reply(cid, reply=reply, prompt_fingerprint=prompt.fingerprint)
    app.start_block(cid, block_id="t1b1", limits={})
    assert [c for c, _ in await service.interrupted()] == [str(cid)]
    # ...a minute ago: long past the block's wall limit, so it cannot still be running anywhere.
    service.runner.now = lambda: datetime.now(UTC) + timedelta(minutes=1)

    outcome = await service.run(str(cid), RecordingProgress())

    timeline = await service.timeline(str(cid))
    unknown = of(timeline, "BlockOutcomeUnknown")
    assert [e["block_id"] for e in unknown] == ["t1b1"]
    assert all(e["block_id"] != "t1b1" for e in of(timeline, "BlockFinished"))
    assert outcome.answer == "ok"
    assert await service.interrupted() == []
