"""Files in and out of a conversation through the chat service, on the real application
(``memory:``) and the real runner, faking only the ports (model, sandbox)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bot.app.application import ConversationApp
from bot.config import Policy
from bot.errors import FileNotFetched
from bot.loop.files import FileCaps
from bot.loop.runner import LoopRunner
from bot.loop.service import OpsloopService
from bot.prompt.builder import prompt_builder
from bot.surface import Attachment, Coordinates, Incoming
from domain.limits import LoopLimits
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel

HERE = Coordinates(platform="slack", workspace="T1", channel="C1", thread="1.0")
CAPS = FileCaps(max_files=2, max_bytes=100)


def service_with(
    app: ConversationApp, turns: list[str], sandbox: FakeSandbox
) -> tuple[OpsloopService, WatchedModel]:
    model = WatchedModel(turns)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=sandbox,
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name),
        file_caps=CAPS,
    )
    return OpsloopService(app=app, runner=runner, model_name=model.name), model


def attachment(name: str, data: bytes, *, size: int | None = None) -> Attachment:
    async def fetch(most: int) -> bytes:
        return data[: most + 1]

    return Attachment(name=name, size=len(data) if size is None else size, fetch=fetch)


def events(app: ConversationApp, cid: str, *types: str) -> list[dict[str, Any]]:
    return [e for e in app.timeline(UUID(cid)) if e["type"] in types]


async def test_attachments_are_saved_recorded_and_named_to_the_model_with_their_sizes(
    memory_app: ConversationApp,
) -> None:
    sandbox = FakeSandbox()
    service, model = service_with(memory_app, ["I read it"], sandbox)
    receipt = await service.receive(Incoming(HERE, "e1", "U1", "what is wrong?"))
    notes = await service.attach(
        receipt.conversation_id, [attachment("../app.log", b"ERROR disk full\n")], by="U1"
    )
    await service.run(receipt.conversation_id, RecordingProgress())

    assert [(n.name, n.bytes, n.refused) for n in notes] == [("app.log", 16, "")]
    workspace = receipt.conversation_id
    assert sandbox.inbox[workspace] == {"app.log": b"ERROR disk full\n"}
    (received,) = events(memory_app, receipt.conversation_id, "FileReceived")
    assert (received["name"], received["bytes"], received["by"]) == ("app.log", 16, "U1")
    prompt = "\n".join(m.content for m in model.prompts[0])
    assert "/workspace/inbox/app.log (16 bytes)" in prompt


async def test_files_over_the_caps_are_refused_without_being_downloaded_and_recorded(
    memory_app: ConversationApp,
) -> None:
    fetched: list[str] = []

    def watched(name: str, data: bytes, size: int | None = None) -> Attachment:
        async def fetch(most: int) -> bytes:
            fetched.append(name)
            return data

        return Attachment(name=name, size=len(data) if size is None else size, fetch=fetch)

    async def login_page(most: int) -> bytes:
        raise FileNotFetched("Slack sent an HTML page (text/html), not the file")

    service, _ = service_with(memory_app, ["ok"], FakeSandbox())
    receipt = await service.receive(Incoming(HERE, "e1", "U1", "look"))
    notes = await service.attach(
        receipt.conversation_id,
        [
            watched("big.bin", b"x" * 101),
            watched("liar.bin", b"x" * 500, size=10),
            Attachment(name="fake.log", size=5, fetch=login_page),
        ],
        by="U1",
    )

    assert [n.name for n in notes] == ["big.bin", "liar.bin", "fake.log"]
    assert "over the limit" in notes[0].refused and "over the limit" in notes[1].refused
    assert notes[2].refused == "more than 2 files in one message"
    assert fetched == ["liar.bin"]  # the declared size was enough to refuse big.bin
    refused = events(memory_app, receipt.conversation_id, "FileRefused")
    assert [e["name"] for e in refused] == ["big.bin", "liar.bin", "fake.log"]


async def test_a_login_page_instead_of_the_file_is_refused_with_the_surfaces_reason(
    memory_app: ConversationApp,
) -> None:
    async def login_page(most: int) -> bytes:
        raise FileNotFetched("Slack sent an HTML page (text/html), not the file")

    service, model = service_with(memory_app, ["ok"], FakeSandbox())
    receipt = await service.receive(Incoming(HERE, "e1", "U1", "look"))
    (note,) = await service.attach(
        receipt.conversation_id, [Attachment(name="a.log", size=5, fetch=login_page)], by="U1"
    )
    await service.run(receipt.conversation_id, RecordingProgress())
    assert "HTML page" in note.refused
    prompt = "\n".join(m.content for m in model.prompts[0])
    assert '[attached file "a.log" was not saved: Slack sent an HTML page' in prompt


async def test_outbox_files_go_out_with_the_answer_once_each_and_are_recorded(
    memory_app: ConversationApp,
) -> None:
    sandbox = FakeSandbox()
    service, _ = service_with(memory_app, ["here is the report", "again"], sandbox)
    receipt = await service.receive(Incoming(HERE, "e1", "U1", "report please"))
    cid = receipt.conversation_id
    sandbox.outbox[cid] = {"report.csv": b"a,b\n", "plot.png": b"\x89PNG", "huge": b"x" * 101}
    first = await service.run(cid, RecordingProgress())
    await service.receive(Incoming(HERE, "e2", "U1", "anything new?"))
    second = await service.run(cid, RecordingProgress())

    assert sorted(f.name for f in first.files) == ["plot.png", "report.csv"]
    assert first.files_skipped == ("huge: over a cap",)
    assert second.files == ()  # the same files are not sent twice
    sent = events(memory_app, cid, "FileSent", "Answered")
    assert [e["type"] for e in sent] == ["FileSent", "FileSent", "Answered", "Answered"]


async def test_a_secret_in_an_outbox_file_never_leaves_text_redacted_binary_withheld(
    memory_app: ConversationApp,
) -> None:
    sandbox = FakeSandbox()
    service, _ = service_with(memory_app, ["done", "again"], sandbox)
    receipt = await service.receive(Incoming(HERE, "e1", "U1", "dump the env"))
    cid = receipt.conversation_id
    token = "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx"
    sandbox.outbox[cid] = {
        "env.txt": f"SLACK={token}\n".encode(),
        "blob.bin": b"\xff\xfe" + token.encode() + b"\x00",
    }
    first = await service.run(cid, RecordingProgress())
    await service.receive(Incoming(HERE, "e2", "U1", "and now?"))
    second = await service.run(cid, RecordingProgress())

    (sent,) = first.files
    assert sent.name == "env.txt" and token.encode() not in sent.data
    assert b"[redacted:" in sent.data
    assert first.files_skipped == ("blob.bin: holds a secret and is not text; not sent",)
    assert second.files == ()  # the redacted copy is not sent again
    (recorded,) = events(memory_app, cid, "FileSent")
    assert recorded["sha256"] == sent.sha256
