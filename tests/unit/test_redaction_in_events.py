"""What the application stores is redacted first, and the event says where (real app, memory:)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from bot.app.application import ConversationApp, open_app
from bot.audit.replay import render
from bot.ports import ModelReply, ProviderFailure
from bot.surface import Coordinates
from domain.redaction import Redactor
from tests.port_fakes import run_result

SECRET = "s3cr3t-v4lue-0123456789"
B64 = base64.b64encode(SECRET.encode()).decode()
HEX = SECRET.encode().hex()
HERE = Coordinates("slack", "T1", "C1", "1700000000.1")


@pytest.fixture
def app() -> Iterator[ConversationApp]:
    app = open_app(database_url="memory:", redactor=Redactor({"DB_TOKEN": SECRET}))
    yield app
    app.close()


def reply(text: str, **more: object) -> ModelReply:
    values: dict[str, object] = {
        "provider": "p",
        "model": "m",
        "input_tokens": 1,
        "output_tokens": 1,
        "tokens_estimated": False,
        "cost": 0.0,
        "priced": False,
        "latency_ms": 1,
        "attempts": 1,
        **more,
    }
    return ModelReply(text=text, **values)  # type: ignore[arg-type]


def stored_bytes(app: ConversationApp, cid: object) -> bytes:
    return b"".join(bytes(e.state) for e in app.recorder.select_events(cid))  # type: ignore[arg-type]


def test_every_text_the_loop_records_is_redacted_before_it_is_stored(app: ConversationApp) -> None:
    cid, _ = app.receive_message(
        coordinates=HERE, message_key="m1", author="U1", text=f"use {SECRET} please"
    )
    failed = ProviderFailure("groq", "x", f"401 bad key {SECRET}", 1)
    text = f"Let me print it:\n<helpers>\nprint('{SECRET}')\n</helpers>"
    app.record_model_reply(cid, reply=reply(text, failures=(failed,)), prompt_fingerprint="f")
    app.start_block(cid, block_id="t1b1", limits={})
    app.finish_block(
        cid, block_id="t1b1", result=run_result(stdout=f"{B64}\n", stderr=f"hex {HEX}")
    )
    app.record_model_reply(
        cid, reply=reply(f"It is {SECRET[:9]}\n{SECRET[9:]}"), prompt_fingerprint="f"
    )
    app.answer(cid, text=f"It is {SECRET}")
    app.stop(cid, reason="cancelled", detail=f"by {SECRET}")
    timeline = app.timeline(cid)
    for form in (SECRET, B64, HEX):
        assert form not in str(timeline)
        assert form.encode() not in stored_bytes(app, cid)
    by_type = {e["type"]: e for e in timeline}
    assert by_type["MessageReceived"]["text"] == "use [redacted:DB_TOKEN] please"
    assert by_type["MessageReceived"]["redacted"] == {"text": ["DB_TOKEN"]}
    assert by_type["ModelFailed"]["error"] == "401 bad key [redacted:DB_TOKEN]"
    assert by_type["BlockStarted"]["code"] == "print('[redacted:DB_TOKEN]')"  # what runs
    assert by_type["BlockFinished"]["redacted"] == {"stdout": ["DB_TOKEN"], "stderr": ["DB_TOKEN"]}
    assert by_type["Answered"] == {**by_type["Answered"], "text": "It is [redacted:DB_TOKEN]"}
    assert by_type["Answered"]["redacted"] == {"text": ["DB_TOKEN"]}
    assert by_type["Stopped"]["detail"] == "by [redacted:DB_TOKEN]"
    assert app.verify(cid).intact


def test_a_refused_message_and_a_tool_call_are_redacted_too(app: ConversationApp) -> None:
    cid, _ = app.refuse_message(
        coordinates=HERE, message_key="m0", author="U9", text=f"token: {SECRET}", reason="no"
    )
    app.receive_message(coordinates=HERE, message_key="m1", author="U1", text="go")
    app.record_model_reply(cid, reply=reply("<helpers>\nx\n</helpers>"), prompt_fingerprint="f")
    app.start_block(cid, block_id="t1b1", limits={})
    app.record_tool_call(
        cid, block_id="t1b1", call_id="t1b1c1", tool="echo", arguments={"text": SECRET}
    )
    app.record_tool_result(
        cid,
        call_id="t1b1c1",
        ok=True,
        result={"echo": SECRET},
        result_bytes=9,
        truncated=False,
        duration_ms=1,
        error=None,
        redacted=(),
    )
    timeline = app.timeline(cid)
    assert SECRET not in str(timeline)
    refused = timeline[1]
    assert (refused["text"], refused["redacted"]) == (
        "token: [redacted:DB_TOKEN]",
        {"text": ["DB_TOKEN"]},
    )
    called, returned = timeline[-2], timeline[-1]
    assert (called["arguments"], called["redacted"]) == (
        {"text": "[redacted:DB_TOKEN]"},
        ["DB_TOKEN"],
    )
    assert (returned["result"], returned["redacted"]) == (
        {"echo": "[redacted:DB_TOKEN]"},
        ["DB_TOKEN"],
    )


def test_text_without_secrets_is_stored_as_it_was_and_says_nothing_was_redacted(
    app: ConversationApp,
) -> None:
    cid, _ = app.receive_message(coordinates=HERE, message_key="m1", author="U1", text="df -h?")
    app.record_model_reply(cid, reply=reply("Disk is fine."), prompt_fingerprint="f")
    app.answer(cid, text="Disk is fine.")
    timeline = app.timeline(cid)
    assert [(e["type"], e.get("text"), e.get("redacted")) for e in timeline[1:]] == [
        ("MessageReceived", "df -h?", {}),
        ("ModelReplied", "Disk is fine.", {}),
        ("Answered", "Disk is fine.", {}),
    ]


def test_the_replay_says_where_secrets_were_taken_out(app: ConversationApp) -> None:
    cid, _ = app.receive_message(coordinates=HERE, message_key="m1", author="U1", text="go")
    app.record_model_reply(cid, reply=reply("<helpers>\nx\n</helpers>"), prompt_fingerprint="f")
    app.start_block(cid, block_id="t1b1", limits={})
    app.finish_block(cid, block_id="t1b1", result=run_result(stdout=f"{SECRET} ghp_{'a' * 36}"))
    text = "\n".join(render(app.timeline(cid), fmt="text"))
    assert "finished: exit 0 in 1 ms (redacted: stdout: DB_TOKEN, github_token)" in text


def test_without_a_redactor_the_application_still_takes_out_credential_shapes() -> None:
    app = open_app(database_url="memory:")
    cid, _ = app.receive_message(
        coordinates=HERE, message_key="m1", author="U1", text="my key AKIAIOSFODNN7EXAMPLE"
    )
    message = app.timeline(cid)[1]
    assert message["text"] == "my key [redacted:aws_access_key_id]"
    app.close()
